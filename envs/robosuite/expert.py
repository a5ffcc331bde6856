"""Scripted experts for robosuite Lift and PickPlaceCan (Panda, OSC_POSE delta actions).

Both are phase machines over the privileged observation (object pose, gripper pose): move above
the object with the gripper open and turned to the object's yaw, descend, close, lift; the Can
expert then carries the can over its target bin, lowers it, opens and backs away. Position
commands are proportional (``gain`` x error / 0.05 m, clipped to [-1, 1]); orientation is held
pointing down, turned about the vertical axis toward the target yaw.
"""

from __future__ import annotations

import numpy as np

POS_SCALE = 0.05  # metres per unit of action (the BASIC OSC_POSE config's output_max)
ROT_SCALE = 0.5  # radians per unit of action
TABLE_Z = 0.8  # height of Lift's table top (m)


def quat_to_mat(quat: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of a unit quaternion ``(x, y, z, w)``."""
    x, y, z, w = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_vector(matrix: np.ndarray) -> np.ndarray:
    """Axis-angle vector ``(3,)`` (radians) of a rotation matrix."""
    cos = np.clip((np.trace(matrix) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-6:
        return np.zeros(3)
    axis = np.array(
        [matrix[2, 1] - matrix[1, 2], matrix[0, 2] - matrix[2, 0], matrix[1, 0] - matrix[0, 1]]
    )
    return axis / (2.0 * np.sin(angle)) * angle


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def wrap(angle: float, period: float) -> float:
    """``angle`` wrapped into ``[-period / 2, period / 2)``."""
    return (angle + period / 2) % period - period / 2


class PickExpert:
    """Grasp an object and lift it; subclasses add where to take it afterwards.

    Call ``reset(obs)`` at the start of an episode and ``act(obs) -> (7,)`` every step, with
    robosuite's raw observation dict.
    """

    object_key = "cube"
    symmetry = np.pi / 2  # the object's yaw symmetry (a cube looks the same every 90 degrees)
    grasp_depth = 0.0  # target height of the gripper relative to the object's centre (m)
    lift_height = 0.12

    def __init__(self, gain: float = 8.0, rot_gain: float = 2.0) -> None:
        self.gain, self.rot_gain = gain, rot_gain
        self.phase, self.timer = "approach", 0
        self.target_rot = np.eye(3)

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self.phase, self.timer = "approach", 0
        down = quat_to_mat(obs["robot0_eef_quat"])
        self.target_rot = down
        if self.symmetry:
            gripper_yaw = np.arctan2(down[1, 0], down[0, 0])
            obj = quat_to_mat(obs[f"{self.object_key}_quat"])
            turn = wrap(np.arctan2(obj[1, 0], obj[0, 0]) - gripper_yaw, self.symmetry)
            self.target_rot = rot_z(turn) @ down

    def command(self, obs, target: np.ndarray, gripper: float) -> np.ndarray:
        """Action moving the gripper toward ``target`` (m) with the gripper command given."""
        move = np.clip(self.gain * (target - obs["robot0_eef_pos"]) / POS_SCALE, -1.0, 1.0)
        error = self.target_rot @ quat_to_mat(obs["robot0_eef_quat"]).T
        turn = np.clip(self.rot_gain * rotation_vector(error) / ROT_SCALE, -1.0, 1.0)
        return np.concatenate([move, turn, [gripper]]).astype(np.float32)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        eef, obj = obs["robot0_eef_pos"], obs[f"{self.object_key}_pos"]
        grasp = obj + np.array([0.0, 0.0, self.grasp_depth])
        self.timer += 1
        if self.phase == "approach":
            above = grasp + np.array([0.0, 0.0, 0.08])
            if np.linalg.norm(eef - above) < 0.01:
                self.phase, self.timer = "descend", 0
            return self.command(obs, above, -1.0)
        if self.phase == "descend":
            if np.linalg.norm(eef - grasp) < 0.008 or self.timer > 40:
                self.phase, self.timer = "close", 0
            return self.command(obs, grasp, -1.0)
        if self.phase == "close":
            if self.timer >= 8:
                self.phase, self.timer = "lift", 0
            return self.command(obs, grasp, 1.0)
        return self.carry(obs)

    def carry(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """After the grasp: lift straight up (Lift ends here)."""
        obj = obs[f"{self.object_key}_pos"]
        target = np.array([obj[0], obj[1], TABLE_Z + self.lift_height])
        return self.command(obs, target, 1.0)


class LiftExpert(PickExpert):
    """Lift: grasp the cube at its centre and raise it 0.12 m above the table (success: 0.04)."""


class CanExpert(PickExpert):
    """PickPlaceCan: grasp the can, carry it over its bin, lower, release, back away upward."""

    object_key = "Can"
    symmetry = 0.0  # a cylinder: any yaw grasps it
    grasp_depth = 0.01
    carry_height = 1.05  # absolute height (m) to carry the can at, above the bins' walls

    def __init__(self, bin_xy: np.ndarray, gain: float = 8.0, rot_gain: float = 2.0) -> None:
        super().__init__(gain, rot_gain)
        self.bin_xy = np.asarray(bin_xy, dtype=np.float64)

    def carry(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        eef = obs["robot0_eef_pos"]
        if self.phase == "lift":
            target = np.array([eef[0], eef[1], self.carry_height])
            if eef[2] > self.carry_height - 0.02:
                self.phase, self.timer = "transport", 0
            return self.command(obs, target, 1.0)
        if self.phase == "transport":
            target = np.array([*self.bin_xy, self.carry_height])
            if np.linalg.norm(eef[:2] - self.bin_xy) < 0.015:
                self.phase, self.timer = "lower", 0
            return self.command(obs, target, 1.0)
        if self.phase == "lower":
            target = np.array([*self.bin_xy, 0.95])
            if eef[2] < 0.96 or self.timer > 30:
                self.phase, self.timer = "release", 0
            return self.command(obs, target, 1.0)
        if self.phase == "release":
            if self.timer >= 10:
                self.phase, self.timer = "retreat", 0
            return self.command(obs, np.array([*self.bin_xy, eef[2]]), -1.0)
        return self.command(obs, np.array([*self.bin_xy, self.carry_height]), -1.0)


def make_expert(task: str, env) -> PickExpert:
    """The expert for ``task`` (``lift`` or ``can``) in a :class:`RobosuiteEnv` ``env``."""
    if task == "lift":
        return LiftExpert()
    if task == "can":
        inner = env.env
        return CanExpert(inner.target_bin_placements[inner.object_id][:2])
    raise ValueError(f"no scripted expert for {task!r}; known: lift, can")
