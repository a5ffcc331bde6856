"""Run evaluation episodes: environments in worker processes, one batched policy call per tick.

Each environment slot keeps its own :class:`ChunkBuffer`; at every tick the slots whose action
queue is empty are stacked into one ``predict_action_chunk`` call, so a GPU sees one batch
instead of one call per environment. A slot whose environment crashes or hangs returns an
``EnvFault``: its episode counts as a failure, is listed in the report, and the slot's worker is
replaced by the pool, so the evaluation always finishes. An observation the policy refuses (NaN
from a glitching simulator) or a chunk it refuses (non-finite actions) fails that episode alone,
in the same way.

How chunks are executed is an :class:`Execution`: the ticks between two requests, the delay
before a chunk takes over and how it joins the one it replaces (counted in ticks, so the
results do not depend on the machine's load), and Gaussian noise added to every executed
action (seeded per episode), which makes closed-loop correction matter.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from shortcut_policy.evaluation.env_pool import EnvFault, EnvPool
from shortcut_policy.policy import ShortcutPolicy
from shortcut_policy.policy.chunk_buffer import ChunkBuffer
from shortcut_policy.policy.chunk_joins import given_batch, join_metrics, warm_batch


@dataclass
class EpisodeResult:
    """Outcome of one episode; ``fault`` says why it failed early (crash, hang, bad input)."""

    seed: int
    success: bool = False
    score: float = 0.0
    length: int = 0
    fault: str | None = None
    joins: dict[str, float | None] = field(default_factory=dict)  # chunk_joins.join_metrics
    frames: list[np.ndarray] = field(default_factory=list, repr=False)

    def fail(self, reason: str) -> None:
        """End the episode as a failure, whatever it reached, and say why."""
        self.fault, self.success, self.score = reason, False, 0.0


@dataclass(frozen=True)
class Execution:
    """How chunks are executed. ``execute`` None: the policy's ``n_action_steps``; ``delay``
    ticks between a request and its chunk taking over; ``join``: ``none``, ``ensemble``,
    ``prefix`` (the committed actions given to a prefix-trained network) or ``warm`` (each
    sample starts from the old plan at the policy's ``warm_t``);
    ``action_noise``: std of Gaussian noise added to each executed action (data units);
    ``warm_t``: recorded for the report (the policy's own ``warm_t`` is what sampling uses)."""

    execute: int | None = None
    delay: int = 0
    join: str = "none"
    action_noise: float = 0.0
    warm_t: float = 0.5


@dataclass
class _Slot:
    result: EpisodeResult
    buffer: ChunkBuffer
    record: bool
    noise: np.random.Generator


def run_episodes(
    policy: ShortcutPolicy,
    pool: EnvPool,
    seeds: Iterable[int],
    steps: int,
    record_seeds: Iterable[int] = (),
    on_episode: Callable[[EpisodeResult], None] | None = None,
    execution: Execution = Execution(),
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
        ended = slots.pop(slot)
        done = ended.result
        done.joins = join_metrics(ended.buffer.queue)
        results[done.seed] = done
        if on_episode is not None:
            on_episode(done)

    def fill(free: Iterable[int]) -> None:
        starts = {slot: pending.popleft() for slot in free if pending}
        for slot, outcome in pool.reset_many(starts).items():
            episode = _Slot(
                EpisodeResult(starts[slot]),
                ChunkBuffer(
                    policy.n_obs_steps,
                    execution.execute or policy.n_action_steps,
                    execution.delay,
                    execution.join,
                ),
                starts[slot] in record,
                np.random.default_rng([starts[slot], 7]),  # the same noise on every machine
            )
            slots[slot] = episode
            if isinstance(outcome, EnvFault):
                episode.result.fail(f"{outcome.kind} at reset: {outcome.message}")
                finish(slot)
            elif _observe(policy, episode, outcome):
                _maybe_render(pool, slot, episode)
            else:
                finish(slot)

    while slots or pending:
        fill(sorted(set(range(pool.n_workers)) - set(slots)))  # refill after faults too
        if not slots:
            continue  # every reset failed; those episodes are recorded, try the next seeds
        for slot in _plan(policy, slots, steps):
            finish(slot)
        if not slots:
            continue
        actions = {slot: _noisy(s, execution.action_noise) for slot, s in slots.items()}
        outcomes = pool.step_many(actions)
        for slot, outcome in outcomes.items():
            if _advance(policy, pool, slot, slots[slot], outcome):
                finish(slot)
    return [results[seed] for seed in order]


def _plan(policy: ShortcutPolicy, slots: dict[int, _Slot], steps: int) -> list[int]:
    """One batched chunk prediction for every slot whose queue is empty; returns the slots
    whose episode failed because the policy produced a non-finite action for them."""
    hungry = [slot for slot, s in slots.items() if s.buffer.needs_chunk]
    if not hungry:
        return []
    try:
        chunks = _predict(policy, [slots[slot] for slot in hungry], steps)
    except ValueError:  # some row gave NaN actions: find it alone, keep the other episodes
        chunks = []
        for slot in hungry:
            try:
                chunks.append(_predict(policy, [slots[slot]], steps)[0])
            except ValueError as err:
                result = slots[slot].result
                result.fail(f"policy at step {result.length}: {err}")
                chunks.append(None)
    for slot, chunk in zip(hungry, chunks):
        if chunk is not None:
            slots[slot].buffer.enqueue(chunk)
    return [slot for slot, chunk in zip(hungry, chunks) if chunk is None]


def _noisy(episode: _Slot, std: float) -> np.ndarray:
    """This tick's action, with the execution noise added (the policy's own is what the join
    metrics see)."""
    action = episode.buffer.pop()
    if std == 0:
        return action
    return action + episode.noise.normal(0.0, std, size=action.shape).astype(action.dtype)


def _predict(policy: ShortcutPolicy, episodes: list[_Slot], steps: int) -> np.ndarray:
    warm_rows = _warm_rows(policy, episodes)
    if 0 < len(warm_rows) < len(episodes):  # a first chunk among warm ones: it starts cold
        chunks = np.empty((len(episodes), policy.horizon, policy.network.spec["action_dim"]))
        cold_rows = [i for i in range(len(episodes)) if i not in warm_rows]
        for rows in (warm_rows, cold_rows):
            chunks[rows] = _predict(policy, [episodes[i] for i in rows], steps)
        return chunks.astype(np.float32)
    histories = [episode.buffer.history() for episode in episodes]
    batch = {key: np.stack([h[key] for h in histories]) for key in histories[0]}
    queues = [episode.buffer.queue for episode in episodes]
    given, warm = given_batch(queues, policy.horizon), warm_batch(queues, policy.horizon)
    # observations were checked on arrival
    return policy.predict_checked(batch, steps, given=given, warm=warm)


def _warm_rows(policy: ShortcutPolicy, episodes: list[_Slot]) -> list[int]:
    """The rows that have an old plan to start warm from (``join='warm'`` only)."""
    queues = [episode.buffer.queue for episode in episodes]
    if queues[0].join != "warm":
        return []
    return [i for i, queue in enumerate(queues) if queue.planned(policy.horizon) is not None]


def _observe(policy: ShortcutPolicy, episode: _Slot, obs) -> bool:
    """Add a checked observation to the episode's history; False (the episode failed, its
    reason recorded) when the simulator returned a bad one, e.g. NaN after a glitch."""
    try:
        episode.buffer.add_observation(policy.validate(obs, batched=False))
    except ValueError as err:
        episode.result.fail(f"bad observation at step {episode.result.length}: {err}")
        return False
    return True


def _advance(policy, pool, slot: int, episode: _Slot, outcome) -> bool:
    """Apply one step's outcome; returns True when the episode is over."""
    result = episode.result
    if isinstance(outcome, EnvFault):
        result.fail(f"{outcome.kind} at step {result.length}: {outcome.message}")
        return True
    obs, _, terminated, truncated, info = outcome
    result.length += 1
    result.success = result.success or bool(info.get("is_success", False))
    result.score = max(result.score, float(info.get("score", result.success)))
    _maybe_render(pool, slot, episode)
    if terminated or truncated:
        return True
    return not _observe(policy, episode, obs)


def _maybe_render(pool: EnvPool, slot: int, episode: _Slot) -> None:
    if episode.record:
        frame = pool.render(slot)
        if not isinstance(frame, EnvFault):
            episode.result.frames.append(frame)
