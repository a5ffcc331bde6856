"""Push-T (gym-pusht) wrapper, scoring, video helper and a simulator-planning scripted expert."""

from envs.push_t.env import OBS_MODES, PushTEnv
from envs.push_t.expert import EXPERT_VERSION, PushTExpert
from envs.push_t.expert_episode import run_expert_episode
from envs.push_t.scoring import SUCCESS_THRESHOLD, episode_score, episode_success
from shortcut_policy.evaluation.video import record_video

__all__ = [
    "EXPERT_VERSION",
    "OBS_MODES",
    "SUCCESS_THRESHOLD",
    "PushTEnv",
    "PushTExpert",
    "episode_score",
    "episode_success",
    "record_video",
    "run_expert_episode",
]
