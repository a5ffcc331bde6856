"""shortcut_policy: robot policies that act in one network pass (shortcut models)."""

from shortcut_policy.policy import ShortcutPolicy
from shortcut_policy.tasks import register_gym_envs

register_gym_envs()  # gym.make("shortcut_policy/PushT-v0", obs_mode=...) after this import

__all__ = ["ShortcutPolicy"]
__version__ = "0.1.0"
