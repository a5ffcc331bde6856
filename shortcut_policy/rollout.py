"""Evaluate a policy across step budgets: ``python -m shortcut_policy.rollout steps=1``.

    python -m shortcut_policy.rollout steps=[1,2,4,8,16,32,64,128] workers=2 n_episodes=100

For each budget: success rate (95% Wilson interval), mean score, batch-1 chunk latency (median,
p95, p99, and as a multiple of one bare forward pass) and batched throughput. Writes
``report.json``, ``report.md``, ``success_vs_latency.png`` and optional videos to ``out_dir``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from envs.vector import EnvPool
from envs.video import record_video
from shortcut_policy.evaluation.episodes import run_episodes
from shortcut_policy.evaluation.latency import chunk_latency, chunk_throughput, forward_latency
from shortcut_policy.evaluation.report import (
    markdown_table,
    plot_success_vs_latency,
    summarize_episodes,
    write_json,
)
from shortcut_policy.policy import ShortcutPolicy
from shortcut_policy.tasks import env_factory, newest_checkpoint_for_task


def evaluate_budget(
    policy: ShortcutPolicy, pool: EnvPool, cfg: Any, steps: int, probe_obs
) -> dict[str, Any]:
    """Episodes, latency and throughput for one step budget."""
    seeds = list(range(cfg.start_seed, cfg.start_seed + cfg.n_episodes))
    bar = tqdm(total=len(seeds), desc=f"steps={steps}", disable=not cfg.progress)
    policy.seed(cfg.start_seed)
    results = run_episodes(
        policy,
        pool,
        seeds,
        steps,
        record_seeds=seeds[: cfg.videos],
        on_episode=lambda _: bar.update(),
    )
    bar.close()
    # The bare forward pass is timed right before the chunk, so both see the same machine state.
    forward = forward_latency(policy, probe_obs, cfg.latency_calls)
    latency = chunk_latency(policy, probe_obs, steps, cfg.latency_calls, warmup=10)
    row = {"steps": steps, **summarize_episodes(results), "latency": latency}
    row["forward_latency"] = forward
    row["latency_x_forward"] = latency["median_ms"] / forward["median_ms"]
    row["throughput_batch"] = cfg.throughput_batch
    row["throughput_chunks_per_s"] = chunk_throughput(
        policy, probe_obs, steps, cfg.throughput_batch
    )
    for result in results:
        if result.frames:
            record_video(result.frames, Path(cfg.out_dir) / f"steps{steps}_seed{result.seed}.mp4")
    return row


def rollout(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate one checkpoint at every budget in ``cfg.steps``; returns the report."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    checkpoint = cfg.checkpoint or newest_checkpoint_for_task(cfg.task.name)
    print(f"[rollout] checkpoint: {checkpoint}")
    policy = ShortcutPolicy.from_pretrained(
        checkpoint, device=_device(cfg.device), task=cfg.task.name
    )
    budgets = list(cfg.steps) if OmegaConf.is_list(cfg.steps) else [int(cfg.steps)]
    out_dir = Path(cfg.out_dir)
    make_env = env_factory(cfg.task)
    if cfg.n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {cfg.n_episodes}")
    probe_env = make_env()
    probe_obs, _ = probe_env.reset(seed=cfg.start_seed)
    probe_env.close()
    forward = forward_latency(policy, probe_obs, cfg.latency_calls)
    rows = []
    with EnvPool(make_env, cfg.workers, step_timeout_s=cfg.step_timeout_s) as pool:
        for steps in budgets:
            rows.append(evaluate_budget(policy, pool, cfg, steps, probe_obs))
    report = {
        "checkpoint": str(checkpoint),
        "task": cfg.task.name,
        "objective": policy.objective.name,
        "train_step": policy.meta.get("step"),
        "device": str(policy.device),
        "cuda_device": torch.cuda.get_device_name(policy.device)
        if policy.device.type == "cuda"
        else None,
        "torch_threads": torch.get_num_threads(),
        "forward_latency": forward,
        "seeds": [cfg.start_seed, cfg.start_seed + cfg.n_episodes - 1],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "budgets": rows,
    }
    table = markdown_table(rows)
    write_json(out_dir / "report.json", report)
    (out_dir / "report.md").write_text(table + "\n")
    title = f"{cfg.task.name}, {policy.objective.name}, train step {policy.meta.get('step')}"
    plot_success_vs_latency(out_dir / "success_vs_latency.png", rows, title)
    print(table)
    print(f"[rollout] report in {out_dir}")
    return report


def _device(name: str) -> str | None:
    return None if name == "auto" else name


@hydra.main(config_path="../configs", config_name="rollout", version_base=None)
def main(cfg: DictConfig) -> None:
    rollout(cfg)


if __name__ == "__main__":
    main()
