"""The GPU check's CPU run: the same script and code path, so the check cannot rot unseen."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_on_a_cpu_and_writes_every_figure(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path)}
    command = ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--quick"]
    command += ["--dataset", str(tmp_path / "push_t.zarr")]  # made by the script: 10 episodes
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["device"] == "cpu" and report["graph"] is None  # CUDA graphs: CUDA only
    for figures in (report["eager"]["latency_ms"]["1"], report["compiled"]["latency_ms"]["1"]):
        assert 0 < figures["median_ms"] <= figures["p99_ms"]
    assert (
        report["ddpm_100"]["eager"]["100"]["median_ms"]
        > report["eager"]["latency_ms"]["1"]["median_ms"]
    )
    assert set(report["eager"]["throughput_chunks_per_s"]) == {"64", "256"}
    runs = {(r["model"], r["device_data"]): r["steps_per_s_last"] for r in report["train_bf16"]}
    assert set(runs) == {("unet_small", False), ("unet_small", True)}
    assert all(speed > 0 for speed in runs.values())


def test_unknown_arguments_are_refused_by_name():
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--fast"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "unknown argument --fast" in done.stderr
