"""The policy shipped in data/pretrained/ and how the rollout command finds it."""

import os

import numpy as np
import pytest
import torch

from shortcut_policy import ShortcutPolicy
from shortcut_policy.tasks import PRETRAINED_DIR, newest_checkpoint_for_task
from tests.conftest import make_config

SHIPPED = PRETRAINED_DIR / "push_t" / "policy.safetensors"


def load_shipped(task: str) -> ShortcutPolicy:
    """``task``'s shipped policy at 1 pass, after checking it is small and that
    ``python -m shortcut_policy.train task=<task>`` trains with the objective that ships."""
    shipped = PRETRAINED_DIR / task / "policy.safetensors"
    assert shipped.stat().st_size < 25e6
    policy = ShortcutPolicy.from_pretrained(shipped, task=task, steps=1)
    assert policy.objective.name == make_config(f"task={task}").objective.name == "meanflow"
    return policy


def test_shipped_push_t_policy_is_small_and_trained_with_the_tasks_default_objective():
    policy = load_shipped("push_t")
    default = make_config("task=push_t")
    assert policy.meta["config"]["model"]["step_embedding"] == default.model.step_embedding
    assert all(p.dtype == torch.float32 for p in policy.network.parameters())
    from envs.push_t.policy_env import make_policy_env

    env = make_policy_env(max_steps=10)
    obs, _ = env.reset(seed=100000)
    for _ in range(8):  # one chunk
        action = policy.select_action(obs)
        assert action.shape == (2,) and np.all((action > -50) & (action < 562))  # on the table
        obs, *_ = env.step(action)


@pytest.mark.parametrize("task", ["lift", "can", "square"])
def test_shipped_manipulation_policy_acts_in_robosuite(task):
    pytest.importorskip("robosuite")
    from envs.robosuite.env import make_policy_env

    shipped = PRETRAINED_DIR / task / "policy.safetensors"
    assert newest_checkpoint_for_task(task, runs_root="no-runs-here") == shipped
    policy = load_shipped(task)
    env = make_policy_env(task=task, max_steps=10)
    obs, _ = env.reset(seed=100000)
    for _ in range(8):  # one chunk: OSC_POSE deltas and the gripper, in [-1, 1]
        action = policy.select_action(obs)
        assert action.shape == (7,) and np.all(np.abs(action) <= 1.0 + 1e-6)
        obs, *_ = env.step(action)
    env.close()


def test_shipped_pixel_policy_acts_on_a_rendered_frame():
    from envs.push_t.policy_env import make_policy_env

    policy = load_shipped("push_t_image")
    env = make_policy_env(obs_mode="pixels", max_steps=10)
    obs, _ = env.reset(seed=100000)
    assert obs["img"].shape == (96, 96, 3) and obs["img"].dtype == np.uint8
    actions = [policy.select_action(obs)]
    for _ in range(3):
        obs, *_ = env.step(actions[-1])
        actions.append(policy.select_action(obs))
    env.close()
    assert all(a.shape == (2,) and np.all((a > -50) & (a < 562)) for a in actions)


def test_float16_export_acts_like_the_float32_policy(tmp_path):
    policy = ShortcutPolicy.from_pretrained(SHIPPED)
    half = ShortcutPolicy.from_pretrained(policy.save_pretrained(tmp_path, torch.float16))
    full = ShortcutPolicy.from_pretrained(policy.save_pretrained(tmp_path / "full"))
    assert half.save_pretrained(tmp_path / "again", torch.float16).stat().st_size < 0.6 * (
        (tmp_path / "full" / "policy.safetensors").stat().st_size
    )
    rng = np.random.default_rng(1)
    obs = {
        "keypoint": rng.uniform(100, 400, (4, 2, 8, 2)).astype(np.float32),
        "state": rng.uniform(100, 400, (4, 2, 5)).astype(np.float32),
    }
    half.seed(0)
    full.seed(0)
    gap = np.abs(half.predict_action_chunk(obs, 1) - full.predict_action_chunk(obs, 1))
    assert gap.max() < 2.0  # pixels on a 512-pixel table


def test_rollout_default_is_the_newest_run_then_the_shipped_policy(tmp_path):
    assert newest_checkpoint_for_task("push_t", runs_root=tmp_path) == SHIPPED
    older = tmp_path / "push_t" / "a" / "checkpoints" / "step_00000010.safetensors"
    newer = tmp_path / "push_t" / "b" / "checkpoints" / "step_00000005.safetensors"
    for path, when in ((older, 1000), (newer, 2000)):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
        os.utime(path, (when, when))
    assert newest_checkpoint_for_task("push_t", runs_root=tmp_path) == newer
    nothing_shipped = tmp_path / "no-pretrained"
    with pytest.raises(FileNotFoundError, match="python -m shortcut_policy.train task=square"):
        newest_checkpoint_for_task("square", runs_root=tmp_path, pretrained_root=nothing_shipped)
