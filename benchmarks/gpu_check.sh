#!/usr/bin/env bash
# The GPU check (≤ 8 minutes on a bare GPU machine that has PyTorch but no network): chunk
# latency at batch 1 (eager, CUDA graphs, torch.compile), DDPM-100 latency, throughput at batch
# 64 / 256, bf16 training speed of unet_small and unet_dp with and without the device dataset.
# Writes $OUT/gpu_check.json (or ./gpu_check.json).
#
#   python3 benchmarks/gpu_wheels.py            # beforehand, where the package index is reached:
#                                               # the missing dependencies as wheels in .whl/
#   bash benchmarks/gpu_check.sh                # on the GPU machine (carry .whl and, if made,
#                                               # data/push_t.zarr; otherwise a small one is made)
#   bash benchmarks/gpu_check.sh --device cpu --quick   # the same code path on a CPU, ≤ 3 min
set -euo pipefail
cd "$(dirname "$0")/.."
device=cuda
quick=()
episodes=50
store=data/push_t.zarr
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --quick) quick=(--quick); episodes=10; shift ;;
    --dataset) store=$2; shift 2 ;;
    *) echo "gpu_check.sh: unknown argument $1 (--device cpu|cuda, --quick, --dataset PATH)" >&2
       exit 2 ;;
  esac
done
export WANDB_MODE=disabled MPLBACKEND=Agg PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, installed or not
out=${OUT:-.}
has_deps() { python3 -c "import zarr, hydra, gymnasium, gym_pusht, safetensors, einops" 2>/dev/null; }
if ! has_deps && compgen -G ".whl/*.whl" > /dev/null; then  # from gpu_wheels.py: no index
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu_check_site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/gpu_check_site"  # after the image's own packages
fi
has_deps || {
  echo "gpu_check.sh: dependencies are missing; run python3 benchmarks/gpu_wheels.py where" \
    "the package index is reached and carry .whl/ here" >&2
  exit 2
}
if [ ! -d "$store" ]; then  # the scripted expert: 50 episodes (10 with --quick), a minute
  python3 -m shortcut_policy.collect task=push_t n_episodes="$episodes" dataset.path="$store"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
timeout 470 python3 benchmarks/gpu_check.py --device "$device" "${quick[@]}" \
  --dataset "$store" --out "$out/gpu_check.json"
