"""shortcut_policy: robot policies that act in one network pass (shortcut models)."""

from shortcut_policy.policy import ShortcutPolicy

__all__ = ["ShortcutPolicy"]
__version__ = "0.1.0"
