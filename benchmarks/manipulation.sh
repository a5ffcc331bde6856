#!/usr/bin/env bash
# MuJoCo manipulation results (docs/RESULTS.md, "MuJoCo manipulation"): for each task, train a
# shortcut policy and a flow-matching policy (same data, network, budget and seed), then roll
# out 50 episodes (seeds 100000..100049): shortcut at 1 and 128 steps, flow at 1 step.
# One thread per process (2-core machine shared with other jobs).
#   bash benchmarks/manipulation.sh metaworld_reach metaworld_peg_insert_side lift
# Environment knobs: OBJECTIVES (default "shortcut flow"), MODEL, STEPS, WORKERS (rollout env
# processes, batched into one forward), TAG (run-folder prefix), TRAIN_ARGS (extra overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=disabled MPLBACKEND=Agg
MODEL=${MODEL:-unet_tiny}
STEPS=${STEPS:-4000}
WORKERS=${WORKERS:-1}
OBJECTIVES=${OBJECTIVES:-shortcut flow}
TAG=${TAG:-}
read -r -a EXTRA <<< "${TRAIN_ARGS:-}"
for task in "$@"; do
  for objective in $OBJECTIVES; do
    run=runs/$task/$TAG$objective-$MODEL-seed0
    python -m shortcut_policy.train task="$task" model="$MODEL" objective="$objective" threads=1 \
      train.steps="$STEPS" run_dir="$run" logging.mode=disabled logging.progress=false resume=true \
      "${EXTRA[@]}"
    budgets="[1,128]"
    if [ "$objective" = flow ]; then budgets="[1]"; fi
    python -m shortcut_policy.rollout task="$task" checkpoint="$run" steps="$budgets" \
      n_episodes=50 workers="$WORKERS" threads=1 progress=false \
      out_dir="runs/rollout/$task/$TAG$objective-$MODEL"
  done
done
