"""The observation history and the queue of actions still to execute, for one episode."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from shortcut_policy.policy.chunk_joins import ChunkQueue


class ChunkBuffer:
    """Observation history and queue of actions still to execute, for one episode.

    ``ShortcutPolicy.select_action`` uses one; batched rollouts keep one per environment.
    ``delay`` and ``join`` say how a chunk that arrives late takes over (see
    :mod:`~shortcut_policy.policy.chunk_joins`); the defaults are the blocking behaviour.
    """

    def __init__(
        self, n_obs_steps: int, n_action_steps: int, delay: int = 0, join: str = "none"
    ) -> None:
        self.n_obs_steps, self.n_action_steps = n_obs_steps, n_action_steps
        self.observations: deque[dict[str, np.ndarray]] = deque(maxlen=n_obs_steps)
        self.queue = ChunkQueue(n_obs_steps, n_action_steps, delay, join)

    @property
    def needs_chunk(self) -> bool:
        return self.queue.needs_chunk

    def add_observation(self, obs: dict[str, np.ndarray]) -> None:
        self.observations.append(obs)

    def history(self, newest: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """``{key: (n_obs_steps, *shape)}``, the oldest observation repeated while too short;
        with ``newest``, the history as it would be once that observation is added."""
        frames = list(self.observations) + ([newest] if newest is not None else [])
        frames = frames[-self.n_obs_steps :]
        frames = [frames[0]] * (self.n_obs_steps - len(frames)) + frames
        return {key: np.stack([frame[key] for frame in frames]) for key in frames[0]}

    def enqueue(self, chunk: np.ndarray) -> None:
        """The chunk ``(horizon, Da)`` asked for at this tick (it starts at the oldest obs)."""
        self.queue.add(chunk)

    def pop(self) -> np.ndarray:
        return self.queue.pop()

    def next_action(
        self,
        obs: dict[str, np.ndarray],
        predict: Callable[[dict[str, np.ndarray]], np.ndarray],
    ) -> np.ndarray:
        """This tick's action: with an empty queue, a new chunk ``predict(history)`` from the
        history including ``obs`` first. ``obs`` is stored only once that chunk exists, so an
        observation whose chunk is refused leaves the history as it was."""
        chunk = predict(self.history(newest=obs)) if self.needs_chunk else None
        self.add_observation(obs)
        if chunk is not None:
            self.enqueue(chunk)
        return self.pop()
