#!/usr/bin/env bash
# MuJoCo manipulation results (docs/RESULTS.md, "MuJoCo manipulation"): for each task, train a
# shortcut policy and a flow-matching policy (same data, network, budget and seed), then roll
# out 50 episodes (seeds 100000..100049): shortcut at 1 and 128 steps, flow at 1 step.
# One thread and one env worker throughout (2-core machine shared with other jobs).
#   bash benchmarks/manipulation.sh metaworld_reach metaworld_peg_insert_side lift
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=disabled MPLBACKEND=Agg
MODEL=${MODEL:-unet_tiny}
STEPS=${STEPS:-4000}
for task in "$@"; do
  for objective in shortcut flow; do
    run=runs/$task/$objective-$MODEL-seed0
    python -m shortcut_policy.train task="$task" model="$MODEL" objective="$objective" threads=1 \
      train.steps="$STEPS" run_dir="$run" logging.mode=disabled logging.progress=false resume=true
    budgets="[1,128]"
    if [ "$objective" = flow ]; then budgets="[1]"; fi
    python -m shortcut_policy.rollout task="$task" checkpoint="$run" steps="$budgets" \
      n_episodes=50 workers=1 threads=1 progress=false out_dir="runs/rollout/$task/$objective-$MODEL"
  done
done
