"""Run evaluation episodes: environments in worker processes, one batched policy call per tick.

Each environment slot keeps its own :class:`ChunkBuffer`; at every tick the slots whose action
queue is empty are stacked into one ``predict_action_chunk`` call, so a GPU sees one batch
instead of one call per environment. A slot whose environment crashes or hangs returns an
``EnvFault``: its episode counts as a failure, is listed in the report, and the slot's worker is
replaced by the pool, so the evaluation always finishes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from envs.vector import EnvFault, EnvPool
from shortcut_policy.policy import ChunkBuffer, ShortcutPolicy


@dataclass
class EpisodeResult:
    """Outcome of one episode; ``fault`` is set when the environment crashed or hung."""

    seed: int
    success: bool = False
    score: float = 0.0
    length: int = 0
    fault: str | None = None
    frames: list[np.ndarray] = field(default_factory=list, repr=False)


@dataclass
class _Slot:
    result: EpisodeResult
    buffer: ChunkBuffer
    record: bool


def run_episodes(
    policy: ShortcutPolicy,
    pool: EnvPool,
    seeds: Iterable[int],
    steps: int,
    record_seeds: Iterable[int] = (),
    on_episode: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Evaluate ``policy`` with ``steps`` network passes per chunk on every seed.

    ``record_seeds`` are rendered every step into ``EpisodeResult.frames``. Results are returned
    in the order of ``seeds``.
    """
    pending = deque(seeds)
    record = set(record_seeds)
    results: dict[int, EpisodeResult] = {}
    order = list(pending)
    slots: dict[int, _Slot] = {}

    def finish(slot: int) -> None:
        done = slots.pop(slot).result
        results[done.seed] = done
        if on_episode is not None:
            on_episode(done)

    def fill(free: Iterable[int]) -> None:
        starts = {slot: pending.popleft() for slot in free if pending}
        for slot, outcome in pool.reset_many(starts).items():
            episode = _Slot(
                EpisodeResult(starts[slot]),
                ChunkBuffer(policy.n_obs_steps, policy.n_action_steps),
                starts[slot] in record,
            )
            slots[slot] = episode
            if isinstance(outcome, EnvFault):
                episode.result.fault = f"{outcome.kind} at reset: {outcome.message}"
                finish(slot)
            else:
                episode.buffer.add_observation(policy.validate(outcome, batched=False))
                _maybe_render(pool, slot, episode)

    while slots or pending:
        fill(sorted(set(range(pool.n_workers)) - set(slots)))  # refill after faults too
        if not slots:
            continue  # every reset failed; those episodes are recorded, try the next seeds
        _plan(policy, slots, steps)
        outcomes = pool.step_many({slot: s.buffer.pop() for slot, s in slots.items()})
        for slot, outcome in outcomes.items():
            if _advance(policy, pool, slot, slots[slot], outcome):
                finish(slot)
    return [results[seed] for seed in order]


def _plan(policy: ShortcutPolicy, slots: dict[int, _Slot], steps: int) -> None:
    """One batched chunk prediction for every slot whose queue is empty."""
    hungry = [slot for slot, s in slots.items() if s.buffer.needs_chunk]
    if not hungry:
        return
    histories = [slots[slot].buffer.history() for slot in hungry]
    batch = {key: np.stack([h[key] for h in histories]) for key in histories[0]}
    for slot, chunk in zip(hungry, policy.predict_action_chunk(batch, steps)):
        slots[slot].buffer.enqueue(chunk)


def _advance(policy, pool, slot: int, episode: _Slot, outcome) -> bool:
    """Apply one step's outcome; returns True when the episode is over."""
    result = episode.result
    if isinstance(outcome, EnvFault):
        result.fault = f"{outcome.kind} at step {result.length}: {outcome.message}"
        result.success, result.score = False, 0.0
        return True
    obs, _, terminated, truncated, info = outcome
    result.length += 1
    result.success = result.success or bool(info.get("is_success", False))
    result.score = max(result.score, float(info.get("score", result.success)))
    _maybe_render(pool, slot, episode)
    if terminated or truncated:
        return True
    episode.buffer.add_observation(policy.validate(obs, batched=False))
    return False


def _maybe_render(pool: EnvPool, slot: int, episode: _Slot) -> None:
    if episode.record:
        frame = pool.render(slot)
        if not isinstance(frame, EnvFault):
            episode.result.frames.append(frame)
