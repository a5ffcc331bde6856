"""Running a trained policy outside training: a server and its client, non-blocking chunks,
deadline-aware budgets, and an exported graph."""
