"""Deadline-aware step budgets: the most network passes whose latency fits the control tick.

One shortcut network serves every budget, so the budget can follow the hardware: at load,
each candidate budget (1, 2, 4, ... passes per chunk) is timed on the actual device, and the
largest one whose p99 latency fits the deadline is chosen. While the policy runs, its own
chunk calls keep being timed; if latency drifts (another process takes the CPU, the GPU
throttles), the budget steps down, and it steps back up when there is room again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from shortcut_policy.objectives.sampling import BudgetError

log = logging.getLogger("shortcut_policy.deploy")

# Stepping up needs this much room: latency is not quite linear in passes (encoding, copies).
UP_MARGIN = 0.8


def candidate_budgets(budget: Callable[[object], int], most: int = 128) -> list[int]:
    """Powers of two up to ``most`` that the objective's ``budget`` check accepts."""
    accepts = _accepts(budget)
    return [1 << k for k in range(most.bit_length()) if accepts(1 << k)]


def largest_budget(budget: Callable[[object], int], limit: int = 1 << 20) -> int | None:
    """The largest step budget ``budget`` accepts (None: no upper bound below ``limit``)."""
    accepts = _accepts(budget)
    if accepts(limit):
        return None
    low, high = 1, limit  # accepts(low), not accepts(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if accepts(middle) else (low, middle)
    return low


def _accepts(budget: Callable[[object], int]) -> Callable[[int], bool]:
    def accepts(steps: int) -> bool:
        try:
            budget(steps)
        except BudgetError:
            return False
        return True

    return accepts


def measured_success(meta: Mapping) -> dict[int, float]:
    """``{passes: success rate}`` a rollout measured for this policy, as saved with it
    (``save_pretrained(report=...)``: ``meta["budget_success"]``); empty when none was. A
    malformed table raises a ``ValueError`` naming it (it is plain data, but checked)."""
    table = meta.get("budget_success") or {}
    if not isinstance(table, Mapping):
        raise ValueError(f"budget_success must map passes to success rates, got {table!r}")
    success = {}
    for steps, rate in table.items():
        if not str(steps).isdigit() or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"budget_success[{steps!r}] = {rate!r}: need passes -> rate in [0, 1]")
        success[int(steps)] = float(rate)
    return success


def no_worse_than_one_pass(budgets: Sequence[int], success: Mapping[int, float]) -> list[int]:
    """The budgets a deadline may choose from: with a measured success table that includes 1
    pass, only the budgets measured at least as good as 1 pass (more passes are not always
    better: a network can lose quality as it takes more, smaller jumps); otherwise all."""
    if 1 not in success:
        return list(budgets)
    return [steps for steps in budgets if success.get(steps, -1.0) >= success[1]]


@dataclass
class BudgetChoice:
    """The chosen budget and the measurements it was chosen from (p99 latency, ms)."""

    steps: int
    deadline_ms: float
    p99_ms: dict[int, float] = field(default_factory=dict)
    left_out: list[int] = field(default_factory=list)  # measured worse than 1 pass

    def summary(self) -> str:
        timed = ", ".join(f"{steps}: {ms:.1f}" for steps, ms in self.p99_ms.items())
        worse = f"; left out, measured worse than 1 pass: {self.left_out}" if self.left_out else ""
        return (
            f"{self.steps} network pass(es) per chunk fit the {self.deadline_ms:g} ms deadline "
            f"(p99 ms by budget: {timed}{worse})"
        )


def choose_budget(
    p99_of: Callable[[int], float], budgets: Sequence[int], deadline_ms: float, where: str = ""
) -> BudgetChoice:
    """The largest of ``budgets`` whose ``p99_of(steps)`` (ms) fits ``deadline_ms``.

    Budgets are timed from the smallest up and timing stops at the first that does not fit
    (more passes are never faster), so a tight deadline costs few calls.
    """
    if not deadline_ms > 0:
        raise BudgetError(
            f"deadline_ms must be a positive number of milliseconds, got {deadline_ms}"
        )
    choice = BudgetChoice(steps=0, deadline_ms=float(deadline_ms))
    for steps in sorted(budgets):
        choice.p99_ms[steps] = float(p99_of(steps))
        if choice.p99_ms[steps] > deadline_ms:
            break
        choice.steps = steps
    if choice.steps == 0:
        first = min(budgets)
        raise BudgetError(
            f"no step budget fits a {deadline_ms:g} ms deadline{where}: {first} pass(es) take "
            f"{choice.p99_ms[first]:.1f} ms at p99; raise deadline_ms, use a faster device, "
            "or set steps=1 and accept the misses"
        )
    return choice


class DriftWatch:
    """Re-checks a chosen budget from the latencies of the calls made with it.

    Steps down when more than ``tolerance`` of the last ``window`` calls overran the deadline;
    steps up when the whole window, scaled to the next budget's passes, would fit with room.
    """

    def __init__(
        self, choice: BudgetChoice, budgets: Sequence[int], window: int = 50, tolerance: int = 1
    ) -> None:
        self.choice, self.budgets = choice, sorted(budgets)
        self.window, self.tolerance = window, tolerance
        self.recent: deque[float] = deque(maxlen=window)

    @property
    def steps(self) -> int:
        return self.choice.steps

    def observe(self, latency_ms: float) -> int:
        """Record one call's latency; returns the budget to use from now on."""
        self.recent.append(latency_ms)
        deadline = self.choice.deadline_ms
        index = self.budgets.index(self.steps)
        overruns = sum(ms > deadline for ms in self.recent)
        if overruns > self.tolerance and index > 0:
            self._move(
                self.budgets[index - 1], f"{overruns} of the last {len(self.recent)} overran"
            )
        elif len(self.recent) == self.window and index + 1 < len(self.budgets):
            scaled = max(self.recent) * self.budgets[index + 1] / self.steps
            if scaled <= UP_MARGIN * deadline:
                self._move(
                    self.budgets[index + 1], f"slowest recent call {max(self.recent):.1f} ms"
                )
        return self.steps

    def _move(self, steps: int, why: str) -> None:
        log.warning(
            "latency drifted (%s; deadline %g ms): budget %d -> %d passes",
            why,
            self.choice.deadline_ms,
            self.steps,
            steps,
        )
        self.choice.steps = steps
        self.recent.clear()


def p99_ms(times_ms: Sequence[float]) -> float:
    return float(np.percentile(np.asarray(times_ms), 99))
