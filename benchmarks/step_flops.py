"""What a training step costs in arithmetic and in kernel launches, to estimate GPU runs.

    python benchmarks/step_flops.py --out docs/results/step_flops.json

For each config (the task's network at its training batch), one flow-matching training step
(forward and backward) is run on CPU under ``torch.utils.flop_counter.FlopCounterMode`` (matrix
products and convolutions) and a dispatch counter (every aten op, about one GPU kernel each).
A GPU step takes at least the larger of ``FLOPs / achieved FLOP/s`` and ``ops x launch cost``;
both bounds are printed for an H100 at 10% and 30% of its dense bf16 peak and 8 us per op,
so the estimate is honest about being one. Measure with ``benchmarks/gpu_check.sh`` when a GPU
is there.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from shortcut_policy.data.normalizer import RangeNormalizer
from shortcut_policy.models.policy_net import PolicyNetwork
from shortcut_policy.objectives import FlowMatching

H100_BF16_DENSE = 989e12  # FLOP/s
LAUNCH_S = 8e-6  # per kernel, eager PyTorch on a busy stream (CUDA graphs remove most of it)
SMALL = {"down_dims": [64, 128, 256], "kernel_size": 5, "embed_dim": 128, "n_groups": 8}
DP = {**SMALL, "down_dims": [256, 512, 1024]}
PIXELS = {
    "channels": [32, 64, 128],
    "pool": "spatial_softmax",
    "keypoints": 32,
    "feature_dim": 64,
    "crop_shape": [84, 84],
}


def low_dim(task: str, dims: dict[str, int]) -> dict:
    return {
        "task": task,
        "obs_shapes": {key: [n] for key, n in dims.items()},
        "obs_types": {key: "low_dim" for key in dims},
        "action_dim": 2 if task == "push_t" else 7,
        "horizon": 16,
        "n_obs_steps": 2,
        "action_key": "action",
    }


PUSH_T = low_dim("push_t", {"keypoint": 18, "state": 5})
CAN = low_dim("can", {"object": 14, "eef_pos": 3, "eef_quat": 4, "gripper_qpos": 2})
PUSH_T_IMAGE = {
    "task": "push_t_image",
    "obs_shapes": {"img": [96, 96, 3], "agent_pos": [2]},
    "obs_types": {"img": "rgb", "agent_pos": "low_dim"},
    "action_dim": 2,
    "horizon": 16,
    "n_obs_steps": 2,
    "action_key": "action",
}
CONFIGS = {
    "push_t unet_small (batch 256)": (PUSH_T, SMALL, 256),
    "push_t unet_dp (batch 256)": (PUSH_T, DP, 256),
    "can / square unet_small (batch 256)": (CAN, SMALL, 256),
    "push_t_image (batch 64)": (PUSH_T_IMAGE, {**SMALL, "vision": PIXELS}, 64),
    "push_t_image, vision.downsample=2 (batch 64)": (
        PUSH_T_IMAGE,
        {**SMALL, "vision": {**PIXELS, "downsample": 2}},
        64,
    ),
}


class OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


def batch(spec: dict, size: int) -> dict:
    obs = {}
    for key, shape in spec["obs_shapes"].items():
        if spec["obs_types"][key] == "rgb":
            obs[key] = torch.randint(0, 256, (size, 2, *shape), dtype=torch.uint8)
        else:
            obs[key] = torch.rand(size, 2, *shape)
    return {"obs": obs, "action": torch.rand(size, spec["horizon"], spec["action_dim"])}


def step_cost(spec: dict, model: dict, size: int) -> dict:
    keys = [k for k, kind in spec["obs_types"].items() if kind == "low_dim"] + ["action"]
    shapes = {**spec["obs_shapes"], "action": [spec["action_dim"]]}
    stats = {k: (np.zeros(shapes[k]), np.ones(shapes[k])) for k in keys}
    net = PolicyNetwork(spec, model, RangeNormalizer(stats)).train()
    data = batch(spec, size)

    def step():
        x1, cond = net.prepare_batch(net.augment(data))
        loss, _ = FlowMatching().loss(net, x1, cond)
        loss.backward()

    flops, ops = FlopCounterMode(display=False), OpCounter()
    with flops:
        step()
    with ops:
        step()
    total, launches = flops.get_total_flops(), sum(ops.ops.values())
    return {
        "batch": size,
        "parameters": sum(p.numel() for p in net.parameters()),
        "gflop_per_step": total / 1e9,
        "aten_ops_per_step": launches,
        "h100_ms_at_10pct": 1e3 * max(total / (0.1 * H100_BF16_DENSE), launches * LAUNCH_S),
        "h100_ms_at_30pct": 1e3 * max(total / (0.3 * H100_BF16_DENSE), launches * LAUNCH_S),
        "launch_floor_ms": 1e3 * launches * LAUNCH_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = {name: step_cost(*config) for name, config in CONFIGS.items()}
    print(
        "| config | parameters | GFLOP / step | aten ops / step | launch floor ms "
        "| H100 ms / step at 10% / 30% of bf16 peak |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['parameters'] / 1e6:.2f} M | {r['gflop_per_step']:.0f} "
            f"| {r['aten_ops_per_step']} | {r['launch_floor_ms']:.1f} "
            f"| {r['h100_ms_at_10pct']:.1f} / {r['h100_ms_at_30pct']:.1f} |"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
