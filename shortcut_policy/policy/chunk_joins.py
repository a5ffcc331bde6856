"""Which action runs at each control tick when a new chunk arrives ``delay`` ticks late.

On a robot the next chunk is computed while the current one runs, so it starts from an
observation that is ``delay`` ticks old. Counted in ticks (not wall time), so an evaluation is
the same on any machine::

    tick           r    r+1  ...  r+D-1   r+D  ...          (request from the observation at r)
    previous chunk a    a         a       -                 still executing: committed
    new chunk      -    -         -       c[s+D] c[s+D+1]   takes over at index D (s = n_obs - 1)

A request is made every ``execute`` ticks; an episode's first chunk is waited for (it runs from
its first tick). ``delay=0`` is the blocking behaviour: each chunk runs ``execute`` actions from
the tick it was asked for. Joins:

* ``none``: the newest chunk alone, from the tick it takes over;
* ``ensemble``: ACT's temporal ensembling, the mean of every available chunk's action for this
  tick weighted ``exp(-m * i)``, ``i = 0`` for the oldest;
* ``prefix``: as ``none``, but the new chunk is asked for with its committed prefix
  (:meth:`ChunkQueue.committed_prefix`: the executed and the still-to-execute actions for its
  first ``n_obs_steps - 1 + delay`` positions), which a network trained with ``prefix_max``
  takes as given (``models/prefix.py``);
* ``warm``: as ``none``, but the new chunk's sample starts at ``warm_t`` on the path from the
  noise to the old plan shifted to the new chunk's ticks (:meth:`ChunkQueue.planned`; One-Step
  Flow Policy, arXiv 2603.12480): any flow-type policy, no retraining. The old plan ends
  before the new chunk does; its last action is held there, so a ``warm_t`` near 1 pulls the
  new chunk's tail toward standing still.

What a join is judged by (:func:`join_metrics`): the jump ``|a_k - a_(k-1)|`` at the ticks where
a chunk takes over against the same mean over the other ticks (the boundary ratio), the mean jerk
(third difference), and the prefix error: how far the new chunk's actions for the delayed ticks
``new[s : s + D]`` are from the committed ones the robot executed meanwhile.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

JOINS = ("none", "ensemble", "prefix", "warm")


def checked_join(join: str, async_chunks: bool = False) -> str:
    """``join`` if it is known and fits the execution mode, else a ``ValueError`` saying why."""
    if join not in JOINS:
        raise ValueError(f"join={join!r}; choose one of {', '.join(JOINS)}")
    if async_chunks and join == "ensemble":
        raise ValueError(
            "join='ensemble' is not available with async_chunks=True (the non-blocking "
            "executor replaces each chunk at its own switch tick); use 'none', 'warm' or "
            "'prefix' there"
        )
    return join


def checked_warm_t(warm_t: object) -> float:
    """``warm_t`` if it is a number in (0, 1), else a ``ValueError`` saying so."""
    number = isinstance(warm_t, numbers.Real) and not isinstance(warm_t, bool)
    if not number or not 0.0 < float(warm_t) < 1.0:
        raise ValueError(f"warm_t is where a warm sample starts, a time in (0, 1); got {warm_t!r}")
    return float(warm_t)


def check_join_runs(
    join: str, objective_name: str, cuda_graph: bool = False, warm_t: float = 0.5
) -> None:
    """A ``ValueError`` when ``join`` cannot run here: ``warm`` needs a flow-type sampler (not
    DDPM) and, on a shortcut network, ``1 - warm_t`` a power of two (its jumps must stay the
    trained sizes); CUDA graphs take neither a prefix nor a warm start yet."""
    if join == "warm" and objective_name == "ddpm":
        raise ValueError("join='warm' needs a flow-type policy; DDPM/DDIM has no warm start")
    span = 1.0 - warm_t
    if join == "warm" and objective_name == "shortcut" and span != 2.0 ** round(math.log2(span)):
        raise ValueError(
            f"join='warm' on a shortcut policy needs 1 - warm_t a power of two (warm_t = 0.5, "
            f"0.75, 0.875, ...); got warm_t={warm_t}"
        )
    if cuda_graph and join in ("prefix", "warm"):
        raise ValueError(f"join={join!r} cannot run through cuda_graph=True yet; drop one")


def check_prefix_fits(join: str, prefix_max: int, n_obs_steps: int, delay: int) -> None:
    """``join='prefix'`` needs a network trained with prefixes at least as long as the ones it
    will be given (``n_obs_steps - 1 + delay``); a ``ValueError`` says which fix applies."""
    if join != "prefix":
        return
    needed = n_obs_steps - 1 + delay
    if prefix_max == 0:
        raise ValueError(
            "join='prefix' needs a policy trained with prefix conditioning (train with "
            "+model.prefix_max=8); this one was not: use join='none' or 'ensemble'"
        )
    if needed > prefix_max:
        raise ValueError(
            f"join='prefix' at delay={delay} gives {needed} actions, but the policy was trained "
            f"with prefixes of at most {prefix_max}; lower the delay to at most "
            f"{prefix_max - n_obs_steps + 1} or retrain with +model.prefix_max={needed}"
        )


def shifted_plan(
    executed: list[np.ndarray], now: int, start: int, horizon: int, plan_at
) -> np.ndarray:
    """``(horizon, Da)`` for a chunk asked for at tick ``now``: position ``i`` is tick ``now + i
    - start``; past ticks hold ``executed[tick]``, the others ``plan_at(tick)`` (the plan of the
    chunk that will be running then). The one rule both the evaluation's queue and the robot's
    non-blocking executor use to build a prefix or a warm start."""
    ticks = range(now - start, now - start + horizon)
    plan = [executed[tick] if tick < now else plan_at(tick) for tick in ticks]
    return np.stack(plan).astype(plan[-1].dtype, copy=False)


def check_chunk_covers(horizon: int, n_obs_steps: int, execute: int, delay: int = 0) -> None:
    """A ``ValueError`` unless a chunk of ``horizon`` actions reaches the last tick it runs:
    index ``n_obs_steps - 1 + delay + execute - 1`` (its index ``n_obs_steps - 1`` is the
    action for the tick it was asked for)."""
    last = n_obs_steps - 1 + delay + execute - 1
    if last >= horizon:
        raise ValueError(
            f"a chunk of {horizon} actions cannot cover execute={execute} ticks after a delay "
            f"of {delay} (needs index {last}, from n_obs_steps - 1 = {n_obs_steps - 1}); lower "
            "execute or delay"
        )


def checked_join_setup(
    join: str,
    warm_t: object,
    objective_name: str,
    prefix_max: int,
    n_obs_steps: int,
    delay: int,
    async_chunks: bool = False,
    cuda_graph: bool = False,
) -> tuple[str, float]:
    """``(join, warm_t)`` checked together, the one check the policy, the client and the
    rollout share: a known join that fits the execution mode, the objective and CUDA graphs,
    ``warm_t`` in (0, 1), and for ``prefix`` a network trained with prefixes long enough for
    ``delay``. A ``ValueError`` names what does not fit and the fix."""
    join, warm_t = checked_join(join, async_chunks), checked_warm_t(warm_t)
    check_join_runs(join, objective_name, cuda_graph, warm_t)
    check_prefix_fits(join, prefix_max, n_obs_steps, delay)
    return join, warm_t


def given_batch(queues: list[ChunkQueue], horizon: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mask (B, H), actions (B, H, Da))``: each queue's committed prefix in data units, float32
    (rows with none decided yet: nothing given), or None when no row has one or the join is not
    ``prefix``."""
    if not queues or queues[0].join != "prefix":
        return None
    prefixes = [queue.committed_prefix(horizon) for queue in queues]
    decided = [values for length, values in prefixes if length]
    if not decided:
        return None
    mask = np.stack([np.arange(horizon) < length for length, _ in prefixes])
    nothing = np.zeros_like(decided[0])
    values = np.stack([values if length else nothing for length, values in prefixes])
    return mask, values.astype(np.float32)


def warm_batch(queues: list[ChunkQueue], horizon: int) -> np.ndarray | None:
    """``(B, H, Da)``: each queue's old plan shifted to the chunk asked for now (float32), or
    None unless the join is ``warm`` and every row has one (an episode's first chunk has none:
    a batch starts warm only when every row can)."""
    if not queues or queues[0].join != "warm":
        return None
    plans = [queue.planned(horizon) for queue in queues]
    if any(plan is None for plan in plans):
        return None
    return np.stack(plans).astype(np.float32)


def checked_given(given, rows: int, horizon: int, action_dim: int, prefix_max: int):
    """``given`` ``(mask (B, H), actions (B, H, Da))`` as bool and float32 arrays, or a
    ``ValueError`` naming what is wrong (shape, NaN, a network that takes no prefix)."""
    if given is None:
        return None
    if prefix_max == 0:
        raise ValueError(
            "a committed prefix was given, but this policy was trained without prefix "
            "conditioning (prefix_max = 0): send no prefix (join='none'), or retrain with "
            "+model.prefix_max=8"
        )
    mask, values = np.asarray(given[0]), np.asarray(given[1], dtype=np.float32)
    if mask.shape != (rows, horizon) or values.shape != (rows, horizon, action_dim):
        raise ValueError(
            f"the committed prefix must be a mask ({rows}, {horizon}) and actions ({rows}, "
            f"{horizon}, {action_dim}); got {mask.shape} and {values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError(
            "the committed prefix holds NaN or inf actions; send only the actions the robot "
            "will execute, in data units"
        )
    lengths = mask.astype(bool).sum(1)
    if not np.array_equal(mask.astype(bool), np.arange(horizon) < lengths[:, None]):
        raise ValueError(
            "the committed mask must cover the first positions of each chunk only (True up to "
            "the prefix length, then False)"
        )
    if lengths.max() > prefix_max:
        raise ValueError(
            f"a prefix of {lengths.max()} actions; this policy takes at most {prefix_max}: "
            f"send fewer, or retrain with +model.prefix_max={lengths.max()}"
        )
    return mask.astype(bool), values


@dataclass
class _Chunk:
    actions: np.ndarray  # (horizon, Da)
    request: int  # tick of the newest observation it saw
    active: int  # first tick it is executed
    first: bool  # the episode's first chunk: it takes over at once, and joins nothing


class ChunkQueue:
    """Chunks in flight and the action of each tick (see the module docstring).

    Args:
        n_obs_steps: observations a chunk conditions on; a chunk's index ``n_obs_steps - 1`` is
            the action for its request tick.
        execute: ticks between two requests (``n_action_steps`` by default).
        delay: ticks between a request and the tick its chunk takes over.
        join: how chunks join (``none``, ``ensemble``, ``warm``, ``prefix``); the queue itself
            only mixes chunks for ``ensemble``, whose ``ensemble_m`` is ACT's weight decay
            ``m``; ``warm`` and ``prefix`` change how the chunk is sampled (``planned``,
            ``committed_prefix``).
        horizon: the chunks' length, checked against ``execute`` and ``delay`` at once (else
            at the first chunk).
    """

    def __init__(
        self,
        n_obs_steps: int,
        execute: int,
        delay: int = 0,
        join: str = "none",
        ensemble_m: float = 0.01,
        horizon: int | None = None,
    ) -> None:
        checked_join(join)
        if execute < 1 or delay < 0:
            raise ValueError(f"execute must be >= 1 and delay >= 0 ticks, got {execute}, {delay}")
        if horizon is not None:
            check_chunk_covers(horizon, n_obs_steps, execute, delay)
        self.start, self.execute, self.delay = n_obs_steps - 1, execute, delay
        self.join, self.ensemble_m = join, ensemble_m
        self.tick = 0
        self.chunks: list[_Chunk] = []
        self.executed: list[np.ndarray] = []  # the policy's action at every tick so far
        self.switch_ticks: list[int] = []
        self.prefix_errors: list[float] = []

    @property
    def needs_chunk(self) -> bool:
        """A request is due at this tick (every ``execute`` ticks from the episode's start)."""
        return self.tick % self.execute == 0 and not self._requested_now()

    def add(self, actions: np.ndarray) -> None:
        """The chunk ``(horizon, Da)`` asked for at this tick."""
        check_chunk_covers(len(actions), self.start + 1, self.execute, self.delay)
        first = not self.chunks
        active = self.tick if first else self.tick + self.delay
        self.chunks.append(_Chunk(np.asarray(actions), self.tick, active, first))

    def pop(self) -> np.ndarray:
        """This tick's action; advances the clock."""
        live = [c for c in self.chunks if c.active <= self.tick < c.request + self._reach(c)]
        if not live:
            raise RuntimeError("no chunk covers this tick: add the requested chunk first")
        newest = live[-1]
        if newest.active == self.tick and not newest.first:
            self._note_switch(newest)
        if self.join != "ensemble":
            action = self._action(newest)
            self.chunks = [c for c in self.chunks if c is newest or c.active > self.tick]
        else:
            weights = np.exp(-self.ensemble_m * np.arange(len(live)))
            action = sum(w * self._action(c) for w, c in zip(weights, live)) / weights.sum()
            self.chunks = [c for c in self.chunks if self.tick + 1 < c.request + self._reach(c)]
        self.executed.append(action)
        self.tick += 1
        return action

    def committed_prefix(self, horizon: int) -> tuple[int, np.ndarray | None]:
        """For the chunk asked for at this tick: how many of its first positions are decided
        and their actions ``(horizon, Da)`` (zeros after them). Position ``i`` is the tick
        ``now + i - (n_obs_steps - 1)``: past ticks hold what was executed, the ``delay`` ticks
        before the chunk takes over hold the current chunk's plan. ``(0, None)`` at an
        episode's first chunk."""
        plan = self.planned(horizon)
        if plan is None:
            return 0, None
        length = min(self.start + self.delay, horizon)
        plan[length:] = 0
        return length, plan

    def planned(self, horizon: int) -> np.ndarray | None:
        """``(horizon, Da)``: what the robot did or plans to do at each position of the chunk
        asked for at this tick (position ``i`` is tick ``now + i - (n_obs_steps - 1)``):
        executed actions for past ticks, then the plan of the chunk that will be running, its
        last action held past its end. None at an episode's first chunk."""
        if not self.chunks or self.tick < self.start:
            return None

        def plan_at(tick: int) -> np.ndarray:
            # The chunk that will be running then (with delay > execute, not the newest).
            running = [c for c in self.chunks if c.active <= tick][-1]
            return running.actions[
                min(self.start + tick - running.request, len(running.actions) - 1)
            ]

        return shifted_plan(self.executed, self.tick, self.start, horizon, plan_at)

    def _requested_now(self) -> bool:
        return bool(self.chunks) and self.chunks[-1].request == self.tick

    def _reach(self, chunk: _Chunk) -> int:
        """Ticks after its request that a chunk has actions for."""
        return len(chunk.actions) - self.start

    def _action(self, chunk: _Chunk) -> np.ndarray:
        return chunk.actions[self.start + self.tick - chunk.request]

    def _note_switch(self, new: _Chunk) -> None:
        self.switch_ticks.append(self.tick)
        if self.delay:
            planned = new.actions[self.start : self.start + self.delay]
            committed = np.stack(self.executed[new.request : new.request + self.delay])
            self.prefix_errors.append(float(np.linalg.norm(planned - committed, axis=1).mean()))


def join_metrics(queue: ChunkQueue) -> dict[str, float | None]:
    """Boundary ratio, mean jerk and mean prefix error of one episode (None where undefined:
    fewer than two chunks, no delay). Actions in data units, jerk per tick cubed."""
    actions = np.asarray(queue.executed, dtype=np.float64)
    jumps = np.linalg.norm(np.diff(actions, axis=0), axis=1) if len(actions) > 1 else np.zeros(0)
    at_switch = np.zeros(len(jumps), dtype=bool)
    at_switch[[k - 1 for k in queue.switch_ticks if 1 <= k <= len(jumps)]] = True
    others = jumps[~at_switch].mean() if (~at_switch).any() else 0.0
    ratio = jumps[at_switch].mean() / others if at_switch.any() and others > 0 else None
    jerk = np.linalg.norm(np.diff(actions, n=3, axis=0), axis=1) if len(actions) > 3 else None
    return {
        "boundary_ratio": None if ratio is None else float(ratio),
        "jerk": None if jerk is None else float(jerk.mean()),
        "prefix_error": float(np.mean(queue.prefix_errors)) if queue.prefix_errors else None,
    }
