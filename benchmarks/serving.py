"""Serving figures for docs/RESULTS.md: localhost round trip against the in-process call, a load
run, non-blocking chunks under a slow network, and the deadline-aware budget choice.

    OMP_NUM_THREADS=1 python benchmarks/serving.py --out docs/results/serving.json

All with the shipped Push-T policy on CPU, one torch thread per process, batch 1, 1 pass.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from shortcut_policy import PolicyClient, ShortcutPolicy
from shortcut_policy.evaluation.latency import summarize_ms, timed_ms
from shortcut_policy.tasks import env_factory

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("round_trip", "load", "non_blocking", "deadline_choice")
SHIPPED = ROOT / "data" / "pretrained" / "push_t"


def start_server(*overrides: str) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "shortcut_policy.serve", f"checkpoint={SHIPPED}", "port=0"]
    process = subprocess.Popen(
        [*command, "device=cpu", *overrides],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in process.stdout:
        found = re.search(r"listening on (ws://\S+)", line)
        if found:
            return process, found.group(1)
    raise RuntimeError("the server did not start")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def history(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "keypoint": rng.uniform(100, 400, (1, 2, 8, 2)).astype(np.float32),
        "state": rng.uniform(100, 400, (1, 2, 5)).astype(np.float32),
    }


def round_trip(url: str, calls: int) -> dict:
    """Batch-1 chunk calls: in-process, then through the server on localhost."""
    policy = ShortcutPolicy.from_pretrained(SHIPPED, "cpu", steps=1)
    batch = history(0)
    local = summarize_ms(
        timed_ms(lambda: policy.predict_action_chunk(batch), policy.device, calls, 20)
    )
    with PolicyClient(url, timeout_s=10) as client:
        remote = summarize_ms(
            timed_ms(lambda: client.predict_action_chunk(batch), policy.device, calls, 20)
        )
    return {"calls": calls, "in_process": local, "localhost": remote}


def load_client(url: str, hz: float, seconds: float, seed: int, out) -> None:
    """One robot: a chunk request every 1/hz s for ``seconds``; round trips and misses."""
    torch.set_num_threads(1)
    period, batch = 1.0 / hz, history(seed)
    times, errors, missed = [], [], 0
    try:
        client = PolicyClient(url, timeout_s=5)
    except Exception as err:  # noqa: BLE001 - counted as a dropped connection
        out.put({"times": [], "errors": [repr(err)], "missed": 0, "dropped": 1})
        return
    next_tick = start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        next_tick += period
        sent = time.perf_counter()
        try:
            client.predict_action_chunk(batch)
            times.append((time.perf_counter() - sent) * 1000)
        except Exception as err:  # noqa: BLE001 - reported
            errors.append(repr(err))
        slack = next_tick - time.perf_counter()
        if slack < 0:
            missed += 1
            next_tick = time.perf_counter()
        else:
            time.sleep(slack)
    client.close()
    out.put({"times": times, "errors": errors, "missed": missed, "dropped": 0})


def load_run(url: str, pid: int, clients: int, hz: float, seconds: float) -> dict:
    """``clients`` processes at ``hz`` for ``seconds``; server memory sampled every 5 s."""
    out = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=load_client, args=(url, hz, seconds, seed, out))
        for seed in range(clients)
    ]
    memory = [rss_mb(pid)]
    [worker.start() for worker in workers]
    start = time.time()
    while time.time() - start < seconds + 2:
        time.sleep(5)
        memory.append(rss_mb(pid))
    results = [out.get(timeout=60) for _ in workers]
    [worker.join(timeout=30) for worker in workers]
    times = np.concatenate([r["times"] for r in results if r["times"]])
    return {
        "clients": clients,
        "hz": hz,
        "seconds": seconds,
        "requests_served": len(times),
        "round_trip": summarize_ms(times),
        "errors": sum(len(r["errors"]) for r in results),
        "first_errors": [e for r in results for e in r["errors"]][:3],
        "dropped_connections": sum(r["dropped"] for r in results),
        "missed_deadlines": sum(r["missed"] for r in results),
        # every 5 s from the start: flat after the first batches' allocations, or growing
        "server_rss_mb": [round(mb, 1) for mb in memory],
    }


def non_blocking(delay_ms: float, hz: float, ticks: int) -> dict:
    """The example control loop on Push-T with every chunk slowed by ``delay_ms``."""
    spec = importlib.util.spec_from_file_location("control_loop", ROOT / "examples/control_loop.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    rows = {}
    for mode in (False, True):
        policy = ShortcutPolicy.from_pretrained(SHIPPED, "cpu", steps=1, async_chunks=mode)
        env = env_factory({"name": "push_t", "env": policy.meta["config"]["task"]["env"]})()
        result = example.control_loop(example.slowed(policy, delay_ms), env, 100000, hz, ticks)
        rows["async" if mode else "blocking"] = {
            "ticks": len(result["latency_ms"]),
            "missed": result["missed"],
            "missed_after_first_chunk": result["missed_after_first_chunk"],
            "select_action_max_ms": float(result["latency_ms"].max()),
            "select_action_max_ms_after_first": float(result["latency_ms"][1:].max()),
        }
    return {"delay_ms": delay_ms, "hz": hz, **rows}


def deadline_choices(deadlines: list[float]) -> dict:
    rows = {}
    for deadline in deadlines:
        policy = ShortcutPolicy.from_pretrained(SHIPPED, "cpu", steps="auto", deadline_ms=deadline)
        rows[str(deadline)] = {"steps": policy.steps, "p99_ms": policy.budget_choice.p99_ms}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/results/serving.json")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--load-seconds", type=float, default=60)
    parser.add_argument("--loop-ticks", type=int, default=200)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--note", default="", help="the machine's state, for the JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    report = {}
    if {"round_trip", "load"} & set(args.parts):
        process, url = start_server("threads=1")
        try:
            if "round_trip" in args.parts:
                report["round_trip"] = round_trip(url, args.calls)
            if "load" in args.parts:
                report["load"] = load_run(url, process.pid, 8, 20.0, args.load_seconds)
        finally:
            process.terminate()
            process.wait(timeout=30)
    if "non_blocking" in args.parts:
        report["non_blocking"] = non_blocking(150.0, 10.0, args.loop_ticks)
    if "deadline_choice" in args.parts:
        report["deadline_choice"] = deadline_choices([10.0, 30.0, 100.0])
    report["note"] = f"one torch thread per process; batch 1; shipped Push-T policy. {args.note}"
    report["date"] = time.strftime("%Y-%m-%d %H:%M")
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
