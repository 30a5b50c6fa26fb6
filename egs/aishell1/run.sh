#!/usr/bin/env bash
# The paper's AISHELL-1 recipe (CIF baseline): prepare -> train -> average -> decode -> score.
#
# Usage: bash egs/aishell1/run.sh --corpus-root /path/to/aishell [--stage N] [--stop-stage M]
#            [--update-freq 2]   # one GPU: match the paper's two-GPU batch
#        bash egs/aishell1/run.sh --tiny   # CPU check on a synthetic AISHELL-1-shaped corpus
# --corpus-root is the folder that holds data_aishell/ (wav/ and transcript/).
# Stages: 0 synthesise the corpus (--tiny only), 1 prepare, 3 train the baseline, 4 average the last
# 10 epoch checkpoints, 5 decode dev and test (beam 10, tail threshold 0.4), 6 score.
# (Stage 2, PLM features for distillation, joins with the distillation recipe.)
# Finished stages leave a .done marker in exp/ and are skipped on a re-run.
set -euo pipefail

stage=0
stop_stage=6
corpus_root=
tiny=false
update_freq=1
beam=10
tail_threshold=0.4
average=10

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --corpus-root) corpus_root=$2; shift 2 ;;
    --update-freq) update_freq=$2; shift 2 ;;
    --tiny) tiny=true; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 1 ;;
  esac
done

recipe_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$recipe_dir/../.." && pwd)
python=$repo/.venv/bin/python
bin=$repo/.venv/bin
if $tiny; then
  tag=tiny; average=2; device=(--cpu); precision=()
  corpus_root=$recipe_dir/data/tiny_corpus
  train_conf=("$recipe_dir/conf/train_baseline.conf" "$recipe_dir/conf/tiny.conf")
else
  tag=baseline; device=(); precision=(--fp16)
  train_conf=("$recipe_dir/conf/model_paper.conf" "$recipe_dir/conf/train_baseline.conf")
  [ -n "$corpus_root" ] || { echo "give --corpus-root (the folder holding data_aishell/), or --tiny" >&2; exit 1; }
fi
data=$recipe_dir/data/$tag
exp=$recipe_dir/exp/cif_$tag
mkdir -p "$exp"
cd "$repo"

stage_dir=$exp
# shellcheck source=../stages.sh
. "$recipe_dir/../stages.sh"
conf_options() { grep -hv -e '^\s*#' -e '^\s*$' "$@" | tr '\n' ' '; }

if $tiny && run_stage 0 "synthesise a small AISHELL-1-shaped corpus"; then
  "$python" scripts/make_synthetic_corpus.py --output-root "$corpus_root" --utterances 400 60 60 --seed 3
  mark_done 0
fi

if run_stage 1 "prepare features, manifests and vocabulary"; then
  "$python" scripts/prep_aishell1.py --corpus-root "$corpus_root" --output-root "$data"
  mark_done 1
fi

if run_stage 3 "train the CIF baseline"; then
  # shellcheck disable=SC2046
  "$bin/fairseq-train" "$data" --user-dir cif_plugin $(conf_options "${train_conf[@]}") "${precision[@]}" \
    --update-freq "$update_freq" --save-dir "$exp" --tensorboard-logdir "$exp/tensorboard" \
    2>&1 | tee "$exp/train.log" | grep --line-buffered -E "valid on|done training|Error"
  mark_done 3
fi

if run_stage 4 "average the last $average epoch checkpoints"; then
  "$python" scripts/average_checkpoints.py --inputs "$exp" --num-epoch-checkpoints "$average" \
    --output "$exp/avg_last_${average}_checkpoint.pt"
  mark_done 4
fi

if run_stage 5 "decode dev and test (beam $beam, tail threshold $tail_threshold)"; then
  for split in dev test; do
    "$bin/fairseq-generate" "$data" --user-dir cif_plugin --task speech_to_text_cif --config-yaml config.yaml \
      --path "$exp/avg_last_${average}_checkpoint.pt" --gen-subset "$split" --beam "$beam" \
      --decoding-tail-threshold "$tail_threshold" --max-tokens 30000 --scoring wer "${device[@]}" \
      > "$exp/decode_$split.txt" 2> "$exp/decode_$split.log"
  done
  mark_done 5
fi

if run_stage 6 "score"; then
  for split in dev test; do
    echo "$split:"
    "$python" scripts/score_cer.py --generate-output "$exp/decode_$split.txt" --manifest "$data/$split.tsv" \
      --per-utterance "$exp/cer_$split.tsv" | tee "$exp/cer_$split.txt"
  done
fi
