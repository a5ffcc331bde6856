"""One training loop for every network and objective: ``python -m shortcut_policy.train task=...``.

The loop only knows five things about a network: ``prepare_batch(batch) -> (x1, cond)``,
``free_positions(batch)`` (what counts in the loss), the ``net(x, t, d, cond)`` call the
objective makes, its parameters, and its state dict. The objective
takes the network (and its EMA copy, the teacher) as arguments.

The same loop runs data-parallel under ``torchrun --nproc_per_node=N -m shortcut_policy.train``:
``train.batch_size`` is the *global* batch, split evenly over the ranks, so a run's data, learning
rate and checkpoints do not depend on how many processes train it (and it resumes on any number).
The noise of step ``s`` on rank ``r`` is drawn from a seed fixed by ``(seed, s, r)``.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from tqdm import tqdm

from shortcut_policy.cli import user_errors
from shortcut_policy.evaluation.evaluators import SIMULATOR_EVALUATORS, get_evaluator
from shortcut_policy.models import build_network
from shortcut_policy.objectives import build_objective
from shortcut_policy.tasks import CONFIG_DIR, TaskData, check_env_observations, load_task_data
from shortcut_policy.training import distributed
from shortcut_policy.training.batches import StepBatchSampler
from shortcut_policy.training.device_batches import DeviceBatches, stacked_bytes
from shortcut_policy.training.distributed import Rank
from shortcut_policy.training.ema import ema_decay_at, update_ema
from shortcut_policy.training.logger import MetricLogger
from shortcut_policy.training.loss_module import ObjectiveLoss, loss_module
from shortcut_policy.training.run_state import (
    Run,
    prepare_run_dir,
    resume_hint,
    save_run,
    synced_weight_digests,
)
from shortcut_policy.training.schedule import step_seed, warmup_cosine_lr
from shortcut_policy.training.settings import check_train_config


def build_run(cfg: DictConfig) -> Run:
    """Datasets, network, EMA copy, objective and optimizer from a resolved config."""
    check_train_config(cfg)
    objective = build_objective(OmegaConf.to_container(cfg.objective))
    for steps in cfg.eval_steps:  # refused now, not at the first evaluation hours later
        objective.budget(steps)
    rank, device = distributed.start(cfg.device, cfg.distributed.timeout_s)
    cfg.train.precision = resolved_precision(cfg.train.precision, device)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = load_task_data_once(cfg, rank)
    if cfg.eval_every and cfg.task.get("env") and rank.is_main:
        check_env_observations(cfg.task, data.spec)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model = build_network(data.spec, model_cfg, data.normalizer).to(device)
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    teacher = None  # a separate teacher EMA; Shortcut checks that it implies ema_teacher
    if objective.teacher_decay:
        teacher = copy.deepcopy(model).requires_grad_(False).eval()
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.train.lr,
        betas=tuple(cfg.train.betas),
        weight_decay=cfg.train.weight_decay,
    )
    return Run(
        cfg,
        data,
        model,
        ema,
        objective,
        loss_module(model, objective, rank, device),
        optimizer,
        device,
        rank,
        Path(cfg.run_dir),
        teacher=teacher,
    )


def resolved_precision(precision: str, device: torch.device) -> str:
    """``auto`` becomes ``bf16`` where the device computes bf16 natively, else ``fp32``.

    On a CPU with AVX512-BF16 or AMX, bf16 autocast trains the U-Net in 0.63x the fp32 time and
    to the same 1-pass score (docs/RESULTS.md, "One pass as good as many"); elsewhere bf16 is
    emulated and slower, so ``auto`` keeps fp32 there.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        # Emulated bf16 (pre-Ampere) counts as supported by default and is slower than fp32.
        native = torch.cuda.is_bf16_supported(including_emulation=False)
        return "bf16" if native else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU advertises bf16 arithmetic (x86 ``avx512_bf16`` / ``amx_bf16``)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: keep fp32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def load_task_data_once(cfg: DictConfig, rank: Rank) -> TaskData:
    """The task's datasets; rank 0 generates a missing store while the other ranks wait."""
    hint = "rank 0 failed or took longer than distributed.timeout_s to prepare the dataset"
    if not rank.is_main:
        with distributed.failures_named(rank, hint):
            distributed.barrier(rank)
    data = load_task_data(cfg.task, cfg.dataset)
    if rank.is_main:
        distributed.barrier(rank)
    return data


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch.to(device, non_blocking=True)


def train_step(run: Run, batch: dict) -> dict[str, torch.Tensor]:
    """One optimizer step on this rank's share of the global batch; returns this rank's
    metrics as 0-d tensors (read on the host only at log steps: see :func:`logged`)."""
    cfg = run.cfg.train
    lr = warmup_cosine_lr(run.step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.lr_floor)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    torch.manual_seed(step_seed(run.cfg.seed, run.step, run.rank.rank))
    autocast = torch.autocast(run.device.type, torch.bfloat16, enabled=cfg.precision == "bf16")
    with autocast:
        loss, metrics = run.loss_fn(batch, run.teacher if run.teacher is not None else run.ema)
    run.optimizer.zero_grad(set_to_none=True)
    with distributed.failures_named(run.rank, resume_hint(run)):
        loss.backward()  # DDP averages the gradients over ranks here
    grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.optimizer.step()
    update_ema(run.ema, run.model, ema_decay_at(run.step, cfg.ema_decay))
    if run.teacher is not None:
        update_ema(run.teacher, run.model, ema_decay_at(run.step, run.objective.teacher_decay))
    run.step += 1
    return {**metrics, "grad_norm": grad_norm.detach()}


def logged(run: Run, metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    """A step's metrics averaged over ranks, as floats: the one host sync of a log step.

    A non-finite loss stops the run here, on every rank alike, before any checkpoint of the
    diverged weights is written (checkpoint steps are always log steps).
    """
    with distributed.failures_named(run.rank, resume_hint(run)):
        values = distributed.mean_over_ranks(metrics, run.rank, run.device)
    if not math.isfinite(values["loss"]):
        raise FloatingPointError(
            f"loss is {values['loss']} at step {run.step}; lower train.lr or check the data "
            "(the run resumes from its last checkpoint)"
        )
    return values


@torch.no_grad()
def validation_loss(run: Run) -> dict[str, float]:
    """Mean objective loss of the EMA network on fixed validation batches, computed by the
    training loss module (the same teacher and conditioning rules as a training step)."""
    if run.data.val is None:
        return {}
    loader = DataLoader(run.data.val, batch_size=run.cfg.train.batch_size, shuffle=False)
    loss_fn = ObjectiveLoss(run.ema, run.objective)
    teacher = run.teacher if run.teacher is not None else run.ema
    totals: dict[str, list[torch.Tensor]] = {}
    torch.manual_seed(run.cfg.seed)  # the same noise at every validation
    for i, batch in enumerate(loader):
        if i >= run.cfg.val_batches:
            break
        _, metrics = loss_fn(to_device(batch, run.device), teacher)
        for key, value in metrics.items():
            totals.setdefault(f"val/{key}", []).append(value)
    means = torch.stack([torch.stack(values).mean() for values in totals.values()]).tolist()
    return dict(zip(totals, means, strict=True))


def evaluate(run: Run) -> dict[str, float]:
    """The task's evaluator on the EMA weights, at the configured step budgets.

    When the evaluator reports ``score@<first budget>``, a new maximum is saved as the labelled
    ``best`` checkpoint (selected on the training-evaluation seeds, not the final ones).
    """
    name = run.cfg.task.evaluator
    out_dir = run.run_dir / "eval" / f"step_{run.step:08d}"
    options = {"n_episodes": run.cfg.eval_episodes} if name in SIMULATOR_EVALUATORS else {}
    metrics = get_evaluator(name)(
        run.ema, run.objective, run.data, list(run.cfg.eval_steps), out_dir, **options
    )
    metrics = {f"eval/{key}": value for key, value in metrics.items()}
    key = f"eval/score@{run.cfg.eval_steps[0]}"
    if key in metrics and metrics[key] > run.best_score:
        run.best_score = metrics[key]
        save_run(run, label="best", extra={"best_metric": key, "best_value": metrics[key]})
    return metrics


def training_batches(run: Run, sampler: StepBatchSampler) -> Any:
    """This rank's batches in step order: from device memory (``train.device_data``) or a
    loader (``train.num_workers`` processes; pinned memory on a GPU)."""
    cfg = run.cfg
    if cfg.train.device_data:
        batches = DeviceBatches(run.data.train, sampler, run.device)
        if run.rank.is_main:
            size_mb = stacked_bytes(batches.windows) / 1e6
            print(f"[train] training set on {run.device}: {size_mb:.1f} MB")
        return batches
    return DataLoader(
        run.data.train,
        batch_sampler=sampler,
        num_workers=cfg.train.num_workers,
        persistent_workers=cfg.train.num_workers > 0,
        # Page-locked batches let to_device's non_blocking copy overlap the previous step.
        pin_memory=run.device.type == "cuda",
        # Its own generator: worker seeds must not consume the global RNG, or a resumed run
        # would draw different noise than an uninterrupted one.
        generator=torch.Generator().manual_seed(cfg.seed + run.step),
    )


def time_is_up(stop_at: float | None, run: Run) -> bool:
    """Whether this invocation's ``train.max_minutes`` have passed, as rank 0 sees it (so
    every rank stops at the same step). Asked at log steps only: one broadcast per log."""
    if stop_at is None or run.step % run.cfg.logging.log_every:
        return False
    up = time.monotonic() >= stop_at
    if run.rank.world == 1:
        return up
    flag = torch.tensor([float(up)], device=run.device)
    torch.distributed.broadcast(flag, 0)
    return bool(flag.item())


def periodic(step: int, every: int, last: int) -> bool:
    return every > 0 and (step % every == 0 or step == last)


def train(cfg: DictConfig) -> Run:
    """Train until ``train.steps`` (or ``train.max_minutes``); resumable at any checkpoint.
    Returns the run, finished or paused."""
    run = build_run(cfg)
    stop_at = time.monotonic() + 60.0 * cfg.train.max_minutes if cfg.train.max_minutes else None
    prepare_run_dir(run)
    total = cfg.train.steps
    rank = run.rank
    sampler = StepBatchSampler(
        len(run.data.train), cfg.train.batch_size, cfg.seed, run.step, rank.rank, rank.world
    )
    loader = training_batches(run, sampler)
    logger = MetricLogger(
        run.run_dir,
        cfg.logging.mode,
        cfg.logging.project,
        OmegaConf.to_container(cfg, resolve=True),
        enabled=rank.is_main,
    )
    show = cfg.logging.progress and rank.is_main
    bar = tqdm(total=total, initial=run.step, disable=not show, desc="train")
    batches = iter(loader)
    # Steps and seconds of loading and training since the last log (no validation or rollouts).
    window_start, last_step = time.perf_counter(), run.step
    while run.step < total:
        if time_is_up(stop_at, run):
            save_run(run, extra={"rank_digests": synced_weight_digests(run)})
            break
        run.model.train()
        step_metrics = train_step(run, to_device(next(batches), run.device))
        bar.update(1)
        validate = periodic(run.step, cfg.val_every, total)
        rollouts = periodic(run.step, cfg.eval_every, total) and cfg.task.get("evaluator")
        checkpoint = periodic(run.step, cfg.checkpoint_every, total)
        if not (
            periodic(run.step, cfg.logging.log_every, total) or checkpoint or validate or rollouts
        ):
            continue
        lr = run.optimizer.param_groups[0]["lr"]
        metrics = {**logged(run, step_metrics), "lr": lr}  # every rank reaches this step
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{lr:.1e}")
        if run.device.type == "cuda":  # the queued steps must finish before they are timed
            torch.cuda.synchronize(run.device)
        metrics["steps_per_s"] = (run.step - last_step) / (time.perf_counter() - window_start)
        metrics["epoch"] = run.step / sampler.steps_per_epoch
        # Validation and rollouts run on rank 0 while the others wait at the next all-reduce
        # (for at most distributed.timeout_s).
        if rank.is_main and validate:
            metrics.update(validation_loss(run))
        if rank.is_main and rollouts:
            metrics.update(evaluate(run))
        logger.log(run.step, metrics)
        if checkpoint:
            save_run(run, extra={"rank_digests": synced_weight_digests(run)})
        window_start, last_step = time.perf_counter(), run.step
    if run.step == total:
        save_run(run, label="last", extra={"rank_digests": synced_weight_digests(run)})
    bar.close()
    logger.close()
    return run


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base=None)
def main(cfg: DictConfig) -> None:
    try:
        with user_errors("train"):
            run = train(cfg)
    finally:
        distributed.stop()
    if run.rank.is_main and run.step < cfg.train.steps:
        print(
            f"[train] paused at step {run.step} of {cfg.train.steps} after train.max_minutes="
            f"{cfg.train.max_minutes:g}; resume=true continues (checkpoints in "
            f"{run.run_dir / 'checkpoints'})"
        )
    elif run.rank.is_main:
        print(f"[train] finished {run.step} steps; checkpoints in {run.run_dir / 'checkpoints'}")


if __name__ == "__main__":
    main()
