"""Pieces of the one training loop: schedules, EMA, batches, logging, run state."""
