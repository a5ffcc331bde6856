"""A policy in a robot's control loop: fixed control rate, one action per tick, deadlines checked.

    python examples/control_loop.py --checkpoint runs/push_t/shortcut-unet_small-seed0 --steps 1
    python examples/control_loop.py --task push_t_image --steps 1   # from camera frames

Each tick reads an observation, asks ``select_action`` for one action (a new chunk is generated
only when the queue of ``n_action_steps`` actions runs empty) and sends it to the simulator, then
sleeps until the next tick. A tick whose work overruns its period is a missed deadline.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from shortcut_policy import ShortcutPolicy
from shortcut_policy.tasks import env_factory, newest_checkpoint_for_task


def control_loop(policy: ShortcutPolicy, env, seed: int, hz: float, max_ticks: int) -> dict:
    """Run one episode at ``hz``; returns latencies (ms), missed deadlines and the outcome."""
    period = 1.0 / hz
    obs, _ = env.reset(seed=seed)
    policy.reset()
    latencies, missed, info = [], 0, {}
    next_tick = time.perf_counter()
    for _ in range(max_ticks):
        next_tick += period
        start = time.perf_counter()
        action = policy.select_action(obs)
        latencies.append((time.perf_counter() - start) * 1000)
        obs, _, terminated, truncated, info = env.step(action)
        slack = next_tick - time.perf_counter()
        if slack < 0:
            missed += 1
            next_tick = time.perf_counter()  # do not try to catch up with a burst of ticks
        else:
            time.sleep(slack)
        if terminated or truncated:
            break
    return {"latency_ms": np.asarray(latencies), "missed": missed, "info": info}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="push_t", help="push_t or push_t_image")
    parser.add_argument("--checkpoint", default=None, help="default: the task's newest run")
    parser.add_argument("--steps", type=int, default=1, help="network passes per chunk")
    parser.add_argument("--hz", type=float, default=10.0, help="control rate")
    parser.add_argument("--seed", type=int, default=100000)
    parser.add_argument("--max-ticks", type=int, default=300)
    parser.add_argument("--device", default=None)
    # One thread: on a busy CPU, torch's default (all cores) can wait on the other processes'
    # cores and turn a 5 ms chunk into a second (measured here under load).
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or newest_checkpoint_for_task(args.task)
    policy = ShortcutPolicy.from_pretrained(
        checkpoint, args.device, steps=args.steps, task=args.task
    )
    # The simulator as the policy was trained with it (a camera env for push_t_image).
    env = env_factory({"name": args.task, "env": policy.meta["config"]["task"]["env"]})()
    result = control_loop(policy, env, args.seed, args.hz, args.max_ticks)
    lat = result["latency_ms"]
    chunk_ticks = lat[:: policy.n_action_steps]  # ticks that generated a chunk
    print(f"checkpoint {checkpoint}, {args.steps} network pass(es) per chunk, {args.hz:g} Hz")
    print(f"ticks {len(lat)}, missed deadlines {result['missed']}")
    print(
        f"select_action latency: median {np.median(lat):.2f} ms, max {lat.max():.2f} ms; "
        f"ticks that generate a chunk: median {np.median(chunk_ticks):.2f} ms"
    )
    print(f"success {result['info'].get('is_success')}, score {result['info'].get('score', 0):.3f}")


if __name__ == "__main__":
    main()
