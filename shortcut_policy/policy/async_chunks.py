"""Non-blocking chunk execution: the next chunk is computed while the current one still runs.

With blocking execution, every ``n_action_steps``-th tick waits for a whole network call. Here
the next chunk is requested ``lead`` ticks before the current chunk's executed part ends, in a
background thread, from the newest observation. When it arrives, the actions that were executed
in the meantime are skipped, so each tick gets the new chunk's action for that tick::

    tick            L    L+1  ...  L+k   (request from the observation at tick L)
    old chunk       a    a         -     executed while the new chunk is computed
    new chunk       -    -         c[s+k] ...   (s = n_obs_steps - 1: the chunk index of tick L)

The switch happens at ``L + lead`` (the end of the old chunk's executed part) or at the tick the
new chunk arrives, whichever is later; until then the old chunk's remaining actions, up to its
horizon, fill in. So ``select_action`` waits on inference only for the first chunk of an
episode, or when inference takes longer than the old chunk's whole horizon.

With ``prefix=True`` (a policy trained with prefix conditioning, ``join='prefix'``) each request
also carries the actions already decided for the new chunk's first ``n_obs_steps - 1 + lead``
positions: those executed before tick L and the old chunk's plan for ticks L .. L + lead - 1,
which the robot executes whatever arrives; the new chunk is computed to continue them. With
``warm=True`` (``join='warm'``) each request carries the whole old plan shifted to the new
chunk's ticks instead, and the new chunk's sample starts from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from shortcut_policy.policy.chunk_buffer import ChunkBuffer
from shortcut_policy.policy.chunk_joins import shifted_plan

History = dict[str, np.ndarray]


@dataclass
class Chunk:
    """An action chunk ``(horizon, Da)`` and the tick of the newest observation it saw."""

    actions: np.ndarray
    origin: int


class AsyncChunks:
    """``select_action`` over a blocking ``predict(history) -> (horizon, Da)`` without waiting.

    Args:
        predict: one observation history ``{key: (n_obs_steps, *shape)}`` to one chunk. It runs
            in one background thread, never two calls at once.
        n_obs_steps, horizon, n_action_steps: as for the policy.
        lead: ticks before the end of a chunk's executed part at which the next one is
            requested; in ``[0, n_action_steps - 1]``. Larger hides slower inference behind
            the old chunk's planned actions, at the cost of older observations.
        prefix: pass ``predict(history, given)`` the committed prefix ``(mask (1, H), actions
            (1, H, Da))`` of each request (None for an episode's first chunk).
        warm: pass ``predict(history, warm=plan)`` the old plan ``(1, H, Da)`` shifted to the
            new chunk's ticks (None for an episode's first chunk).
    """

    def __init__(
        self,
        predict: Callable[[History], np.ndarray],
        n_obs_steps: int,
        horizon: int,
        n_action_steps: int,
        lead: int = 1,
        prefix: bool = False,
        warm: bool = False,
    ) -> None:
        if not 0 <= lead < n_action_steps:
            raise ValueError(
                f"async_lead must be in [0, n_action_steps - 1] = [0, {n_action_steps - 1}], "
                f"got {lead}"
            )
        self.predict, self.lead, self.prefix, self.warm = predict, lead, prefix, warm
        self.n_obs_steps, self.horizon, self.n_action_steps = n_obs_steps, horizon, n_action_steps
        self.start = n_obs_steps - 1
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="policy-chunks")
        self.waits = 0  # select_action calls that waited on inference after the first chunk
        self.reset()

    def reset(self) -> None:
        """Start a new episode; a request still running for the old one is ignored."""
        self.buffer = ChunkBuffer(self.n_obs_steps, self.n_action_steps)
        self.tick = -1
        self.current: Chunk | None = None
        self.ready: Chunk | None = None
        self.pending: tuple[Future, int] | None = None
        self.next_request = 0
        self.executed: list[np.ndarray] = []  # this episode's actions, for the prefix

    def select_action(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One checked observation in, the action ``(Da,)`` for this tick out."""
        self.tick += 1
        self.buffer.add_observation(dict(obs))
        if self.current is None:  # the episode's first chunk: the one call that must wait
            self.current = self._chunk_now()
            self.next_request = self.tick + self.n_action_steps - self.lead
        self._collect(wait=self._index(self.current) >= self.horizon)
        if self.ready is not None and self.tick >= self.ready.origin + self.lead:
            self.current, self.ready = self.ready, None
            self.next_request = self.current.origin + self.n_action_steps
        if self.pending is None and self.ready is None and self.tick >= self.next_request:
            self.pending = (self._request(), self.tick)
        action = self.current.actions[self._index(self.current)]
        self.executed.append(action)
        return action

    def _request(self) -> Future:
        """Ask the worker thread for a chunk from this tick's history (and its prefix or old
        plan)."""
        if self.prefix:
            return self.executor.submit(self.predict, self.buffer.history(), self._committed())
        if self.warm:
            return self.executor.submit(self.predict, self.buffer.history(), warm=self._planned())
        return self.executor.submit(self.predict, self.buffer.history())

    def _planned(self) -> np.ndarray | None:
        """``(1, H, Da)``: for a chunk asked for now, position ``i`` is tick ``now + i -
        start``: executed if past, else the current chunk's plan, its last action held past
        its end. None at an episode's first chunk."""
        if self.current is None or self.tick < self.start:
            return None
        current = self.current

        def plan_at(tick: int) -> np.ndarray:
            return current.actions[min(self.start + tick - current.origin, self.horizon - 1)]

        return shifted_plan(self.executed, self.tick, self.start, self.horizon, plan_at)[None]

    def _committed(self):
        """``(mask (1, H), actions (1, H, Da))`` decided for a chunk asked for now: the first
        ``start + lead`` positions of :meth:`_planned`."""
        length = self.start + self.lead
        plan = self._planned()
        if plan is None:
            return None
        if self.tick + self.lead - 1 - self.current.origin + self.start >= self.horizon:
            return None  # the current chunk has no plan that far: nothing can be promised
        plan[0, length:] = 0
        mask = np.arange(self.horizon) < length
        return mask[None], plan

    def _index(self, chunk: Chunk) -> int:
        """The chunk index of this tick's action."""
        return self.start + self.tick - chunk.origin

    def _collect(self, wait: bool) -> None:
        """Move a finished request to ``ready``; with ``wait``, block until it finishes."""
        if wait and self.pending is None:  # inference was never asked for in time: ask now
            self.pending = (self._request(), self.tick)
        if self.pending is None or not (wait or self.pending[0].done()):
            return
        future, origin = self.pending
        if wait and not future.done():
            self.waits += 1
        self.pending = None
        self.ready = Chunk(future.result(), origin)  # an inference error surfaces here
        if wait:  # the old chunk is used up: switch now, whatever the lead
            self.current, self.ready = self.ready, None
            if self._index(self.current) >= self.horizon:  # slower than a whole horizon
                self.current = self._chunk_now()
            self.next_request = self.current.origin + self.n_action_steps

    def _chunk_now(self) -> Chunk:
        """A chunk from this tick's history, waited for. It goes through the worker thread
        too, so ``predict`` never runs twice at once (a reset can leave a request running)."""
        history = self.buffer.history()
        return Chunk(self.executor.submit(self.predict, history).result(), self.tick)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
