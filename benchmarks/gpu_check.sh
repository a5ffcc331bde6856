#!/usr/bin/env bash
# The GPU check (≤ 8 minutes): eager vs CUDA-graph chunk latency at batch 1, throughput at batch
# 64 / 256, and bf16 Push-T training speed. Writes $OUT/gpu_check.json (or ./gpu_check.json).
# On the device machine, carry the Push-T demonstrations (ignored by git): data/push_t.zarr.
# Smoke run on a CPU: DEVICE=cpu QUICK=1 bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export WANDB_MODE=disabled MPLBACKEND=Agg
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, installed or not
out=${OUT:-.}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
args=(--device "${DEVICE:-cuda}" --out "$out/gpu_check.json")
if [ -n "${QUICK:-}" ]; then args+=(--quick); fi
timeout 470 python3 benchmarks/gpu_check.py "${args[@]}"
