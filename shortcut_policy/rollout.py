"""Evaluate a policy across step budgets: ``python -m shortcut_policy.rollout steps=1``.

    python -m shortcut_policy.rollout steps=[1,2,4,8,16,32,64,128] workers=2 n_episodes=100

For each budget: success rate (95% Wilson interval), mean score, batch-1 chunk latency (median,
p95, p99, and as a multiple of one bare forward pass) and batched throughput. Writes
``report.json``, ``report.md``, ``success_vs_latency.png`` and optional videos to ``out_dir``.

Under ``torchrun --nproc_per_node=N -m shortcut_policy.rollout ...`` the episodes are sharded
over the N processes (each with its own environment workers and device); rank 0 gathers them,
times latency on its own device, and writes the one report.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from shortcut_policy.cli import user_errors
from shortcut_policy.evaluation.env_pool import EnvPool
from shortcut_policy.evaluation.episodes import EpisodeResult, Execution, run_episodes
from shortcut_policy.evaluation.latency import chunk_latency, chunk_throughput, forward_latency
from shortcut_policy.evaluation.report import (
    markdown_table,
    plot_success_vs_latency,
    summarize_episodes,
    write_json,
)
from shortcut_policy.evaluation.video import record_video
from shortcut_policy.policy import ShortcutPolicy
from shortcut_policy.policy.chunk_joins import (
    ChunkQueue,
    checked_join_setup,
)
from shortcut_policy.tasks import CONFIG_DIR, env_factory, newest_checkpoint_for_task
from shortcut_policy.training import distributed
from shortcut_policy.training.distributed import Rank
from shortcut_policy.training.settings import ConfigError


def shard_episodes(
    policy: ShortcutPolicy, pool: EnvPool, cfg: Any, steps: int, rank: Rank
) -> list[EpisodeResult]:
    """This rank's share of the evaluation seeds (every ``world``-th), with videos written."""
    seeds = list(range(cfg.start_seed, cfg.start_seed + cfg.n_episodes))
    mine = seeds[rank.rank :: rank.world]
    bar = tqdm(total=len(mine), desc=f"steps={steps}", disable=not (cfg.progress and rank.is_main))
    policy.seed(cfg.start_seed + rank.rank)
    results = run_episodes(
        policy,
        pool,
        mine,
        steps,
        record_seeds=seeds[: cfg.videos],
        on_episode=lambda _: bar.update(),
        execution=execution(cfg, policy),
    )
    bar.close()
    for result in results:
        if result.frames:
            record_video(result.frames, Path(cfg.out_dir) / f"steps{steps}_seed{result.seed}.mp4")
            result.frames = []  # written; not sent to rank 0
    return results


def execution(cfg: Any, policy: ShortcutPolicy) -> Execution:
    """How the rollout executes chunks (``execute``, ``delay``, ``join``, ``action_noise``),
    checked against the policy's chunk before any episode runs; sets the policy's
    ``warm_t``."""
    chosen = Execution(cfg.execute, cfg.delay, cfg.join, float(cfg.action_noise), cfg.warm_t)
    execute = chosen.execute or policy.n_action_steps
    try:
        # Checks execute, delay and join, and that the policy's chunks reach that far.
        ChunkQueue(policy.n_obs_steps, execute, chosen.delay, chosen.join, horizon=policy.horizon)
        prefix_max = getattr(policy.network, "prefix_max", 0)
        _, policy.warm_t = checked_join_setup(
            chosen.join,
            chosen.warm_t,
            policy.objective.name,
            prefix_max,
            policy.n_obs_steps,
            chosen.delay,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if chosen.action_noise < 0:
        raise ConfigError(f"action_noise is a standard deviation, got {chosen.action_noise}")
    return chosen


def evaluate_budget(
    policy: ShortcutPolicy, pool: EnvPool, cfg: Any, steps: int, probe_obs, rank: Rank
) -> dict[str, Any] | None:
    """Episodes (all ranks), then latency and throughput (rank 0) for one step budget.

    Returns the report row on rank 0, ``None`` on the others.
    """
    results = shard_episodes(policy, pool, cfg, steps, rank)
    with distributed.failures_named(rank, "rerun the rollout"):
        results = sorted(distributed.gather_lists(results, rank), key=lambda r: r.seed)
    if not rank.is_main:
        return None
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
    return row


def load_evaluated_policy(cfg: DictConfig, checkpoint, device: torch.device) -> ShortcutPolicy:
    """The policy to evaluate; with ``steps=auto`` its budget is the most passes whose p99
    latency fits ``deadline_ms`` on this device (timed before any environment starts)."""
    auto = cfg.steps == "auto"
    policy = ShortcutPolicy.from_pretrained(
        checkpoint,
        device=str(device),
        task=cfg.task.name,
        steps="auto" if auto else None,
        deadline_ms=cfg.deadline_ms if auto else None,
        sampler=cfg.sampler,
    )
    return policy  # with steps=auto, the choice is logged and kept in the report


def rollout(cfg: DictConfig) -> dict[str, Any] | None:
    """Evaluate one checkpoint at every budget in ``cfg.steps``.

    Returns the report (on rank 0 of a torchrun launch; ``None`` on the other ranks).
    """
    rank, device = distributed.start(cfg.device, cfg.distributed.timeout_s)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    checkpoint = cfg.checkpoint or newest_checkpoint_for_task(cfg.task.name)
    if rank.is_main:
        print(f"[rollout] checkpoint: {checkpoint} ({rank.world} process(es))")
    policy = load_evaluated_policy(cfg, checkpoint, device)
    asked = list(cfg.steps) if OmegaConf.is_list(cfg.steps) else [cfg.steps]
    if cfg.steps == "auto":
        asked = [policy.steps]  # chosen for cfg.deadline_ms on this device
    budgets = [policy.objective.budget(steps) for steps in asked]  # before any env starts
    execution(cfg, policy)  # refused before any worker starts
    out_dir = Path(cfg.out_dir)
    make_env = env_factory(cfg.task)
    if cfg.n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {cfg.n_episodes}")
    probe_env = make_env()
    probe_obs, _ = probe_env.reset(seed=cfg.start_seed)
    probe_env.close()
    forward = forward_latency(policy, probe_obs, cfg.latency_calls) if rank.is_main else None
    rows = []
    with EnvPool(make_env, cfg.workers, step_timeout_s=cfg.step_timeout_s) as pool:
        for steps in budgets:
            rows.append(evaluate_budget(policy, pool, cfg, steps, probe_obs, rank))
    if not rank.is_main:
        return None
    report = {
        "checkpoint": str(checkpoint),
        "task": cfg.task.name,
        "objective": policy.objective.name,
        "sampler": getattr(policy.objective, "sampler", None),
        "train_step": policy.meta.get("step"),
        "device": str(policy.device),
        "cuda_device": torch.cuda.get_device_name(policy.device)
        if policy.device.type == "cuda"
        else None,
        "torch_threads": torch.get_num_threads(),
        "processes": rank.world,
        "forward_latency": forward,
        "budget_choice": asdict(policy.budget_choice) if policy.budget_choice else None,
        "seeds": [cfg.start_seed, cfg.start_seed + cfg.n_episodes - 1],
        "execution": asdict(execution(cfg, policy)),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "budgets": rows,
    }
    table = markdown_table(rows)
    write_json(out_dir / "report.json", report)
    (out_dir / "report.md").write_text(table + "\n")
    sampler = getattr(policy.objective, "sampler", None)
    method = policy.objective.name + (f" ({sampler})" if sampler else "")
    title = f"{cfg.task.name}, {method}, train step {policy.meta.get('step')}"
    plot_success_vs_latency(out_dir / "success_vs_latency.png", rows, title)
    print(table)
    print(f"[rollout] report in {out_dir}")
    return report


@hydra.main(config_path=CONFIG_DIR, config_name="rollout", version_base=None)
def main(cfg: DictConfig) -> None:
    try:
        with user_errors("rollout"):
            rollout(cfg)
    finally:
        distributed.stop()


if __name__ == "__main__":
    main()
