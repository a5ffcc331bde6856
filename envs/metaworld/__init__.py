"""MetaWorld v3 tasks: a seeded state-observation wrapper, the shipped scripted experts, demos."""

from envs.metaworld.env import MT10_TASKS, MetaWorldEnv, check_task, known_tasks, make_expert

__all__ = ["MT10_TASKS", "MetaWorldEnv", "check_task", "known_tasks", "make_expert"]
