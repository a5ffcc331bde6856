"""Collision-free pusher paths around the T, and their conversion to speed-limited targets.

The pusher (a disk of radius 15 px) must reach a contact point without knocking the block on the
way. A path is one of:

* straight to the approach point, when that segment keeps the disk clear of the T;
* otherwise: leave the block's neighbourhood (an inflated convex hull of the T), travel around that
  hull on its shorter side, then come straight in along the contact normal.

All positions are world pixels (x, y); the block pose is (x, y, theta).
"""

from __future__ import annotations

import numpy as np

from envs.push_t import geometry as geo

_WALL_PAD = geo.AGENT_RADIUS + 6.0  # keep paths this far inside the workspace walls
_LOW, _HIGH = geo.WORKSPACE[0] + _WALL_PAD, geo.WORKSPACE[1] - _WALL_PAD


def in_workspace(points: np.ndarray) -> bool:
    """True when every point (N, 2) keeps the pusher off the walls."""
    pts = np.atleast_2d(points)
    return bool(((pts >= _LOW) & (pts <= _HIGH)).all())


def clip_to_workspace(points: np.ndarray) -> np.ndarray:
    """Clamp pusher targets (..., 2) into the region that keeps the pusher off the walls.

    The pusher is kinematic in pymunk, so walls do not stop it: a target beyond a wall takes the
    pusher through it, and it can end up stuck between the wall and the block.
    """
    return np.clip(points, _LOW, _HIGH)


def segment_clear(a: np.ndarray, b: np.ndarray, pose: np.ndarray, clearance: float) -> bool:
    """True when every point of segment a-b stays ``clearance`` px or more away from the T."""
    n = max(2, int(np.linalg.norm(b - a) / 2.0) + 1)
    pts = a + np.linspace(0.0, 1.0, n)[:, None] * (b - a)
    return bool(geo.signed_distance(geo.to_local(pts, pose)).min() >= clearance)


def exit_point(start: np.ndarray, direction: np.ndarray, hull: np.ndarray) -> np.ndarray | None:
    """First point on the ray ``start + t * direction`` (t >= 0) outside the convex ``hull``."""
    for t in np.arange(0.0, 400.0, 3.0):
        p = start + t * direction
        if not geo.inside_convex(p, hull):
            return p + 2.0 * direction  # a little beyond, so later tests are not borderline
    return None


def escape_direction(point: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Unit world direction (2,) in which the distance to the T grows fastest at ``point``."""
    local = geo.to_local(point[None], pose)[0]
    eps = 0.5
    grad = np.array(
        [
            geo.signed_distance(local + [eps, 0.0])[0] - geo.signed_distance(local - [eps, 0.0])[0],
            geo.signed_distance(local + [0.0, eps])[0] - geo.signed_distance(local - [0.0, eps])[0],
        ]
    )
    if np.linalg.norm(grad) < 1e-9:  # deep inside or on a ridge: leave away from the middle
        grad = local - np.array([0.0, 45.0])
    world = geo.rotation(pose[2]) @ grad
    return world / (np.linalg.norm(world) + 1e-12)


def around_hull(
    start: np.ndarray,
    goal: np.ndarray,
    hull: np.ndarray,
    rng: np.random.Generator | None = None,
    detour: float = 1.3,
) -> list[np.ndarray] | None:
    """Waypoints from ``start`` to ``goal`` (both outside ``hull``) that go around it.

    When the segment crosses the hull, both points lie on the convex hull of hull + {start, goal},
    and the shortest path is one of that polygon's two chains between them. Chains that leave the
    workspace are rejected. With ``rng``, the longer chain is taken half of the time when it is at
    most ``detour`` times the shorter (people go round either side when it hardly matters).
    Returns the waypoints after ``start`` (ending with ``goal``), or None.
    """
    n = max(2, int(np.linalg.norm(goal - start) / 3.0) + 1)
    samples = start + np.linspace(0.0, 1.0, n)[:, None] * (goal - start)
    if not any(geo.inside_convex(p, hull) for p in samples):
        return [goal]
    poly = geo.convex_hull(np.vstack([hull, start[None], goal[None]]))
    i = int(np.argmin(np.linalg.norm(poly - start, axis=1)))
    j = int(np.argmin(np.linalg.norm(poly - goal, axis=1)))
    m = len(poly)
    forward = [poly[(i + k) % m] for k in range(1, (j - i) % m + 1)]
    backward = [poly[(i - k) % m] for k in range(1, (i - j) % m + 1)]
    options = []
    for chain in (forward, backward):
        chain = chain[:-1] + [goal]
        if in_workspace(np.array(chain)):
            options.append((_length([start] + chain), chain))
    if not options:
        return None
    options.sort(key=lambda o: o[0])
    if rng is not None and len(options) == 2 and options[1][0] <= detour * options[0][0]:
        return options[int(rng.integers(2))][1]
    return options[0][1]


def plan_route(
    start: np.ndarray,
    approach: np.ndarray,
    normal: np.ndarray,
    pose: np.ndarray,
    hull: np.ndarray,
    rng: np.random.Generator | None = None,
) -> list[np.ndarray] | None:
    """Waypoints (each (2,)) that bring the pusher from ``start`` to ``approach`` safely.

    Args:
        start: current pusher position (2,).
        approach: pusher centre next to the contact point (2,).
        normal: outward unit normal of the contacted edge, world frame (2,).
        pose: block pose (3,).
        hull: inflated convex hull of the block (M, 2), from ``geometry.inflated_hull``.
        rng: when given, picks at random between the two ways around the block if both are
            about as long (see ``around_hull``).

    Returns:
        Waypoints ending at ``approach``, or None when no path stays inside the workspace.
    """
    # A pusher that already touches the block may slide off it; it just must not dig in deeper.
    d_start = float(geo.signed_distance(geo.to_local(start[None], pose))[0])
    if segment_clear(start, approach, pose, min(geo.AGENT_RADIUS + 1.0, d_start - 0.5)):
        return [approach]
    standoff = exit_point(approach, normal, hull)
    if standoff is None or not in_workspace(standoff):
        return None
    route: list[np.ndarray] = []
    origin = start
    if geo.inside_convex(start, hull):
        origin = exit_point(start, escape_direction(start, pose), hull)
        if origin is None:
            return None
        route.append(np.clip(origin, _LOW, _HIGH))
        origin = route[-1]
    rest = around_hull(origin, standoff, hull, rng)
    if rest is None:
        return None
    return route + rest + [approach]


def _length(points: list[np.ndarray]) -> float:
    pts = np.asarray(points)
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())


def targets_along(
    start: np.ndarray,
    waypoints: list[np.ndarray],
    speed: float,
    final_speed: float,
    slow_zone: float = 20.0,
) -> np.ndarray:
    """Pusher targets (K, 2) that walk the polyline at ``speed`` px per step.

    The last ``slow_zone`` px (the end of the straight approach to the contact) are walked at
    ``final_speed`` so the pusher arrives slowly instead of ramming the block. The final target is
    exactly the last waypoint.
    """
    pts = [np.asarray(start, dtype=np.float64)] + [
        np.asarray(w, dtype=np.float64) for w in waypoints
    ]
    # Split the last leg where slowing down starts.
    last = pts[-1] - pts[-2]
    last_len = float(np.linalg.norm(last))
    if last_len > slow_zone:
        pts.insert(-1, pts[-1] - last * (slow_zone / last_len))
    out: list[np.ndarray] = []
    for k in range(1, len(pts)):
        slow = k == len(pts) - 1 and len(pts) > 2
        v = final_speed if slow else speed
        leg = pts[k] - pts[k - 1]
        n = max(1, int(np.ceil(float(np.linalg.norm(leg)) / v)))
        out.extend(pts[k - 1] + leg * (s / n) for s in range(1, n + 1))
    return np.array(out)
