"""The hydra configs (train, rollout, collect and the task / model / objective groups).

A package only so that they travel inside the wheel as ``shortcut_policy.configs``.
"""
