#!/usr/bin/env bash
# Synthetic Mandarin demo: espeak-ng corpus -> AISHELL-1 preparation -> tiny CIF model on the CPU
# -> fairseq-generate on the test split -> CER. `make demo` runs it; about 10 minutes on 2 cores.
#
# Usage: bash egs/synthetic_zh/run.sh [--stage N] [--stop-stage M] [--max-epoch E] [--seed S]
# Stages: 1 synthesise, 2 prepare, 3 train, 4 decode, 5 score. Finished stages leave a .done marker
# and are skipped on a re-run; delete data/ and exp/ (or the marker) to redo them.
set -euo pipefail

stage=1
stop_stage=5
max_epoch=15
seed=1
utterances="1500 150 150"  # train dev test
beam=1

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --max-epoch) max_epoch=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --beam) beam=$2; shift 2 ;;
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
  "$bin/fairseq-train" "$data" --user-dir cif_plugin --task speech_to_text_cif --config-yaml config.yaml \
    --train-subset train --valid-subset dev --arch s2t_cif_transformer_tiny --criterion cif \
    --ctc-loss-lambda 0.5 --apply-label-smoothing --optimizer adam --lr 2e-3 \
    --lr-scheduler inverse_sqrt --warmup-updates 200 --clip-norm 1.0 --max-tokens 8000 \
    --max-epoch "$max_epoch" --cpu --num-workers 1 --seed "$seed" --save-dir "$exp" \
    --best-checkpoint-metric wer --keep-last-epochs 1 --no-epoch-checkpoints \
    --no-progress-bar --log-interval 50 2>&1 | tee "$exp/train.log" | grep --line-buffered -E "valid on|done training"
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
