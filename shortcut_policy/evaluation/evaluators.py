"""Task evaluations run during training (``eval_every``) and by benchmarks.

Each evaluator takes ``(network, objective, data, steps_list, out_dir=None)`` and returns flat
metrics; ``out_dir`` is where it may write files (sample grids).
Tasks name theirs in ``task.evaluator``; simulator tasks register rollout evaluators here.
"""

from __future__ import annotations

import numpy as np
import torch

from shortcut_policy.data.bimodal import mode_fractions
from shortcut_policy.tasks import import_callable

EVALUATORS = {
    "bimodal": "shortcut_policy.evaluation.evaluators:evaluate_bimodal",
    "push_t": "shortcut_policy.evaluation.evaluators:evaluate_rollouts",
    "rollouts": "shortcut_policy.evaluation.evaluators:evaluate_rollouts",  # any task with task.env
    "images": "shortcut_policy.evaluation.image_samples:evaluate_image_model",
}

# Evaluators that run simulator episodes: they take ``n_episodes`` (``eval_episodes``).
SIMULATOR_EVALUATORS = ("push_t", "rollouts")
# In-training rollouts use their own seeds, so choosing the "best" checkpoint on them does not
# leak into the final evaluation (seeds 100000 and up) or the demonstrations (0 and up).
TRAINING_EVAL_SEED = 200_000


def get_evaluator(name: str):
    if name not in EVALUATORS:
        raise ValueError(f"unknown evaluator {name!r}; known: {sorted(EVALUATORS)}")
    return import_callable(EVALUATORS[name])


def evaluate_rollouts(
    network, objective, data, steps_list, out_dir=None, n_episodes: int = 10, workers: int = 2
) -> dict:
    """Success rate and mean score of short simulator rollouts, per step budget."""
    from shortcut_policy.evaluation.env_pool import EnvPool
    from shortcut_policy.evaluation.episodes import run_episodes
    from shortcut_policy.policy import ShortcutPolicy
    from shortcut_policy.tasks import env_factory

    spec = network.spec
    policy = ShortcutPolicy(
        network, objective, {"spec": spec}, device=next(network.parameters()).device
    )
    task_cfg = {"name": spec["task"], "env": data.env_cfg}
    seeds = range(TRAINING_EVAL_SEED, TRAINING_EVAL_SEED + n_episodes)
    metrics = {}
    with EnvPool(env_factory(task_cfg), workers) as pool:
        for steps in steps_list:
            policy.seed(TRAINING_EVAL_SEED)
            results = run_episodes(policy, pool, seeds, steps)
            metrics[f"success@{steps}"] = float(np.mean([r.success for r in results]))
            metrics[f"score@{steps}"] = float(np.mean([r.score for r in results]))
    return metrics


def evaluate_bimodal(
    network, objective, data, steps_list, out_dir=None, n_samples: int = 512
) -> dict:
    """Fraction of sampled chunks near a mode / in the gap, per step budget."""
    rng = np.random.default_rng(0)
    start = np.stack([rng.uniform(-0.3, 0.3, n_samples), -np.ones(n_samples)], -1)
    device = next(network.parameters()).device
    history = network.spec["n_obs_steps"]  # the start point, repeated as at an episode start
    obs = {"pos": torch.as_tensor(start, dtype=torch.float32, device=device)[:, None]}
    obs["pos"] = obs["pos"].expand(-1, history, -1)
    generator = torch.Generator(device=device).manual_seed(0)
    metrics = {}
    for steps in steps_list:
        actions = network.act(obs, objective, steps, generator=generator)
        for name, value in mode_fractions(start, actions.cpu().numpy()).items():
            metrics[f"{name}@{steps}"] = value
    return metrics
