#!/usr/bin/env bash
# One command for a machine with a GPU: the CUDA tests, the CIF and ASG operators on CUDA, training
# throughput of the paper architecture in fp16 and bf16 (against the published ~4,000 target
# tokens/s on two A100s), a 300-update fp16 training run that must learn without endless overflow
# rescaling, and 2-GPU training when two GPUs are present. Each step has its own time limit (all
# together under 8 minutes on one H100-class GPU); the summary goes to $GPU_CHECK_DIR/summary.txt
# (default benchmarks/gpu_check_results/), each step's full output beside it.
# Without a CUDA GPU it says so and exits 0 having run nothing.
#
# Usage: bash benchmarks/gpu_check.sh        (after `make install`)
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${GPU_CHECK_DIR:-benchmarks/gpu_check_results}
if [ ! -x "$PYTHON" ]; then
    echo "gpu_check: $PYTHON not found: run \`make install\` first (or set PYTHON)" >&2
    exit 2
fi
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"

GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null)
if [ "${GPUS:-0}" = "0" ]; then
    echo "gpu_check: skipped: no CUDA GPU visible to torch (torch.cuda.is_available() is False)" | tee "$SUMMARY"
    exit 0
fi

{
    echo "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    "$PYTHON" -c "import torch; print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}')"
} | tee "$SUMMARY"
FAILED=0

# step NAME SECONDS COMMAND...: run it with a time limit, keep its output, add its last lines to the summary.
step() {
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    local verdict=passed
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then verdict="TIMED OUT after ${limit} s"; FAILED=1
    elif [ $rc -ne 0 ]; then verdict="FAILED (exit $rc)"; FAILED=1; fi
    {
        echo
        echo "== $name: $verdict in $((SECONDS - start)) s ($*)"
        tail -n "${TAIL_LINES:-12}" "$OUT/$name.log"
    } | tee -a "$SUMMARY"
}

step cuda_tests 90 "$PYTHON" -m pytest -q -p no:warnings tests/test_cif.py tests/test_asg_op.py -k cuda -rs
step bench_cif 45 "$PYTHON" benchmarks/bench_cif.py --devices cuda
step bench_asg 60 "$PYTHON" benchmarks/bench_asg.py
TAIL_LINES=6 step bench_train 100 "$PYTHON" benchmarks/bench_train.py --devices cuda --archs s2t_cif_transformer \
    --updates 10 --warmup 2
step fp16_training 150 "$PYTHON" benchmarks/fp16_training_check.py --updates 300
if [ "$GPUS" -ge 2 ]; then
    step two_gpu_training 90 "$PYTHON" benchmarks/fp16_training_check.py --updates 100 --nproc 2
else
    echo -e "\n== two_gpu_training: skipped, one GPU" | tee -a "$SUMMARY"
fi

echo -e "\ngpu_check: $([ $FAILED -eq 0 ] && echo 'all steps passed' || echo 'some steps FAILED'); summary in $SUMMARY" |
    tee -a "$SUMMARY"
exit $FAILED
