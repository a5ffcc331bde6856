"""Policy evaluation: batched rollouts over worker processes, latency, and reports."""
