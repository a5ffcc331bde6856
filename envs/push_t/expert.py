"""Scripted Push-T expert that plans with the simulator (``PushTExpert``).

How it works (see ``planner.py`` for the details):

1. Read the real env's full physics state (pusher position and velocity, block pose and velocity).
2. Sample a few dozen contact points along the T's edges (random offsets from the expert's own
   generator), route the pusher to each one around the block, and try pushing in three directions
   (the inward normal and +-30 degrees) for up to 12 steps, all in a private copy of the simulator.
3. Score every (contact, direction, push length) by its rate of progress: the mean keypoint error
   to the goal pose (px) removed per step, approach steps included. Keep the best length of each
   (contact, direction). Draw an edge of the T uniformly among those with a push within 30% of
   the best rate (10% once the error is under 30 px), then a push on that edge; routes go round
   either side of the block when both are about as long. So near-equal options (approach from
   either side of the T, different contact points) are chosen at random, like human demos.
4. Execute the chosen pusher targets, then plan again. Pusher targets move at most 15-20 px per step
   (6 px on the final approach, <= 10 px while pushing) so actions are smooth enough to imitate.
   Pushes get slower as the block nears the goal (speed = 0.1 x error), which gives the fine
   corrections needed for coverage above 0.95 (about 2 px mean keypoint error).
5. Once coverage exceeds the success threshold, hold the pusher still.

The planner rolls out from the exact current state with gym-pusht's own arithmetic, so predicted
and executed block poses agree to ~1e-5 px; replanning after each primitive absorbs the rest.
"""

from __future__ import annotations

import dataclasses

import gym_pusht.envs.pusht as pusht_module
import numpy as np

from envs.push_t import sim
from envs.push_t.planner import PlannerConfig, Primitive, plan_push
from envs.push_t.scoring import SUCCESS_THRESHOLD

EXPERT_VERSION = "pusht-sim-planner-2"


class PushTExpert:
    """Simulator-planning expert; deterministic given ``seed`` and the env's start state.

    Args:
        seed: seeds the expert's own generator (contact offsets, choices among near-best pushes,
            per-episode approach speed).
        config: planner configuration; defaults are the tuned values.
    """

    def __init__(self, seed: int = 0, config: PlannerConfig | None = None) -> None:
        self.seed = int(seed)
        self.base_config = config or PlannerConfig()
        # A private gym-pusht instance is the planning simulator (walls included).
        self._sim = pusht_module.PushTEnv(obs_type="state")
        self._sim.reset(seed=0)
        self.reset()

    def reset(self) -> None:
        """Start a new episode: fresh generator state, empty plan."""
        self.rng = np.random.default_rng(self.seed)
        # Humans differ in hand speed between demos; vary the travel speed per episode.
        speed = float(self.rng.uniform(15.0, 20.0))
        self.config = dataclasses.replace(self.base_config, approach_speed=speed)
        self._queue: list[np.ndarray] = []
        self._hold: np.ndarray | None = None
        self._last_target: np.ndarray | None = None
        self.n_plans = 0
        self.last_primitive: Primitive | None = None

    def act(self, env) -> np.ndarray:
        """Next pusher target (2,) float32 in px for ``env`` (our ``PushTEnv`` or gym-pusht's)."""
        raw = getattr(env, "physics", None) or env.unwrapped
        if self._hold is None and raw._get_coverage() > SUCCESS_THRESHOLD:
            self._hold = np.array(raw.agent.position)
        if self._hold is not None:
            return self._hold.astype(np.float32)
        if not self._queue:
            self._replan(raw)
        if not self._queue:  # nothing feasible: stay put rather than do something random
            self._queue = [np.array(raw.agent.position)]
        self._last_target = self._queue.pop(0)
        return self._last_target.astype(np.float32)

    def _replan(self, raw) -> None:
        state = sim.capture(raw)
        prim = plan_push(self._sim, state, self.rng, self.config, start=self._last_target)
        self.n_plans += 1
        self.last_primitive = prim
        if prim is not None:
            self._queue = list(prim.targets)
