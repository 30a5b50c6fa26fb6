#!/usr/bin/env bash
# Synthetic Mandarin demo: espeak-ng corpus -> AISHELL-1 preparation -> tiny CIF model on the CPU
# -> fairseq-generate on the test split -> CER. `make demo` runs it; about 10 minutes on 2 cores.
#
# Usage: bash egs/synthetic_zh/run.sh [--stage N] [--stop-stage M] [--max-epoch E] [--seed S] [--distill] [--ctc]
#        [--asg]
# Stages: 1 synthesise, 2 prepare, 3 train, 4 decode, 5 score; with --distill also 6 PLM features of a
# RANDOM BERT and 7 HieraDist training, decoding and scoring: a plumbing check of distillation
# (no pre-trained model is reachable here), not a result; with --ctc also 8 the CTC baseline
# (s2t_ctc_conformer_tiny) trained, decoded and scored beside the CIF model; with --asg also 9 the same
# for an ASG model (s2t_asg_conformer_tiny, Viterbi decoding). Finished stages leave a .done marker
# and are skipped on a re-run; delete data/ and exp/ (or the marker) to redo them.
set -euo pipefail

stage=1
stop_stage=5
max_epoch=15
seed=1
utterances="1500 150 150"  # train dev test
beam=1
distill=false
ctc=false
asg=false

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --max-epoch) max_epoch=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --beam) beam=$2; shift 2 ;;
    --distill) distill=true; stop_stage=$((stop_stage > 8 ? stop_stage : 8)); shift ;;
    --ctc) ctc=true; stop_stage=$((stop_stage > 8 ? stop_stage : 8)); shift ;;
    --asg) asg=true; stop_stage=9; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 1 ;;
  esac
done

recipe_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$recipe_dir/../.." && pwd)
python=$repo/.venv/bin/python
bin=$repo/.venv/bin
corpus=$recipe_dir/data/corpus
data=$recipe_dir/data/prepared
exp=$recipe_dir/exp/cif_tiny
common_options=(--user-dir cif_plugin --task speech_to_text_cif --config-yaml config.yaml
  --train-subset train --valid-subset dev --optimizer adam --lr 2e-3
  --lr-scheduler inverse_sqrt --warmup-updates 200 --clip-norm 1.0 --max-tokens 8000
  --max-epoch "$max_epoch" --cpu --num-workers 1 --seed "$seed" --best-checkpoint-metric wer
  --keep-last-epochs 1 --no-epoch-checkpoints --no-progress-bar --log-interval 50)
train_options=("${common_options[@]}" --arch s2t_cif_transformer_tiny --criterion cif --ctc-loss-lambda 0.5
  --apply-label-smoothing)
mkdir -p "$recipe_dir/data" "$exp"
cd "$repo"

stage_dir=$exp
# shellcheck source=../stages.sh
. "$recipe_dir/../stages.sh"

if run_stage 1 "synthesise number and date phrases with espeak-ng"; then
  # shellcheck disable=SC2086
  "$python" scripts/make_synthetic_corpus.py --output-root "$corpus" --utterances $utterances --seed "$seed"
  mark_done 1
fi

if run_stage 2 "prepare fbank features, manifests and vocabulary"; then
  "$python" scripts/prep_aishell1.py --corpus-root "$corpus" --output-root "$data"
  mark_done 2
fi

if run_stage 3 "train s2t_cif_transformer_tiny on the CPU ($max_epoch epochs)"; then
  "$bin/fairseq-train" "$data" "${train_options[@]}" --save-dir "$exp" 2>&1 | tee "$exp/train.log" \
    | grep --line-buffered -E "valid on|done training"
  mark_done 3
fi

if run_stage 4 "decode the test split with fairseq-generate (beam $beam)"; then
  "$bin/fairseq-generate" "$data" --user-dir cif_plugin --task speech_to_text_cif --config-yaml config.yaml \
    --path "$exp/checkpoint_best.pt" --gen-subset test --beam "$beam" --max-tokens 20000 --cpu \
    --scoring wer > "$exp/decode_test.txt" 2> "$exp/decode_test.log"
  mark_done 4
fi

if run_stage 5 "score"; then
  "$python" scripts/score_cer.py --generate-output "$exp/decode_test.txt" --manifest "$data/test.tsv" \
    --per-utterance "$exp/cer_test.tsv" --show 5 | tee "$exp/cer_test.txt"
fi

distill_exp=$recipe_dir/exp/cif_tiny_hieradist
if $distill && run_stage 6 "PLM features of a RANDOM BERT (plumbing check, not a pre-trained model)"; then
  "$python" scripts/make_random_bert.py --vocab-from "$data/dict.txt" --output "$recipe_dir/exp/random_bert"
  "$python" scripts/extract_plm_features.py --data "$data" --plm "$recipe_dir/exp/random_bert"
  mark_done 6
fi

if $distill && run_stage 7 "HieraDist (ACD + LRD) training, decoding and scoring: a plumbing check"; then
  mkdir -p "$distill_exp"
  dim=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['dim'])" "$data/plm_features/meta.json")
  conf_dir=$repo/egs/aishell1/conf
  # shellcheck disable=SC2046
  "$bin/fairseq-train" "$data" "${train_options[@]}" --save-dir "$distill_exp" --bert-distill-feat-dim "$dim" \
    $(grep -hv -e '^\s*#' -e '^\s*$' "$conf_dir/distill_acd.conf" "$conf_dir/distill_lrd.conf") \
    2>&1 | tee "$distill_exp/train.log" | grep --line-buffered -E "valid on|done training"
  "$bin/fairseq-generate" "$data" --user-dir cif_plugin --task speech_to_text_cif --config-yaml config.yaml \
    --path "$distill_exp/checkpoint_best.pt" --gen-subset test --beam "$beam" --max-tokens 20000 --cpu \
    --scoring wer > "$distill_exp/decode_test.txt" 2> "$distill_exp/decode_test.log"
  "$python" scripts/score_cer.py --generate-output "$distill_exp/decode_test.txt" --manifest "$data/test.tsv" \
    | tee "$distill_exp/cer_test.txt"
  echo "NOTE: distilled from a RANDOM BERT: this checks the pipeline, it is not a distillation result"
  mark_done 7
fi

ctc_exp=$recipe_dir/exp/ctc_tiny
if $ctc && run_stage 8 "the CTC baseline: train, decode (beam $beam) and score beside the CIF model"; then
  mkdir -p "$ctc_exp"
  "$bin/fairseq-train" "$data" "${common_options[@]}" --arch s2t_ctc_conformer_tiny --criterion ctc_asr \
    --save-dir "$ctc_exp" 2>&1 | tee "$ctc_exp/train.log" | grep --line-buffered -E "valid on|done training"
  "$bin/fairseq-generate" "$data" --user-dir cif_plugin --task speech_to_text_cif --config-yaml config.yaml \
    --path "$ctc_exp/checkpoint_best.pt" --gen-subset test --beam "$beam" --max-tokens 20000 --cpu \
    --scoring wer > "$ctc_exp/decode_test.txt" 2> "$ctc_exp/decode_test.log"
  "$python" scripts/score_cer.py --generate-output "$ctc_exp/decode_test.txt" --manifest "$data/test.tsv" \
    > "$ctc_exp/cer_test.txt"
  echo "test CER, CIF: $(tail -1 "$exp/cer_test.txt")"
  echo "test CER, CTC: $(tail -1 "$ctc_exp/cer_test.txt")"
  mark_done 8
fi

asg_data=$recipe_dir/data/prepared_asg
asg_exp=$recipe_dir/exp/asg_tiny
if $asg && run_stage 9 "ASG: train, decode (Viterbi) and score beside the CIF model"; then
  # The same features; the dictionary gains the replabel symbols "1" and "2" that ASG writes repeats with.
  mkdir -p "$asg_data" "$asg_exp"
  for zip in "$data"/*.zip; do ln -sf "$zip" "$asg_data/"; done
  cp "$data"/train.tsv "$data"/dev.tsv "$data"/test.tsv "$data"/config.yaml "$asg_data/"
  { cat "$data/dict.txt"; printf '1 1\n2 1\n'; } > "$asg_data/dict.txt"
  "$bin/fairseq-train" "$asg_data" "${common_options[@]}" --arch s2t_asg_conformer_tiny --criterion asg \
    --linseg-updates 100 --save-dir "$asg_exp" 2>&1 | tee "$asg_exp/train.log" \
    | grep --line-buffered -E "valid on|done training"
  "$bin/fairseq-generate" "$asg_data" --user-dir cif_plugin --task speech_to_text_cif --config-yaml config.yaml \
    --path "$asg_exp/checkpoint_best.pt" --gen-subset test --beam 1 --max-tokens 20000 --cpu \
    --scoring wer > "$asg_exp/decode_test.txt" 2> "$asg_exp/decode_test.log"
  "$python" scripts/score_cer.py --generate-output "$asg_exp/decode_test.txt" --manifest "$asg_data/test.tsv" \
    > "$asg_exp/cer_test.txt"
  echo "test CER, CIF: $(tail -1 "$exp/cer_test.txt")"
  echo "test CER, ASG: $(tail -1 "$asg_exp/cer_test.txt")"
  mark_done 9
fi
