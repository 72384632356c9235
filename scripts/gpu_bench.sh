#!/usr/bin/env bash
# The GPU figures of docs/speed.md and docs/ofa.md in one call of the lent GPU machine, after scripts/gpu_prepare.sh here:
#   run(command="bash scripts/gpu_bench.sh", carry=[".whl", "outputs/device"], timeout_s=600)
# Installs the carried wheels beside the image's CUDA torch, then writes to $OUT: gpu.txt (the card),
# ofa_gpu.json + ofa_gpu.txt (evaluator actors sharing the GPU: images/s, scaling) and predictor.txt
# (bench predictor on cuda: throughput vs matmul, EI iteration, grouped fits, NB201 repeat vs sklearn-mlp).
# Each part has its own time limit, so a slow part still leaves the others' figures. A dry run here:
#   PYTHON=.venv/bin/python DEVICE=cpu QUICK=1 scripts/gpu_bench.sh
set -uo pipefail
OUT=${OUT:-outputs/gpu}
mkdir -p "$OUT"
if [ -d .whl ] && [ -z "${PYTHON:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export RAY_AUTH_MODE=disabled PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
quick=${QUICK:+--quick}
data=${WEAKNAS_DATA:-outputs/device/benchmarks_data}
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc) 2>&1 | tee "$OUT/gpu.txt"
timeout 200 "$py" -m weaknas_ray.cli bench ofa-gpu $quick --actors 1,2,4 --cpus-per-actor 2 --json "$OUT/ofa_gpu.json" \
  2>&1 | tee "$OUT/ofa_gpu.txt"
timeout 330 "$py" -m weaknas_ray.cli bench predictor $quick --device "${DEVICE:-cuda}" --group 25 --data-dir "$data" 2>&1 | tee "$OUT/predictor.txt"
