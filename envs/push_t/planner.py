"""Push planning for the scripted Push-T expert: structured candidates scored in the simulator.

A candidate is a *push primitive*: pick a contact point on one of the T's eight edges, bring the
pusher next to it along a collision-free route (``paths.plan_route``), then move the pusher target
in a push direction (the inward normal turned by a few tens of degrees) at a constant speed for up
to ``max_push_steps`` steps. Every candidate is rolled out from the *current* physics state in a
private copy of gym-pusht (``sim.control_step``, identical arithmetic to the real env), so the
predicted block poses are the ones the real env will produce, approach included.

Each candidate prefix of j push steps is scored by its rate of progress,

    rate = (e0 - keypoint_error(block pose after step j)) / (approach steps + j + overhead)

in px of keypoint error removed per step (e0 is the current error). A rate, rather than the error
plus a time penalty, never prefers dithering over a long but productive manoeuvre.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from envs.push_t import geometry as geo
from envs.push_t import paths, sim


@dataclass(frozen=True)
class PlannerConfig:
    """Knobs of the push planner (pixels, steps of 0.1 s, degrees)."""

    contact_spacing: float = 15.0  # px between sampled contact points along an edge
    push_angles_deg: tuple[float, ...] = (-30.0, 0.0, 30.0)  # turn of the push vs. the normal
    max_push_steps: int = 20
    push_speed_gain: float = 0.2  # push speed = gain * current error, clipped below
    min_push_speed: float = 1.0  # px per step
    max_push_speed: float = 12.0
    approach_speed: float = 18.0  # px per step while travelling around the block
    final_speed: float = 6.0  # px per step on the last straight leg to the contact
    gap: float = 2.0  # px between pusher and edge at the approach point
    hull_margin: float = 26.0  # px of clearance kept while travelling around the block
    overhead_steps: float = 4.0  # added to each primitive's length: discourages tiny pushes
    # Pushes within this fraction of the best progress rate are equally acceptable; wider while
    # the block is far from the goal (where people vary most), narrower for the final alignment.
    tolerance_far: float = 0.3
    tolerance_near: float = 0.1
    near_error: float = 30.0  # px of keypoint error below which ``tolerance_near`` applies


@dataclass
class Primitive:
    """A chosen push: pusher targets (K, 2), the block pose (3,) predicted after them, the progress
    rate (px of keypoint error removed per step), the contact (2,) in the block frame and its
    edge index in ``geometry.EDGES``, and how many of the targets are the approach."""

    targets: np.ndarray
    predicted_pose: np.ndarray
    rate: float
    contact_local: np.ndarray = field(default_factory=lambda: np.zeros(2))
    edge: int = -1
    n_approach: int = 0


@dataclass
class _Option:
    """The best length of one push line: approach (A, 2) + first ``n_push`` of ``push`` (P, 2)."""

    approach: np.ndarray
    push: np.ndarray
    n_push: int
    pose: np.ndarray
    rate: float  # px of keypoint error removed per step; higher is better
    contact: np.ndarray = field(default_factory=lambda: np.zeros(2))
    edge: int = -1


def sample_contacts(
    rng: np.random.Generator, spacing: float, gap: float
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(edge index, contact point (2,), outward normal (2,)) in the block frame, randomly offset.

    Points whose pusher position would overlap the block, or whose straight approach along the
    normal would hit another part of the T (e.g. deep in the notch under the bar), are dropped.
    """
    out = []
    for edge, (start, end, normal) in enumerate(geo.EDGES):
        a, b, n = np.array(start), np.array(end), np.array(normal)
        length = float(np.linalg.norm(b - a))
        count = max(1, int(round(length / spacing)))
        offsets = (np.arange(count) + rng.uniform(0.2, 0.8)) / count
        for t in offsets:
            p = a + t * (b - a)
            ray = p + n * (geo.AGENT_RADIUS + gap + np.arange(0.0, 160.0, 4.0))[:, None]
            if geo.signed_distance(ray).min() >= geo.AGENT_RADIUS + gap - 0.5:
                out.append((edge, p, n))
    return out


def plan_push(
    raw_sim,
    state: sim.PhysicsState,
    rng: np.random.Generator,
    cfg: PlannerConfig,
    goal: np.ndarray = geo.GOAL_POSE,
    start: np.ndarray | None = None,
) -> Primitive | None:
    """Choose a push primitive from ``state`` by rolling candidates out in ``raw_sim``.

    Args:
        raw_sim: a private gym-pusht env used as the simulator (its state is overwritten).
        state: current physics state of the real env.
        rng: the expert's generator (contact offsets, way around the block, choice among
            near-best pushes).
        cfg: planner configuration.
        goal: goal block pose (3,).
        start: where the new target path begins (2,): the last commanded target, so targets never
            jump; defaults to the pusher position. The rollout still starts from ``state``.

    Returns:
        The chosen primitive, or None when no candidate is feasible.
    """
    pose = state.block_pose
    e0 = geo.keypoint_error(pose, goal)
    speed = float(np.clip(cfg.push_speed_gain * e0, cfg.min_push_speed, cfg.max_push_speed))
    hull = geo.inflated_hull(pose, cfg.hull_margin)
    start = np.array(state.agent_pos) if start is None else np.asarray(start, dtype=np.float64)
    rot = geo.rotation(pose[2])
    options: list[_Option] = []
    for edge, p_local, n_local in sample_contacts(rng, cfg.contact_spacing, cfg.gap):
        approach_local = p_local + n_local * (geo.AGENT_RADIUS + cfg.gap)
        approach = geo.to_world(approach_local[None], pose)[0]
        normal = rot @ n_local
        if not paths.in_workspace(approach):
            continue
        route = paths.plan_route(start, approach, normal, pose, hull, rng)
        if route is None:
            continue
        approach_targets = paths.targets_along(start, route, cfg.approach_speed, cfg.final_speed)
        sim.restore(raw_sim, state)
        for target in approach_targets:
            sim.control_step(raw_sim, target)
        after_approach = sim.capture(raw_sim)
        for angle in cfg.push_angles_deg:
            direction = geo.rotation(np.deg2rad(angle)) @ -normal
            best = _rollout_push(
                raw_sim, after_approach, approach_targets, direction, speed, e0, cfg, goal
            )
            best.contact, best.edge = p_local, edge
            options.append(best)
    if not options:
        return None
    tolerance = cfg.tolerance_far if e0 > cfg.near_error else cfg.tolerance_near
    return _choose(options, rng, tolerance)


def _rollout_push(
    raw_sim,
    after_approach: sim.PhysicsState,
    approach_targets: np.ndarray,
    direction: np.ndarray,
    speed: float,
    e0: float,
    cfg: PlannerConfig,
    goal: np.ndarray,
) -> _Option:
    """Simulate one push line for ``max_push_steps``; return its best prefix by progress rate."""
    sim.restore(raw_sim, after_approach)
    n_app = len(approach_targets)
    steps = np.arange(1, cfg.max_push_steps + 1)
    push = paths.clip_to_workspace(approach_targets[-1] + speed * steps[:, None] * direction)
    best: _Option | None = None
    for j, target in enumerate(push, start=1):
        sim.control_step(raw_sim, target)
        pose = sim.block_pose(raw_sim)
        rate = (e0 - geo.keypoint_error(pose, goal)) / (n_app + j + cfg.overhead_steps)
        if best is None or rate > best.rate:
            best = _Option(approach_targets, push, j, pose, rate)
    return best


def _choose(options: list[_Option], rng: np.random.Generator, tolerance: float) -> Primitive:
    """Pick a push whose progress rate is within ``tolerance`` (a fraction) of the best.

    ``options`` holds the best length of each (contact, direction) line. First an edge of the T is
    drawn uniformly among the edges that have an acceptable push, then a push on it uniformly
    among its acceptable ones. Drawing edges first makes the distinct strategies (e.g. push the
    stem's end vs. the bar's side) equally likely, however many contact points each edge has:
    that is what makes demonstrations multimodal.
    """
    rates = np.array([o.rate for o in options])
    # With no improving push (best rate <= 0) only the best is acceptable.
    floor = rates.max() - tolerance * max(rates.max(), 0.0)
    edges = np.array([o.edge for o in options])
    good = rates >= floor
    edge = rng.choice(np.unique(edges[good]))
    o = options[int(rng.choice(np.flatnonzero(good & (edges == edge))))]
    targets = np.concatenate([o.approach, o.push[: o.n_push]])
    return Primitive(targets, o.pose, o.rate, o.contact, o.edge, len(o.approach))
