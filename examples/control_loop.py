"""A policy in a robot's control loop: fixed control rate, one action per tick, deadlines checked.

    python examples/control_loop.py --checkpoint runs/push_t/shortcut-unet_small-seed0 --steps 1
    python examples/control_loop.py --task push_t_image --steps 1   # from camera frames
    python examples/control_loop.py --remote ws://127.0.0.1:8765    # a policy server's policy
    python examples/control_loop.py --async-chunks --delay-ms 150   # slow inference, no waiting
    python examples/control_loop.py --steps auto --deadline-ms 30   # most passes that fit 30 ms

Each tick reads an observation, asks ``select_action`` for one action (a new chunk is generated
only when the queue of ``n_action_steps`` actions runs empty) and sends it to the simulator, then
sleeps until the next tick. A tick whose work overruns its period is a missed deadline. With
``--async-chunks`` the next chunk is computed in the background while the current one runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from shortcut_policy import PolicyClient, ShortcutPolicy
from shortcut_policy.tasks import env_factory, newest_checkpoint_for_task


def control_loop(policy, env, seed: int, hz: float, max_ticks: int) -> dict:
    """Run one episode at ``hz``; returns latencies (ms), missed deadlines (all, and after the
    tick of the first chunk) and the outcome. ``policy``: a ShortcutPolicy or a PolicyClient."""
    period = 1.0 / hz
    obs, _ = env.reset(seed=seed)
    policy.reset()
    latencies, missed, info = [], [], {}
    next_tick = time.perf_counter()
    for _ in range(max_ticks):
        next_tick += period
        start = time.perf_counter()
        action = policy.select_action(obs)
        latencies.append((time.perf_counter() - start) * 1000)
        obs, _, terminated, truncated, info = env.step(action)
        slack = next_tick - time.perf_counter()
        missed.append(slack < 0)
        if slack < 0:
            next_tick = time.perf_counter()  # do not try to catch up with a burst of ticks
        else:
            time.sleep(slack)
        if terminated or truncated:
            break
    return {
        "latency_ms": np.asarray(latencies),
        "missed": int(sum(missed)),
        "missed_after_first_chunk": int(sum(missed[1:])),
        "info": info,
    }


def slowed(policy, delay_ms: float):
    """``policy`` whose every chunk takes ``delay_ms`` longer (a slow GPU box, a busy link)."""
    # The call every chunk goes through: checked observations in-process, the request remotely.
    name = "predict_checked" if isinstance(policy, ShortcutPolicy) else "predict_action_chunk"
    predict = getattr(policy, name)

    def slow_predict(*args, **kwargs):
        time.sleep(delay_ms / 1000.0)
        return predict(*args, **kwargs)

    setattr(policy, name, slow_predict)
    return policy


def make_policy(args):
    """The in-process policy, or the client of a policy server with ``--remote``."""
    steps = args.steps if args.steps == "auto" else int(args.steps)
    options = {"async_chunks": args.async_chunks, "async_lead": args.async_lead}
    if args.remote:
        return PolicyClient(args.remote, steps=None if steps == "auto" else steps, **options)
    checkpoint = args.checkpoint or newest_checkpoint_for_task(args.task)
    if steps == "auto":
        options["deadline_ms"] = args.deadline_ms
    return ShortcutPolicy.from_pretrained(
        checkpoint, args.device, steps=steps, task=args.task, **options
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="push_t", help="push_t or push_t_image")
    parser.add_argument("--checkpoint", default=None, help="default: the task's newest run")
    parser.add_argument("--steps", default="1", help="network passes per chunk, or auto")
    parser.add_argument("--deadline-ms", type=float, default=None, help="with --steps auto")
    parser.add_argument("--remote", default=None, help="ws://host:port of a policy server")
    parser.add_argument("--async-chunks", action="store_true", help="never wait on inference")
    parser.add_argument("--async-lead", type=int, default=1, help="ticks of look-ahead")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added to every chunk")
    parser.add_argument("--hz", type=float, default=10.0, help="control rate")
    parser.add_argument("--seed", type=int, default=100000)
    parser.add_argument("--max-ticks", type=int, default=300)
    parser.add_argument("--device", default=None)
    # One thread: on a busy CPU, torch's default (all cores) can wait on the other processes'
    # cores and turn a 5 ms chunk into a second (measured here under load).
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = slowed(make_policy(args), args.delay_ms) if args.delay_ms else make_policy(args)
    # The simulator as the policy was trained with it (a camera env for push_t_image).
    env = env_factory({"name": args.task, "env": task_env(policy, args.task)})()
    result = control_loop(policy, env, args.seed, args.hz, args.max_ticks)
    lat = result["latency_ms"]
    chunk_ticks = lat[:: policy.n_action_steps]  # ticks that generate a chunk (blocking)
    source = args.remote or "in-process"
    print(f"policy {source}, {policy.steps or 'server default'} pass(es) per chunk, {args.hz:g} Hz")
    print(
        f"ticks {len(lat)}, missed deadlines {result['missed']} "
        f"({result['missed_after_first_chunk']} after the first chunk)"
    )
    print(
        f"select_action latency: median {np.median(lat):.2f} ms, max {lat.max():.2f} ms; "
        f"ticks that generate a chunk: median {np.median(chunk_ticks):.2f} ms"
    )
    print(f"success {result['info'].get('is_success')}, score {result['info'].get('score', 0):.3f}")


def task_env(policy, task: str) -> dict:
    """The simulator settings the policy was trained with (the task config's, for a client)."""
    if isinstance(policy, ShortcutPolicy):
        return policy.meta["config"]["task"]["env"]
    from hydra import compose, initialize_config_dir

    from shortcut_policy.tasks import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name="rollout", overrides=[f"task={task}"]).task.env


if __name__ == "__main__":
    main()
