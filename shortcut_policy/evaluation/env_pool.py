"""A pool of environments in worker processes, for batched policy evaluation.

Each slot owns one worker process holding one environment. The policy runs batched in the main
process; ``step_many`` sends every action first and then gathers the replies, so the workers step
in parallel. A slot whose environment raises, hangs or dies returns an :class:`EnvFault`, and its
worker is replaced by a fresh one (with a new environment), so the slot can start the next episode
after a ``reset``. The other slots' results are returned as usual.

Protocol per worker: the worker builds its environment and sends ``("ready", None)`` (or
``("error", ...)`` if ``make_env`` raised), then answers each ``(command, payload)`` with exactly
one ``("ok", result)`` or ``("error", (message, traceback))``. A worker that misses its deadline is
killed, so a stale reply can never be read as the answer to a later command.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Literal

import gymnasium
import numpy as np

log = logging.getLogger(__name__)

Obs = Any  # np.ndarray or dict[str, np.ndarray], sent through the pipe as-is
StepResult = tuple[Obs, float, bool, bool, dict]
FaultKind = Literal["crash", "timeout"]


@dataclass(frozen=True)
class EnvFault:
    """Why a slot returned no result.

    Attributes:
        slot: the slot index.
        seed: the seed of the slot's last reset (the episode that failed); None if unseeded.
        kind: "crash" (the env raised, or the worker process died) or "timeout" (no answer in
            time; the worker was killed).
        message: "ExceptionType: message" or a description of the death / timeout.
        traceback: the last frames of the worker's traceback ("" when there is none).
    """

    slot: int
    seed: int | None
    kind: FaultKind
    message: str
    traceback: str = ""


def _error_payload(exc: BaseException) -> tuple[str, str]:
    # Only strings cross the pipe: the exception object itself may not unpickle in the parent.
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-6))
    return f"{type(exc).__name__}: {exc}", tb


def _run_command(env: gymnasium.Env, command: str, payload: Any) -> Any:
    if command == "reset":
        obs, _info = env.reset(seed=payload)
        return obs
    if command == "step":
        obs, reward, terminated, truncated, info = env.step(payload)
        return obs, float(reward), bool(terminated), bool(truncated), info
    if command == "render":
        return env.render()
    raise ValueError(f"unknown command {command!r}")


def _worker(conn: Connection, make_env: Callable[[], gymnasium.Env]) -> None:
    """Worker process body: build the env, then serve commands until "close" or parent exit."""
    # Ctrl-C reaches the whole process group; let the parent decide, and close() clean us up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        env = make_env()
    except Exception as exc:
        conn.send(("error", _error_payload(exc)))
        return
    conn.send(("ready", None))
    try:
        while True:
            try:
                command, payload = conn.recv()
            except EOFError:  # the parent closed its end (or died)
                return
            if command == "close":
                return
            try:
                conn.send(("ok", _run_command(env, command, payload)))
            except Exception as exc:  # the env raised, or its result did not pickle
                conn.send(("error", _error_payload(exc)))
    finally:
        env.close()


@dataclass
class _Worker:
    process: mp.process.BaseProcess
    conn: Connection
    started_at: float  # time.monotonic() at start
    ready_at: float | None = None  # time.monotonic() when the env was built


class EnvPool:
    """``n_workers`` environments, one per worker process, addressed by slot ``0 .. n_workers-1``.

    Args:
        make_env: builds one environment; it runs inside the worker, so it must be picklable
            (a module-level function, or ``functools.partial`` of one) under spawn / forkserver.
            Set ``render_mode="rgb_array"`` in it if you call :meth:`render`.
        n_workers: number of slots (and processes).
        step_timeout_s: seconds a batch of commands may take, measured from when the last command
            of the batch is sent; a slot still silent then is killed and faulted as "timeout".
        start_timeout_s: seconds a fresh worker may take to start and build its env (imports can
            be slow); its first command's step_timeout_s counts from when the env is built.
        start_method: multiprocessing start method; "spawn" (default) or "forkserver" avoid
            forking a parent that holds torch threads.
    """

    def __init__(
        self,
        make_env: Callable[[], gymnasium.Env],
        n_workers: int,
        step_timeout_s: float = 30.0,
        start_timeout_s: float = 120.0,
        start_method: str = "spawn",
    ) -> None:
        if n_workers < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
        self.n_workers = n_workers
        self.step_timeout_s = step_timeout_s
        self.start_timeout_s = start_timeout_s
        self._make_env = make_env
        self._ctx = mp.get_context(start_method)
        self._seeds: list[int | None] = [None] * n_workers
        self._workers: list[_Worker] = []
        self._closed = False
        try:
            for slot in range(n_workers):
                self._workers.append(self._start(slot))
        except BaseException:
            self.close()  # e.g. make_env does not pickle: do not leave the first workers running
            raise

    def reset(self, slot: int, seed: int | None) -> Obs | EnvFault:
        """Reset one slot; returns its first observation (the reset info is dropped)."""
        return self.reset_many({slot: seed})[slot]

    def reset_many(self, seeds: dict[int, int | None]) -> dict[int, Obs | EnvFault]:
        """Reset several slots in parallel; ``seeds`` maps slot -> seed (None: no reseed)."""
        for slot, seed in seeds.items():
            self._check_slot(slot)
            self._seeds[slot] = seed
        return self._call_many({slot: ("reset", seed) for slot, seed in seeds.items()})

    def step_many(self, actions: dict[int, np.ndarray]) -> dict[int, StepResult | EnvFault]:
        """Step several slots in parallel.

        Args:
            actions: slot -> action, e.g. ``(Da,)`` for Push-T.

        Returns:
            slot -> ``(obs, reward, terminated, truncated, info)`` or an EnvFault. A faulted slot
            has a fresh environment and needs ``reset`` before it is stepped again.
        """
        return self._call_many({slot: ("step", action) for slot, action in actions.items()})

    def render(self, slot: int) -> np.ndarray | EnvFault:
        """One frame of a slot, ``(H, W, 3)`` uint8 for ``render_mode="rgb_array"``."""
        return self._call_many({slot: ("render", None)})[slot]

    @property
    def pids(self) -> list[int | None]:
        """The current worker process ids, by slot (for monitoring and tests)."""
        return [w.process.pid for w in self._workers]

    def close(self, timeout_s: float = 2.0) -> None:
        """Ask every worker to exit; terminate, then kill, any still alive after ``timeout_s``."""
        if self._closed:
            return
        self._closed = True
        for w in self._workers:
            try:
                w.conn.send(("close", None))
            except OSError:  # the worker is already gone
                pass
        deadline = time.monotonic() + timeout_s
        for w in self._workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            self._stop(w)

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_slot(self, slot: int) -> None:
        if self._closed:
            raise RuntimeError("EnvPool is closed")
        if not 0 <= slot < self.n_workers:
            raise IndexError(f"slot {slot} is not in 0..{self.n_workers - 1}")

    def _start(self, slot: int) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker, args=(child_conn, self._make_env), name=f"EnvPool-{slot}", daemon=True
        )
        process.start()
        # Drop our copy of the child's end, so that a dead worker reads as EOF on parent_conn.
        child_conn.close()
        return _Worker(process, parent_conn, time.monotonic())

    def _stop(self, w: _Worker) -> None:
        """Terminate, then kill, and always join (reap) the worker process."""
        if w.process.is_alive():
            w.process.terminate()
            w.process.join(1.0)
        if w.process.is_alive():
            w.process.kill()
        w.process.join()
        w.conn.close()

    def _fault(self, slot: int, kind: FaultKind, message: str, tb: str = "") -> EnvFault:
        """Record a fault and replace the slot's worker with a fresh one."""
        fault = EnvFault(slot, self._seeds[slot], kind, message, tb)
        log.warning("env slot %d (seed %s) %s: %s", slot, fault.seed, kind, message)
        self._stop(self._workers[slot])
        self._workers[slot] = self._start(slot)
        return fault

    def _deadline(self, w: _Worker, batch_deadline: float) -> float:
        if w.ready_at is None:  # still building its env: allow the start-up time first
            return max(batch_deadline, w.started_at + self.start_timeout_s)
        return max(batch_deadline, w.ready_at + self.step_timeout_s)

    def _call_many(self, commands: dict[int, tuple[str, Any]]) -> dict[int, Any]:
        """Send every command, then gather the replies against one deadline for the batch."""
        for slot in commands:  # check all first: a half-sent batch would leave unread replies
            self._check_slot(slot)
        try:
            return self._send_and_gather(commands)
        except BaseException:
            # Interrupted (e.g. Ctrl-C) with replies in flight: the pipes are out of step with the
            # commands, so the pool cannot be trusted any more. Do not wait on busy workers.
            self.close(timeout_s=0.0)
            raise

    def _send_and_gather(self, commands: dict[int, tuple[str, Any]]) -> dict[int, Any]:
        results: dict[int, Any] = {}
        for slot, command in commands.items():
            try:
                self._workers[slot].conn.send(command)
            except OSError:  # broken pipe: the worker died between calls
                results[slot] = self._died(slot)
        batch_deadline = time.monotonic() + self.step_timeout_s
        pending = {self._workers[s].conn: s for s in commands if s not in results}
        while pending:
            next_deadline = min(
                self._deadline(self._workers[s], batch_deadline) for s in pending.values()
            )
            # Read what has arrived before expiring anything: a worker that started long ago has
            # its "ready" waiting in the pipe, and wait(timeout=0) still returns it.
            for conn in wait(list(pending), timeout=max(0.0, next_deadline - time.monotonic())):
                reply = self._receive(pending[conn])
                if reply is not _NOT_YET:
                    results[pending.pop(conn)] = reply
            now = time.monotonic()
            for conn, slot in list(pending.items()):
                if self._deadline(self._workers[slot], batch_deadline) <= now:
                    del pending[conn]
                    results[slot] = self._expire(slot)
        return {slot: results[slot] for slot in commands}

    def _receive(self, slot: int) -> Any:
        """Read one message from a slot: its result, an EnvFault, or _NOT_YET after "ready"."""
        w = self._workers[slot]
        try:
            tag, payload = w.conn.recv()
        except (EOFError, OSError):  # it exited (closed pipe) or was killed (connection reset)
            return self._died(slot)
        except Exception as exc:  # e.g. the reply names a class the parent cannot import
            return self._fault(slot, "crash", f"unreadable reply: {type(exc).__name__}: {exc}")
        if tag == "ready":
            w.ready_at = time.monotonic()
            return _NOT_YET
        if tag == "error":
            message, tb = payload
            return self._fault(slot, "crash", message, tb)
        return payload

    def _died(self, slot: int) -> EnvFault:
        process = self._workers[slot].process
        process.join(1.0)  # its pipe closed as it exited; reap it to read the exit code
        return self._fault(slot, "crash", f"worker died ({exit_status(process.exitcode)})")

    def _expire(self, slot: int) -> EnvFault:
        w = self._workers[slot]
        if not w.process.is_alive():
            return self._died(slot)
        if w.ready_at is None:
            message = f"env not built within start_timeout_s={self.start_timeout_s:g}"
        else:
            message = f"no answer within step_timeout_s={self.step_timeout_s:g}"
        return self._fault(slot, "timeout", message + "; worker killed")


def exit_status(code: int | None) -> str:
    """A worker's exit code in words: ``"killed by SIGKILL"``, ``"exit code 3"``."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


_NOT_YET = object()  # _receive's marker for a "ready" message: the reply is still to come
