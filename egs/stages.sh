# Stage helpers shared by the recipes. Source it after setting $stage, $stop_stage and $stage_dir.
#
#   if run_stage 3 "train"; then ...; mark_done 3; fi
#
# run_stage N DESCRIPTION: logs "Stage N: DESCRIPTION" and succeeds when N is within
# [$stage, $stop_stage] and $stage_dir/.stageN.done does not exist (a finished stage is skipped).
run_stage() {
  local n=$1 marker="$stage_dir/.stage$1.done"
  [ "$n" -ge "$stage" ] && [ "$n" -le "$stop_stage" ] || return 1
  if [ -f "$marker" ]; then echo "Stage $n: $2 (done before, skipped)"; return 1; fi
  echo "Stage $n: $2"
}

# mark_done N: records that stage N finished.
mark_done() { touch "$stage_dir/.stage$1.done"; }
