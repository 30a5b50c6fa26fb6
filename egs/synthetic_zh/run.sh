#!/usr/bin/env bash
# Synthetic Mandarin demo: espeak-ng corpus -> AISHELL-1 preparation (3-way speed perturbation of
# train) -> tiny CIF model on the CPU -> fairseq-generate -> CER on voices the model never heard: the
# test split (held-out voice variants, rates and pitches outside the training ranges) and test_long
# (the same voices saying compositions longer than any training phrase). `make demo` runs it; about
# 13 minutes on 2 cores.
#
# Usage: bash egs/synthetic_zh/run.sh [--stage N] [--stop-stage M] [--max-epoch E] [--seed S] [--seeds K]
#        [--corpus-seed C] [--no-speed-perturb] [--distill] [--ctc] [--asg] [--hotwords] [--streaming]
# --seed S trains with seed S (exp/cif_tiny); --seeds K trains K models, seeds S..S+K-1 (seed S in
# exp/cif_tiny, the others in exp/cif_tiny_seed<k>), on the same corpus and prints the mean and spread of
# their CERs. --corpus-seed C synthesises a different corpus (default 1).
# Stages: 1 synthesise, 2 prepare, 3 train, decode and score; with --distill also 6 PLM features of a
# RANDOM BERT and 7 HieraDist training, decoding and scoring: a plumbing check of distillation
# (no pre-trained model is reachable here), not a result; with --ctc also 8 the CTC baseline
# (s2t_ctc_conformer_tiny) trained, decoded and scored beside the CIF model; with --asg also 9 the same
# for an ASG model (s2t_asg_conformer_tiny, Viterbi decoding). --hotwords runs the hotword evaluation
# on its own corpus (data/corpus_names, exp/cif_tiny_names): the same phrases plus name phrases in
# train and dev and a test_names split of unseen names (scripts/synthetic_names.py), stages 1-3 on it,
# then 10 a character LM on the training text (fairseq transformer_lm) and 11
# benchmarks/bench_hotwords.py: hotword recall, precision, F1 and CER without biasing, with it, with
# it and the LM, and the decoding time with 10 and 1,000 hotwords (docs/hotwords.md).
# Finished stages leave a .done marker and are skipped on a re-run; delete data/ and exp/ (or the
# marker) to redo them.
set -euo pipefail

stage=1
stop_stage=3
max_epoch=10
seed=1
seeds=1
corpus_seed=1
speed_perturb=0.9,1.0,1.1
utterances="1500 150 150"  # train dev test
beam=1
distill=false
ctc=false
asg=false
hotwords=false
streaming=false
name_utterances=(0 0 0)  # train dev test_names
decode_checkpoint=checkpoint_best.pt
max_epoch_set=false

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --max-epoch) max_epoch=$2; max_epoch_set=true; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --corpus-seed) corpus_seed=$2; shift 2 ;;
    --no-speed-perturb) speed_perturb=1.0; shift ;;
    --beam) beam=$2; shift 2 ;;
    --distill) distill=true; stop_stage=$((stop_stage > 8 ? stop_stage : 8)); shift ;;
    --ctc) ctc=true; stop_stage=$((stop_stage > 8 ? stop_stage : 8)); shift ;;
    --asg) asg=true; stop_stage=9; shift ;;
    --streaming) streaming=true; stop_stage=15; shift ;;
    # The hotword figures were measured on the last checkpoint (docs/hotwords.md).
    --hotwords) hotwords=true; name_utterances=(800 50 150); stop_stage=11; decode_checkpoint=checkpoint_last.pt; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 1 ;;
  esac
done

# Each batch of dynamic chunk training trains one chunk size: the streaming model gets 20 epochs.
if $streaming && ! $max_epoch_set; then max_epoch=20; fi

recipe_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$recipe_dir/../.." && pwd)
python=$repo/.venv/bin/python
bin=$repo/.venv/bin
names=$($hotwords && echo _names || true)
corpus=$recipe_dir/data/corpus$names
suffix=$([ "$speed_perturb" = 1.0 ] && echo _nosp || true)$names
data=$recipe_dir/data/prepared$suffix
exp=$recipe_dir/exp/cif_tiny$suffix
test_sets=(test test_long)
if $hotwords; then test_sets+=(test_names); fi
common_options=(--user-dir cif_plugin --task speech_to_text_cif --config-yaml config.yaml
  --train-subset train --valid-subset dev --optimizer adam --lr 2e-3
  --lr-scheduler inverse_sqrt --warmup-updates 200 --clip-norm 1.0 --max-tokens 8000
  --max-epoch "$max_epoch" --cpu --num-workers 1 --seed "$seed" --best-checkpoint-metric wer
  --keep-last-epochs 1 --no-epoch-checkpoints --no-progress-bar --log-interval 50)
# No decoder positions: with them the decoder writes 日, where training dates end, at positions past the
# training lengths (RESULTS.md, "Length"); its causal self-attention and the CIF vectors keep the order.
train_options=("${common_options[@]}" --arch s2t_cif_transformer_tiny --criterion cif --ctc-loss-lambda 0.5
  --apply-label-smoothing --no-token-positional-embeddings)
mkdir -p "$corpus" "$data" "$exp"
cd "$repo"

# shellcheck source=../stages.sh
. "$recipe_dir/../stages.sh"

stage_dir=$corpus
if run_stage 1 "synthesise number and date phrases with espeak-ng (test voices held out of train)"; then
  # shellcheck disable=SC2086
  "$python" scripts/make_synthetic_corpus.py --output-root "$corpus" --utterances $utterances \
    --seed "$corpus_seed" --name-utterances "${name_utterances[@]}"
  mark_done 1
fi

stage_dir=$data
if run_stage 2 "prepare fbank features, manifests and vocabulary (train at speeds $speed_perturb)"; then
  "$python" scripts/prep_aishell1.py --corpus-root "$corpus" --output-root "$data" \
    --splits train dev "${test_sets[@]}" --speed-perturb "$speed_perturb"
  mark_done 2
fi

# train_decode_score DATA EXP BEAM FAIRSEQ-TRAIN-OPTIONS...: one family's training, fairseq-generate
# decoding of each test set and its CER (exp/cer_<set>.txt); prints the CER lines last.
train_decode_score() {
  local data_dir=$1 exp_dir=$2 decode_beam=$3 test_set
  shift 3
  mkdir -p "$exp_dir"
  "$bin/fairseq-train" "$data_dir" "$@" --save-dir "$exp_dir" 2>&1 | tee "$exp_dir/train.log" \
    | grep --line-buffered -E "valid on|done training"
  for test_set in "${test_sets[@]}"; do
    "$bin/fairseq-generate" "$data_dir" --user-dir cif_plugin --task speech_to_text_cif --config-yaml config.yaml \
      --path "$exp_dir/$decode_checkpoint" --gen-subset "$test_set" --beam "$decode_beam" --max-tokens 20000 \
      --cpu --scoring wer > "$exp_dir/decode_$test_set.txt" 2> "$exp_dir/decode_$test_set.log"
    "$python" scripts/score_cer.py --generate-output "$exp_dir/decode_$test_set.txt" \
      --manifest "$data_dir/$test_set.tsv" --per-utterance "$exp_dir/cer_$test_set.tsv" --show 5 \
      > "$exp_dir/cer_$test_set.txt"
  done
  for test_set in "${test_sets[@]}"; do echo "$test_set: $(tail -1 "$exp_dir/cer_$test_set.txt")"; done
}

seed_exps=()
for ((k = seed; k < seed + seeds; k++)); do
  seed_exp=$([ "$k" = "$seed" ] && echo "$exp" || echo "${exp}_seed$k")
  seed_exps+=("$seed_exp")
  stage_dir=$seed_exp
  mkdir -p "$seed_exp"
  if ! $streaming && run_stage 3 "train s2t_cif_transformer_tiny on the CPU ($max_epoch epochs, seed $k), decode (beam $beam) and score"; then
    train_decode_score "$data" "$seed_exp" "$beam" "${train_options[@]}" --seed "$k"
    mark_done 3
  fi
done
if ! $streaming && [ "$stop_stage" -ge 3 ] && [ "$seeds" -gt 1 ]; then
  for test_set in "${test_sets[@]}"; do
    "$python" scripts/cer_over_runs.py --name "$test_set" "${seed_exps[@]/%//cer_$test_set.tsv}"
  done
fi
stage_dir=$exp

distill_exp=$recipe_dir/exp/cif_tiny${suffix}_hieradist
if $distill && run_stage 6 "PLM features of a RANDOM BERT (plumbing check, not a pre-trained model)"; then
  "$python" scripts/make_random_bert.py --vocab-from "$data/dict.txt" --output "$recipe_dir/exp/random_bert"
  "$python" scripts/extract_plm_features.py --data "$data" --plm "$recipe_dir/exp/random_bert"
  mark_done 6
fi

if $distill && run_stage 7 "HieraDist (ACD + LRD) training, decoding and scoring: a plumbing check"; then
  dim=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['dim'])" "$data/plm_features/meta.json")
  conf_dir=$repo/egs/aishell1/conf
  # shellcheck disable=SC2046
  train_decode_score "$data" "$distill_exp" "$beam" "${train_options[@]}" --bert-distill-feat-dim "$dim" \
    $(grep -hv -e '^\s*#' -e '^\s*$' "$conf_dir/distill_acd.conf" "$conf_dir/distill_lrd.conf")
  echo "NOTE: distilled from a RANDOM BERT: this checks the pipeline, it is not a distillation result"
  mark_done 7
fi

ctc_exp=$recipe_dir/exp/ctc_tiny$suffix
if $ctc && run_stage 8 "the CTC baseline: train, decode (beam $beam) and score beside the CIF model"; then
  train_decode_score "$data" "$ctc_exp" "$beam" "${common_options[@]}" --arch s2t_ctc_conformer_tiny \
    --criterion ctc_asr
  echo "test CER, CIF: $(tail -1 "$exp/cer_test.txt")"
  echo "test CER, CTC: $(tail -1 "$ctc_exp/cer_test.txt")"
  mark_done 8
fi

asg_data=$recipe_dir/data/prepared${suffix}_asg
asg_exp=$recipe_dir/exp/asg_tiny$suffix
if $asg && run_stage 9 "ASG: train, decode (Viterbi) and score beside the CIF model"; then
  # The same features; the dictionary gains the replabel symbols "1" and "2" that ASG writes repeats with.
  mkdir -p "$asg_data"
  for zip in "$data"/*.zip; do ln -sf "$zip" "$asg_data/"; done
  for split in train dev "${test_sets[@]}"; do cp "$data/$split.tsv" "$asg_data/"; done
  cp "$data/config.yaml" "$asg_data/"
  { cat "$data/dict.txt"; printf '1 1\n2 1\n'; } > "$asg_data/dict.txt"
  train_decode_score "$asg_data" "$asg_exp" 1 "${common_options[@]}" --arch s2t_asg_conformer_tiny \
    --criterion asg --linseg-updates 100
  echo "test CER, CIF: $(tail -1 "$exp/cer_test.txt")"
  echo "test CER, ASG: $(tail -1 "$asg_exp/cer_test.txt")"
  mark_done 9
fi

lm_dir=$exp/lm
if $hotwords && run_stage 10 "a character LM on the training transcripts (fairseq transformer_lm, for fusion)"; then
  mkdir -p "$lm_dir"
  # tgt_text (column 4) is already space-separated characters; speed-perturbed copies (sp*) left out.
  tail -n +2 "$data/train.tsv" | grep -v '^sp' | cut -f4 > "$lm_dir/train.txt"
  tail -n +2 "$data/dev.tsv" | cut -f4 > "$lm_dir/dev.txt"
  "$bin/fairseq-preprocess" --only-source --srcdict "$data/dict.txt" --trainpref "$lm_dir/train.txt" \
    --validpref "$lm_dir/dev.txt" --destdir "$lm_dir/bin" --workers 1 > "$lm_dir/preprocess.log" 2>&1
  "$bin/fairseq-train" "$lm_dir/bin" --task language_modeling --arch transformer_lm --decoder-layers 2 \
    --decoder-embed-dim 128 --decoder-ffn-embed-dim 512 --decoder-attention-heads 4 --dropout 0.1 \
    --sample-break-mode eos --tokens-per-sample 64 --max-tokens 1024 --optimizer adam --lr 1e-3 \
    --lr-scheduler inverse_sqrt --warmup-updates 100 --max-epoch 30 --cpu --seed "$seed" \
    --save-dir "$lm_dir" --no-epoch-checkpoints --no-progress-bar --log-interval 100 2>&1 \
    | tee "$lm_dir/train.log" | grep --line-buffered -E "valid on|done training"
  mark_done 10
fi

if $hotwords && run_stage 11 "hotword recall, precision and CER without and with biasing (and the LM); timing"; then
  "$python" benchmarks/bench_hotwords.py --model "$exp/$decode_checkpoint" --data "$data" \
    --hotwords "$corpus/data_aishell/hotwords/test_names.txt" --lm-path "$lm_dir/checkpoint_best.pt" \
    --output "$exp/hotwords.md" | tee "$exp/bench_hotwords.txt"
  mark_done 11
fi

stream_data=$recipe_dir/data/prepared${suffix}_gcmvn
stream_exp=$recipe_dir/exp/cif_tiny${suffix}_streaming
if $streaming && run_stage 12 "the prepared data with global CMVN statistics of train (for streaming)"; then
  # The same features and manifests; prep_aishell1.py skips the prepared splits and writes the statistics.
  mkdir -p "$stream_data"
  for zip in "$data"/*.zip; do ln -sf "$zip" "$stream_data/"; done
  for split in train dev "${test_sets[@]}"; do cp "$data/$split.tsv" "$stream_data/"; done
  cp "$data/dict.txt" "$data/train.augmentation.txt" "$stream_data/"
  "$python" scripts/prep_aishell1.py --corpus-root "$corpus" --output-root "$stream_data" \
    --splits train dev "${test_sets[@]}" --speed-perturb "$speed_perturb" --global-cmvn
  mark_done 12
fi

# The streaming model keeps its last 5 epoch checkpoints and is decoded as their average (the paper
# averages its last 10; RESULTS.md, "Streaming").
stream_train_options=()
for option in "${train_options[@]/s2t_cif_transformer_tiny/s2t_cif_transformer_streaming_tiny}"; do
  [ "$option" = --no-epoch-checkpoints ] || stream_train_options+=("$option")
done
if $streaming && run_stage 13 "train s2t_cif_transformer_streaming_tiny (dynamic chunk training, causal convolutions), average its last 5 epochs"; then
  mkdir -p "$stream_exp"
  "$bin/fairseq-train" "$stream_data" "${stream_train_options[@]}" --keep-last-epochs 5 \
    --save-dir "$stream_exp" 2>&1 | tee -a "$stream_exp/train.log" | grep --line-buffered -E "valid on|done training"
  "$python" scripts/average_checkpoints.py --inputs "$stream_exp" --num-epoch-checkpoints 5 \
    --output "$stream_exp/avg_last_5.pt"
  mark_done 13
fi

stream_checkpoint=$stream_exp/avg_last_5.pt
if $streaming && run_stage 14 "decode and score the streaming model at full context and with 640 ms chunks"; then
  for context in full 640ms; do
    overrides=$([ "$context" = full ] && echo "{'encoder_chunk_size': 0}" || echo "{}")
    "$bin/fairseq-generate" "$stream_data" --user-dir cif_plugin --task speech_to_text_cif --config-yaml config.yaml \
      --path "$stream_checkpoint" --model-overrides "$overrides" --gen-subset test --beam 1 \
      --max-tokens 20000 --cpu --scoring wer > "$stream_exp/decode_test_$context.txt" 2> "$stream_exp/decode_test_$context.log"
    "$python" scripts/score_cer.py --generate-output "$stream_exp/decode_test_$context.txt" \
      --manifest "$stream_data/test.tsv" > "$stream_exp/cer_test_$context.txt"
    echo "test, $context: $(tail -1 "$stream_exp/cer_test_$context.txt")"
  done
  mark_done 14
fi

if $streaming && run_stage 15 "streaming CER, compute RTF and emission latency for 320, 640 and 1280 ms chunks"; then
  "$python" benchmarks/bench_streaming.py --model "$stream_checkpoint" --data "$stream_data" \
    --corpus-root "$corpus" --output "$stream_exp/streaming.md" | tee "$stream_exp/bench_streaming.txt"
  mark_done 15
fi
