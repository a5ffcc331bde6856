"""The policy inside a robot's control loop: ``ShortcutPolicy`` and what it needs at run time.

Observation checks, the queue of chunk actions, non-blocking chunks, deadline-aware budgets, CUDA
graphs, and rebuilding the network from a checkpoint. Nothing here imports ``deploy/`` (which
serves and exports a policy) or ``evaluation/`` (which rolls it out): they build on this.
"""

from shortcut_policy.policy.pretrained import resolve_policy_path
from shortcut_policy.policy.shortcut_policy import ShortcutPolicy

__all__ = ["ShortcutPolicy", "resolve_policy_path"]
