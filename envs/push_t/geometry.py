"""Geometry of the Push-T block, in pure numpy (no simulator).

Coordinates are gym-pusht's: pixels of the 512 x 512 workspace, x to the right, y downwards
(image rows), angles in radians. A block pose is ``(x, y, theta)`` of the body's origin, which is
the middle of the top edge of the T's bar (not its centre of mass, 45 px further along the stem).

In the block's own frame (theta = 0) the T is the union of two boxes::

    bar:  x in [-60, 60], y in [0, 30]
    stem: x in [-15, 15], y in [30, 120]

Keypoints are the 8 box corners in gym-pusht's order (``PushTEnv.get_keypoints``): the bar's four
corners, then the stem's four corners.
"""

from __future__ import annotations

import numpy as np

# Sizes follow gym-pusht's ``add_tee(scale=30, length=4)``.
BAR_HALF_WIDTH = 60.0
BAR_HEIGHT = 30.0
STEM_HALF_WIDTH = 15.0
STEM_END = 120.0
AGENT_RADIUS = 15.0
WORKSPACE = (5.0, 506.0)  # inner faces of the walls are 2 px further in
GOAL_POSE = np.array([256.0, 256.0, np.pi / 4])

# Order matches gym-pusht: vertices of shape 1 (bar), then shape 2 (stem), as pymunk stores them
# (pymunk reorders the vertices given to ``Poly``, so this is not the order in ``add_tee``).
LOCAL_KEYPOINTS = np.array(
    [
        [-60.0, 0.0],
        [60.0, 0.0],
        [60.0, 30.0],
        [-60.0, 30.0],
        [-15.0, 30.0],
        [15.0, 30.0],
        [15.0, 120.0],
        [-15.0, 120.0],
    ]
)

# Boxes as (centre, half extents), for the signed distance.
_BOXES = (
    (np.array([0.0, BAR_HEIGHT / 2]), np.array([BAR_HALF_WIDTH, BAR_HEIGHT / 2])),
    (
        np.array([0.0, (BAR_HEIGHT + STEM_END) / 2]),
        np.array([STEM_HALF_WIDTH, (STEM_END - BAR_HEIGHT) / 2]),
    ),
)

# Outline edges (start, end, outward normal); the pusher can touch the block along these.
EDGES = (
    ((-60.0, 0.0), (60.0, 0.0), (0.0, -1.0)),  # bar top
    ((60.0, 0.0), (60.0, 30.0), (1.0, 0.0)),  # bar right end
    ((60.0, 30.0), (15.0, 30.0), (0.0, 1.0)),  # underside of the bar, right
    ((15.0, 30.0), (15.0, 120.0), (1.0, 0.0)),  # stem right
    ((15.0, 120.0), (-15.0, 120.0), (0.0, 1.0)),  # stem end
    ((-15.0, 120.0), (-15.0, 30.0), (-1.0, 0.0)),  # stem left
    ((-15.0, 30.0), (-60.0, 30.0), (0.0, 1.0)),  # underside of the bar, left
    ((-60.0, 30.0), (-60.0, 0.0), (-1.0, 0.0)),  # bar left end
)

# Corners of the T's convex hull (the notches under the bar are inside it).
HULL_LOCAL = np.array(
    [[-60.0, 0.0], [60.0, 0.0], [60.0, 30.0], [15.0, 120.0], [-15.0, 120.0], [-60.0, 30.0]]
)


def rotation(theta: float) -> np.ndarray:
    """2 x 2 rotation matrix for an angle in radians."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def to_world(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Block-frame points (N, 2) to world pixels (N, 2) for a block pose (x, y, theta)."""
    return np.asarray(points) @ rotation(pose[2]).T + np.asarray(pose[:2])


def to_local(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """World points (N, 2) to the block frame (N, 2)."""
    return (np.asarray(points) - np.asarray(pose[:2])) @ rotation(pose[2])


def keypoints(pose: np.ndarray) -> np.ndarray:
    """The 8 block keypoints (8, 2) in world pixels, in gym-pusht's order."""
    return to_world(LOCAL_KEYPOINTS, pose)


def keypoint_error(pose: np.ndarray, goal: np.ndarray = GOAL_POSE) -> float:
    """Mean distance in pixels between the keypoints at ``pose`` and at ``goal``.

    It is zero only at the goal pose and weighs rotation by the T's extent, so it works as a
    single pose error without choosing a pixels-per-radian factor.
    """
    return float(np.linalg.norm(keypoints(pose) - keypoints(goal), axis=1).mean())


def signed_distance(points_local: np.ndarray) -> np.ndarray:
    """Signed distance (N,) from block-frame points (N, 2) to the T; negative inside."""
    pts = np.atleast_2d(points_local)
    dists = []
    for centre, half in _BOXES:
        q = np.abs(pts - centre) - half
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
        inside = np.minimum(q.max(axis=1), 0.0)
        dists.append(outside + inside)
    return np.minimum(*dists)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (M, 2) of points (N, 2), counter-clockwise in a y-up sense (monotone chain)."""
    pts = sorted(map(tuple, np.asarray(points, dtype=np.float64)))
    if len(pts) <= 2:
        return np.array(pts)

    def half(seq: list) -> list:
        chain: list = []
        for p in seq:
            while len(chain) >= 2 and _cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _cross(o: tuple, a: tuple, b: tuple) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def inflated_hull(pose: np.ndarray, margin: float) -> np.ndarray:
    """World polygon (M, 2) containing every point within ``margin`` px of the block.

    Each hull corner is replaced by an octagon of radius ``margin / cos(22.5 deg)`` so that the
    polygon's edges stay at least ``margin`` away from the T.
    """
    radius = margin / np.cos(np.pi / 8)
    ang = np.arange(8) * np.pi / 4 + np.pi / 8
    ring = radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    corners = to_world(HULL_LOCAL, pose)
    return convex_hull((corners[:, None, :] + ring[None]).reshape(-1, 2))


def inside_convex(point: np.ndarray, poly: np.ndarray) -> bool:
    """True when ``point`` (2,) is strictly inside the convex polygon ``poly`` (M, 2)."""
    nxt = np.roll(poly, -1, axis=0)
    cross = (nxt[:, 0] - poly[:, 0]) * (point[1] - poly[:, 1]) - (nxt[:, 1] - poly[:, 1]) * (
        point[0] - poly[:, 0]
    )
    return bool((cross > 0).all())
