"""Scripted experts for robosuite Lift, PickPlaceCan and NutAssemblySquare (Panda, OSC_POSE).

All are phase machines over the privileged observation (object pose, gripper pose): move above
the object with the gripper open and turned to the object's yaw, descend, close, lift; the Can
expert then carries the can over its target bin, lowers it, opens and backs away; the Square
expert grasps the nut's handle, turns the nut square to the peg, carries its ring over the peg,
lowers it down the peg, opens and backs away. Position
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
    close_steps = 8  # steps the gripper is given to close before lifting

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

    def command(self, obs, target: np.ndarray, gripper: float, limit: float = 1.0) -> np.ndarray:
        """Action moving the gripper toward ``target`` (m) with the gripper command given;
        ``limit`` caps each position and turn command (1 = the controller's 0.05 m, 0.5 rad)."""
        move = np.clip(self.gain * (target - obs["robot0_eef_pos"]) / POS_SCALE, -limit, limit)
        turn = np.clip(self.rot_gain * self.turn_error(obs) / ROT_SCALE, -limit, limit)
        return np.concatenate([move, turn, [gripper]]).astype(np.float32)

    def turn_error(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Axis-angle ``(3,)`` (radians) from the gripper's orientation to the target's."""
        return rotation_vector(self.target_rot @ quat_to_mat(obs["robot0_eef_quat"]).T)

    def grasp_point(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Where the gripper closes (m): the object's centre, ``grasp_depth`` higher."""
        return obs[f"{self.object_key}_pos"] + np.array([0.0, 0.0, self.grasp_depth])

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        eef, grasp = obs["robot0_eef_pos"], self.grasp_point(obs)
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
            if self.timer >= self.close_steps:
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


def yaw_of(quat: np.ndarray) -> float:
    """Rotation about the vertical axis (radians) of a quaternion ``(x, y, z, w)``."""
    rot = quat_to_mat(quat)
    return float(np.arctan2(rot[1, 0], rot[0, 0]))


class SquareExpert(PickExpert):
    """NutAssemblySquare: grasp the nut by its handle, square it to the peg, drop it over the peg.

    The fingers close across the handle, ``HANDLE`` m out along the nut's own x axis (the middle
    of the handle's free part: nearer the ring, the finger pads catch the ring's wall). After
    the lift the gripper turns the nut by the smallest angle that squares it with the peg (the
    ring fits the peg every 90 degrees), then carries the ring's centre over the peg, lowers it
    until the nut rests near the table, opens and backs away upward (success needs the gripper
    off the nut).
    """

    object_key = "SquareNut"
    symmetry = np.pi  # the fingers close across the handle either way round
    HANDLE = 0.064  # grasp point on the handle, in the nut's frame (m); the ring ends at 0.043
    grasp_depth = 0.004  # the fingertips reach 0.012 m below the gripper's site: 2 mm off the table
    close_steps = 15  # the handle is thin: let the fingers close fully before lifting
    carry_height = 1.02  # the peg's top is at 0.95 m; the nut is 0.02 m thick
    rest_height = 0.845  # nut centre low enough to count as around the peg (0.87 m)

    def __init__(self, peg_xy: np.ndarray, gain: float = 8.0, rot_gain: float = 2.0) -> None:
        super().__init__(gain, rot_gain)
        self.peg_xy = np.asarray(peg_xy, dtype=np.float64)
        self.hold = np.zeros(3)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        # The handle is 2 cm thick and 3 cm wide, so the grasp is slower and stricter than
        # Lift's: turned and centred above it first, down at a third of full speed (at full
        # speed the fingertips overshoot into the table), then closed where the gripper stands.
        eef, grasp = obs["robot0_eef_pos"], self.grasp_point(obs)
        self.timer += 1
        if self.phase == "approach":
            above = grasp + np.array([0.0, 0.0, 0.06])
            turned = np.linalg.norm(self.turn_error(obs)) < 0.05
            if (np.linalg.norm(eef - above) < 0.005 and turned) or self.timer > 80:
                self.phase, self.timer = "descend", 0
            return self.command(obs, above, -1.0)
        if self.phase == "descend":
            if np.linalg.norm(eef - grasp) < 0.004 or self.timer > 40:
                self.phase, self.timer, self.hold = "close", 0, eef.copy()
            return self.command(obs, grasp, -1.0, limit=0.3)
        if self.phase == "close":
            if self.timer >= self.close_steps:
                self.phase, self.timer = "lift", 0
            return self.command(obs, self.hold, 1.0)
        return self.carry(obs)

    def grasp_point(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        handle = quat_to_mat(obs["SquareNut_quat"]) @ [self.HANDLE, 0.0, 0.0]
        return obs["SquareNut_pos"] + handle + np.array([0.0, 0.0, self.grasp_depth])

    def carry(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        eef, nut = obs["robot0_eef_pos"], obs["SquareNut_pos"]
        over_peg = self.peg_xy + (eef[:2] - nut[:2])  # the gripper's xy that puts the ring there
        if self.phase == "lift":
            if eef[2] > self.carry_height - 0.02:
                turn = -wrap(yaw_of(obs["SquareNut_quat"]), np.pi / 2)
                self.target_rot = rot_z(turn) @ self.target_rot
                self.phase, self.timer = "transport", 0
            return self.command(obs, np.array([eef[0], eef[1], self.carry_height]), 1.0, 0.5)
        if self.phase == "transport":
            if np.linalg.norm(nut[:2] - self.peg_xy) < 0.004 or self.timer > 120:
                self.phase, self.timer = "lower", 0
            return self.command(obs, np.array([*over_peg, self.carry_height]), 1.0, 0.5)
        if self.phase == "lower":
            if nut[2] < self.rest_height or self.timer > 60:
                self.phase, self.timer = "release", 0
            low = eef[2] + (self.rest_height - 0.01 - nut[2])
            return self.command(obs, np.array([*over_peg, low]), 1.0)
        if self.phase == "release":
            if self.timer >= 10:
                self.phase, self.timer = "retreat", 0
            return self.command(obs, eef, -1.0)
        return self.command(obs, np.array([eef[0], eef[1], self.carry_height]), -1.0)


def make_expert(task: str, env) -> PickExpert:
    """The expert for ``task`` (``lift``, ``can`` or ``square``) in a :class:`RobosuiteEnv`."""
    inner = env.env
    if task == "lift":
        return LiftExpert()
    if task == "can":
        return CanExpert(inner.target_bin_placements[inner.object_id][:2])
    if task == "square":
        return SquareExpert(inner.sim.data.body_xpos[inner.peg1_body_id][:2].copy())
    raise ValueError(f"no scripted expert for {task!r}; known: lift, can, square")
