"""shortcut_policy: robot policies that act in one network pass (shortcut models)."""

from shortcut_policy.policy import ShortcutPolicy
from shortcut_policy.tasks import register_gym_envs

register_gym_envs()  # gym.make("shortcut_policy/PushT-v0", obs_mode=...) after this import

__all__ = ["ShortcutPolicy", "PolicyClient"]


def __getattr__(name: str):
    # The client needs the serve extra (websockets, msgpack); import it only when asked for.
    if name == "PolicyClient":
        from shortcut_policy.extras import require

        for module in ("websockets", "msgpack"):
            require(module, "PolicyClient", "serve")
        from shortcut_policy.deploy.client import PolicyClient

        return PolicyClient
    raise AttributeError(f"module 'shortcut_policy' has no attribute {name!r}")


__version__ = "0.1.0"
