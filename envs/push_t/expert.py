"""Scripted Push-T expert that plans with the simulator (``PushTExpert``).

How it works (see ``planner.py`` for the details):

1. Read the real env's full physics state (pusher position and velocity, block pose and velocity).
2. Sample a few dozen contact points along the T's edges (random offsets from the expert's own
   generator), route the pusher to each one around the block, and try pushing in three directions
   (the inward normal and +-30 degrees) for up to 20 steps, all in a private copy of the simulator.
3. Score every (contact, direction, push length) by its rate of progress: the mean keypoint error
   to the goal pose (px) removed per step, approach steps included. Keep the best length of each
   (contact, direction). Draw an edge of the T uniformly among those with a push within 30% of
   the best rate (10% once the error is under 30 px), then a push on that edge; routes go round
   either side of the block when both are about as long. So near-equal options (approach from
   either side of the T, different contact points) are chosen at random, like human demos.
4. Execute the chosen pusher targets, then plan again. Pusher targets move at most ~15-20 px
   per step while travelling (the speed is drawn per episode), 6 px per step over the last 20 px
   of an approach and <= 12 px per step while pushing, so actions are smooth enough to imitate.
   Pushes slow down as the block nears the goal (0.2 x the error per step, at least 1 px), which
   gives the fine corrections that coverage above 0.95 needs (about 2 px mean keypoint error).
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

EXPERT_VERSION = "pusht-sim-planner-5"


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
        # Humans differ in hand speed between demos: scale the travel speed per episode
        # (the default 18 px per step becomes 15.3-19.8).
        speed = self.base_config.approach_speed * float(self.rng.uniform(0.85, 1.1))
        self.config = dataclasses.replace(self.base_config, approach_speed=speed)
        self._queue: list[np.ndarray] = []
        self._hold: np.ndarray | None = None
        self._last_target: np.ndarray | None = None
        self.n_plans = 0
        self.last_primitive: Primitive | None = None

    def act(self, env) -> np.ndarray:
        """Next pusher target (2,) float32 in px for ``env`` (our ``PushTEnv`` or gym-pusht's)."""
        raw = env.physics if hasattr(env, "physics") else env.unwrapped
        # gym-pusht's own coverage (shapely polygons), so "success" means exactly what the env says.
        if self._hold is None and raw._get_coverage() > SUCCESS_THRESHOLD:
            self._hold = np.array(raw.agent.position)
        if self._hold is not None:
            return self._step_towards(self._hold).astype(np.float32)
        if not self._queue:
            self._replan(raw)
        self._last_target = self._queue.pop(0)
        return self._last_target.astype(np.float32)

    def _step_towards(self, point: np.ndarray, max_step: float = 10.0) -> np.ndarray:
        """Move the target towards ``point`` by at most ``max_step`` px (no jumps when holding)."""
        if self._last_target is None:
            self._last_target = point
        delta = point - self._last_target
        dist = float(np.linalg.norm(delta))
        if dist > max_step:
            delta = delta * (max_step / dist)
        self._last_target = self._last_target + delta
        return self._last_target

    def _replan(self, raw) -> None:
        state = sim.capture(raw)
        prim = plan_push(self._sim, state, self.rng, self.config, start=self._last_target)
        self.n_plans += 1
        self.last_primitive = prim
        if prim is not None:
            self._queue = list(prim.targets)
        else:
            self._queue = self._unstick_targets(raw)

    def _unstick_targets(self, raw, steps: int = 5, speed: float = 6.0) -> list[np.ndarray]:
        """No feasible push (pusher boxed in by the block and a wall): drift to the centre of the
        workspace for a few steps, which frees the pusher or moves the block off the wall."""
        start = np.array(raw.agent.position) if self._last_target is None else self._last_target
        centre = np.array([256.0, 256.0])
        direction = (centre - start) / (np.linalg.norm(centre - start) + 1e-9)
        return [start + speed * k * direction for k in range(1, steps + 1)]
