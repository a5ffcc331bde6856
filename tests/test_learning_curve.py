"""The learning curve of a run trained in pieces: hours from the logged step rates."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "learning_curve.py"
spec = importlib.util.spec_from_file_location("learning_curve", SCRIPT)
learning_curve = importlib.util.module_from_spec(spec)
spec.loader.exec_module(learning_curve)


def test_hours_count_training_steps_only_across_pieces():
    rows = [
        {"step": 50, "steps_per_s": 1.0, "epoch": 0.5},
        {"step": 100, "steps_per_s": 0.5, "epoch": 1.0, "eval/success@1": 0.2, "eval/score@1": 0.6},
        # a second piece on a busier machine: same steps, slower
        {"step": 150, "steps_per_s": 0.25, "epoch": 1.5, "val/mse": 0.3},
        {"step": 200, "steps_per_s": 0.25, "epoch": 2.0, "eval/success@1": 0.5},
    ]
    points = learning_curve.curve(rows)
    assert [p["step"] for p in points] == [100, 200]
    assert points[0]["train_hours"] == pytest.approx((50 + 100) / 3600)
    assert points[1]["train_hours"] == pytest.approx((50 + 100 + 200 + 200) / 3600)
    assert points[1]["epoch"] == 2.0 and points[1]["score"] is None
    # the validation error logged last before each evaluation; none before the first
    assert [p["val_mse"] for p in points] == [None, 0.3]


def test_a_torn_last_line_is_skipped(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "steps_per_s": 2.0}\n{"step": 2, "st')
    assert learning_curve.read_rows(tmp_path) == [{"step": 1, "steps_per_s": 2.0}]
