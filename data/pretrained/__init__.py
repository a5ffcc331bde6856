"""Policies shipped with the library, one folder per task (see README.md here).

A package only so that they travel inside the wheel as ``shortcut_policy.shipped``.
"""
