#!/usr/bin/env bash
# The paper's AISHELL-1 recipe: prepare -> PLM features -> train -> average -> decode -> score, for
# the CIF baseline and the distilled systems (ACD, LRD, HieraDist = ACD + LRD).
#
# Usage: bash egs/aishell1/run.sh --corpus-root /path/to/aishell [--stage N] [--stop-stage M]
#            [--systems "baseline acd lrd hieradist"] [--plm /path/to/bert-base-chinese]
#            [--update-freq 2]   # one GPU: match the paper's two-GPU batch
#            [--speed-perturb]   # 3-way speed perturbation of train (0.9, 1.0, 1.1), as ESPnet/WeNet/icefall
#        bash egs/aishell1/run.sh --tiny [--systems "baseline hieradist"]   # CPU check, synthetic corpus
# --corpus-root is the folder that holds data_aishell/ (wav/ and transcript/); --plm a local Hugging
# Face model folder (needed by the distilled systems; with --tiny a random BERT is made if omitted).
# The paper trains without speed perturbation, so it is off by default; --speed-perturb prepares
# data/<tag>_sp and trains into exp/cif_<tag>_sp. --tiny always speed-perturbs, to exercise it.
# Stages: 0 synthesise the corpus (--tiny only), 1 prepare, 2 PLM features (distilled systems only),
# then for each system: 3 train, 4 average the last 10 epoch checkpoints, 5 decode dev and test
# (beam 10, tail threshold 0.4), 6 score. Finished stages leave a .done marker and are skipped.
set -euo pipefail

stage=0
stop_stage=6
corpus_root=
plm=
systems=baseline
tiny=false
speed_perturb=false
update_freq=1
beam=10
tail_threshold=0.4
average=10

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --corpus-root) corpus_root=$2; shift 2 ;;
    --plm) plm=$2; shift 2 ;;
    --systems) systems=$2; shift 2 ;;
    --update-freq) update_freq=$2; shift 2 ;;
    --tiny) tiny=true; shift ;;
    --speed-perturb) speed_perturb=true; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 1 ;;
  esac
done

recipe_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$recipe_dir/../.." && pwd)
python=$repo/.venv/bin/python
bin=$repo/.venv/bin
if $tiny; then
  tag=tiny; average=2; device=(--cpu); precision=(); plm_device=cpu
  corpus_root=$recipe_dir/data/tiny_corpus
  train_conf=("$recipe_dir/conf/train_baseline.conf" "$recipe_dir/conf/tiny.conf")
else
  tag=baseline; device=(); precision=(--fp16); plm_device=cuda
  train_conf=("$recipe_dir/conf/model_paper.conf" "$recipe_dir/conf/train_baseline.conf")
  [ -n "$corpus_root" ] || { echo "give --corpus-root (the folder holding data_aishell/), or --tiny" >&2; exit 1; }
fi
prep_options=()
if $tiny || $speed_perturb; then
  prep_options=(--speed-perturb 0.9,1.0,1.1)
  $tiny || tag=${tag}_sp
fi
data=$recipe_dir/data/$tag
exp=$recipe_dir/exp/cif_$tag
distilled=false
for system in $systems; do
  case "$system" in
    baseline) ;;
    acd|lrd|hieradist) distilled=true ;;
    *) echo "unknown system $system: baseline, acd, lrd or hieradist" >&2; exit 1 ;;
  esac
done
if $distilled && [ -z "$plm" ] && ! $tiny; then
  echo "the distilled systems need --plm (a local bert-base-chinese folder)" >&2; exit 1
fi
mkdir -p "$exp"
cd "$repo"
stage_dir=$exp
# shellcheck source=../stages.sh
. "$recipe_dir/../stages.sh"
conf_options() { grep -hv -e '^\s*#' -e '^\s*$' "$@" | tr '\n' ' '; }
system_confs() {  # the distillation conf files of a system
  case "$1" in
    acd) echo "$recipe_dir/conf/distill_acd.conf" ;;
    lrd) echo "$recipe_dir/conf/distill_lrd.conf" ;;
    hieradist) echo "$recipe_dir/conf/distill_acd.conf $recipe_dir/conf/distill_lrd.conf" ;;
  esac
}

if $tiny && run_stage 0 "synthesise a small AISHELL-1-shaped corpus"; then
  "$python" scripts/make_synthetic_corpus.py --output-root "$corpus_root" --utterances 400 60 60 --long-utterances 0 --seed 3
  mark_done 0
fi

if run_stage 1 "prepare features, manifests and vocabulary"; then
  "$python" scripts/prep_aishell1.py --corpus-root "$corpus_root" --output-root "$data" "${prep_options[@]}"
  mark_done 1
fi

if $distilled && run_stage 2 "extract PLM features for distillation"; then
  if [ -z "$plm" ]; then
    plm=$exp/random_bert
    "$python" scripts/make_random_bert.py --vocab-from "$data/dict.txt" --output "$plm"
    echo "NOTE: distilling a RANDOM BERT: a plumbing check of the pipeline, not a distillation result"
  fi
  "$python" scripts/extract_plm_features.py --data "$data" --plm "$plm" --batch-size 256 --device "$plm_device"
  mark_done 2
fi

for system in $systems; do
  stage_dir=$exp/$system
  mkdir -p "$stage_dir"
  distill_options=()
  if [ "$system" != baseline ]; then
    dim=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['dim'])" "$data/plm_features/meta.json")
    # shellcheck disable=SC2046
    distill_options=($(conf_options $(system_confs "$system")) --bert-distill-feat-dim "$dim")
  fi

  if run_stage 3 "train the $system system"; then
    # shellcheck disable=SC2046
    "$bin/fairseq-train" "$data" --user-dir cif_plugin $(conf_options "${train_conf[@]}") "${precision[@]}" \
      "${distill_options[@]}" --update-freq "$update_freq" --save-dir "$stage_dir" \
      --tensorboard-logdir "$stage_dir/tensorboard" \
      2>&1 | tee "$stage_dir/train.log" | grep --line-buffered -E "valid on|done training|Error"
    mark_done 3
  fi

  if run_stage 4 "average the last $average epoch checkpoints of $system"; then
    "$python" scripts/average_checkpoints.py --inputs "$stage_dir" --num-epoch-checkpoints "$average" \
      --output "$stage_dir/avg_last_${average}_checkpoint.pt"
    mark_done 4
  fi

  if run_stage 5 "decode dev and test with $system (beam $beam, tail threshold $tail_threshold)"; then
    for split in dev test; do
      "$bin/fairseq-generate" "$data" --user-dir cif_plugin --task speech_to_text_cif --config-yaml config.yaml \
        --path "$stage_dir/avg_last_${average}_checkpoint.pt" --gen-subset "$split" --beam "$beam" \
        --decoding-tail-threshold "$tail_threshold" --max-tokens 30000 --scoring wer "${device[@]}" \
        > "$stage_dir/decode_$split.txt" 2> "$stage_dir/decode_$split.log"
    done
    mark_done 5
  fi

  if run_stage 6 "score $system"; then
    for split in dev test; do
      echo "$system $split:"
      "$python" scripts/score_cer.py --generate-output "$stage_dir/decode_$split.txt" \
        --manifest "$data/$split.tsv" --per-utterance "$stage_dir/cer_$split.tsv" | tee "$stage_dir/cer_$split.txt"
    done
  fi
done
