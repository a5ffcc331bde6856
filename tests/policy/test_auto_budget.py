"""Deadline-aware budgets: the largest budget whose p99 fits, and the budget follows drift."""

import numpy as np
import pytest
import torch

from shortcut_policy import ShortcutPolicy
from shortcut_policy.objectives.sampling import BudgetError, step_budget
from shortcut_policy.policy.auto_budget import (
    BudgetChoice,
    DriftWatch,
    candidate_budgets,
    choose_budget,
    largest_budget,
    measured_success,
)

SHIPPED = "data/pretrained/push_t"


def shortcut_budget(steps):
    return step_budget(steps, 1, 128, "a shortcut model")


def test_candidates_and_the_largest_budget_follow_the_objective():
    assert candidate_budgets(shortcut_budget) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert largest_budget(shortcut_budget) == 128
    assert largest_budget(lambda s: step_budget(s, 1, 100, "DDPM")) == 100
    assert largest_budget(lambda s: step_budget(s, 1, None, "flow")) is None


def test_the_largest_budget_that_fits_is_chosen_and_slower_ones_are_not_timed():
    timed = []

    def p99(steps):
        timed.append(steps)
        return 2.0 + 1.5 * steps  # ms

    choice = choose_budget(p99, [1, 2, 4, 8, 16, 32], deadline_ms=30)
    assert choice.steps == 16  # 26 ms; 32 passes take 50 ms
    assert timed == [1, 2, 4, 8, 16, 32]
    assert choose_budget(p99, [1, 2, 4], deadline_ms=5).steps == 2
    with pytest.raises(BudgetError, match=r"no step budget fits a 3 ms deadline: 1 pass\(es\)"):
        choose_budget(p99, [1, 2], deadline_ms=3)
    with pytest.raises(BudgetError, match="deadline_ms must be a positive"):
        choose_budget(p99, [1], deadline_ms=0)


def test_drift_steps_down_on_overruns_and_back_up_with_room():
    watch = DriftWatch(BudgetChoice(steps=8, deadline_ms=10.0), [1, 2, 4, 8, 16], window=10)
    assert all(watch.observe(6.0) == 8 for _ in range(5))
    watch.observe(12.0)  # one overrun is tolerated
    assert watch.observe(13.0) == 4  # a second one is drift
    # 10 calls at 3 ms with 4 passes: 8 passes would take ~6 ms <= 0.8 * 10 ms
    assert [watch.observe(3.0) for _ in range(10)][-1] == 8
    assert [watch.observe(4.5) for _ in range(10)][-1] == 8  # 16 passes ~9 ms: no room


@pytest.fixture(scope="module")
def untabled(tmp_path_factory):
    """The shipped network saved without its measured success table."""
    policy = ShortcutPolicy.from_pretrained(SHIPPED, "cpu")
    policy.meta.pop("budget_success", None)
    folder = tmp_path_factory.mktemp("untabled")
    policy.save_pretrained(folder)
    return folder


def test_policy_with_steps_auto_reports_its_choice(monkeypatch, untabled):
    monkeypatch.setattr(ShortcutPolicy, "chunk_p99_ms", lambda self, steps: 1.0 + steps)
    policy = ShortcutPolicy.from_pretrained(untabled, "cpu", steps="auto", deadline_ms=20)
    assert policy.steps == 16
    assert policy.budget_choice.p99_ms == {1: 2.0, 2: 3.0, 4: 5.0, 8: 9.0, 16: 17.0, 32: 33.0}
    assert "16 network pass(es) per chunk fit the 20 ms deadline" in policy.budget_choice.summary()


def test_the_shipped_policy_never_auto_picks_a_budget_that_scored_below_one_pass(monkeypatch):
    monkeypatch.setattr(ShortcutPolicy, "chunk_p99_ms", lambda self, steps: 1.0 + steps)
    policy = ShortcutPolicy.from_pretrained(SHIPPED, "cpu", steps="auto", deadline_ms=1000)
    table = measured_success(policy.meta)
    assert 1 in table and table[policy.steps] >= table[1]
    assert all(table.get(s, 0.0) >= table[1] for s in policy.budget_choice.p99_ms)


def test_steps_auto_leaves_out_budgets_measured_worse_than_one_pass(
    monkeypatch, tmp_path, untabled
):
    """A network can lose quality with more passes; the saved rollout says where."""
    monkeypatch.setattr(ShortcutPolicy, "chunk_p99_ms", lambda self, steps: 1.0 + steps)
    report = {
        "budgets": [
            {"steps": 1, "success_rate": 0.80},
            {"steps": 2, "success_rate": 0.85},
            {"steps": 4, "success_rate": 0.70},  # worse than 1 pass: never chosen
            {"steps": 8, "success_rate": 0.90},
        ]
    }
    ShortcutPolicy.from_pretrained(SHIPPED, "cpu").save_pretrained(tmp_path, report=report)
    fits_4 = ShortcutPolicy.from_pretrained(tmp_path, "cpu", steps="auto", deadline_ms=6)
    assert fits_4.steps == 2 and fits_4.budget_choice.left_out == [4, 16, 32, 64, 128]
    assert "measured worse than 1 pass: [4, 16" in fits_4.budget_choice.summary()
    fits_8 = ShortcutPolicy.from_pretrained(tmp_path, "cpu", steps="auto", deadline_ms=10)
    assert fits_8.steps == 8
    # Saved again without a report, the table stays with the policy.
    fits_8.save_pretrained(tmp_path / "again")
    again = ShortcutPolicy.from_pretrained(tmp_path / "again", "cpu", steps="auto", deadline_ms=6)
    assert again.steps == 2
    # Without a table every budget may be chosen.
    plain = ShortcutPolicy.from_pretrained(untabled, "cpu", steps="auto", deadline_ms=6)
    assert plain.steps == 4
    with pytest.raises(ValueError, match="need passes -> rate in"):
        measured_success({"budget_success": {"1": 1.5}})


def test_steps_auto_measures_the_real_device_and_refuses_an_impossible_deadline():
    with pytest.raises(BudgetError, match=r"no step budget fits a 0.001 ms deadline on cpu"):
        ShortcutPolicy.from_pretrained(SHIPPED, "cpu", steps="auto", deadline_ms=0.001)
    with pytest.raises(BudgetError, match="steps='auto' needs deadline_ms"):
        ShortcutPolicy.from_pretrained(SHIPPED, "cpu", steps="auto")
    with pytest.raises(BudgetError, match="deadline_ms is used only with steps='auto'"):
        ShortcutPolicy.from_pretrained(SHIPPED, "cpu", steps=2, deadline_ms=10)


def test_a_policy_with_async_chunks_acts_without_waiting_after_the_first_chunk():
    policy = ShortcutPolicy.from_pretrained(SHIPPED, "cpu", async_chunks=True, async_lead=3)
    rng = np.random.default_rng(0)
    policy.reset()
    actions = []
    for _ in range(24):
        obs = {"keypoint": rng.uniform(100, 400, (8, 2)), "state": rng.uniform(100, 400, 5)}
        actions.append(policy.select_action(obs))
        policy.chunks.pending and policy.chunks.pending[0].result(timeout=10)  # a fast network
    assert np.isfinite(actions).all() and np.shape(actions) == (24, 2)
    assert policy.chunks.waits == 0
    with pytest.raises(ValueError, match="observation 'state' contains NaN"):
        policy.select_action({"keypoint": np.zeros((8, 2)), "state": np.full(5, np.nan)})


def test_cuda_graphs_on_a_cpu_policy_are_refused_by_name():
    with pytest.raises(
        ValueError, match="cuda_graph=True needs a CUDA device, but the policy is on cpu"
    ):
        ShortcutPolicy.from_pretrained(SHIPPED, "cpu", cuda_graph=True)


class StandInGraph:
    """Stands in for a captured CUDA graph: counts replays."""

    def __init__(self):
        self.replays = 0

    def replay(self):
        self.replays += 1


def test_a_cuda_graph_refuses_inputs_from_another_device():
    from shortcut_policy.policy.cuda_graph import GraphedChunks

    graphed = object.__new__(GraphedChunks)  # as __init__ would leave it, without a GPU
    graph = StandInGraph()
    graphed.device, graphed.graphs = torch.device("cuda", 0), {}
    graphed._capture = lambda obs, noise, steps: (graph, {}, noise, noise)
    obs, noise = {"state": torch.zeros(1, 2, 5)}, torch.zeros(1, 16, 2)  # on the CPU
    with pytest.raises(ValueError, match="state is on cpu, but this policy's CUDA graphs run"):
        graphed(obs, noise, 1)
    assert graph.replays == 0 and not graphed.graphs  # nothing replayed, nothing captured
