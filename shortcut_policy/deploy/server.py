"""A policy server: action chunks over WebSocket for robots whose loop runs on another computer.

One :class:`PolicyServer` serves one :class:`ShortcutPolicy` to many clients at once. Each
connection gets the policy's description first, then sends ``act`` requests (see ``wire.py``)
and gets one ``chunk`` or ``error`` reply per request, in order. Requests that arrive while the
network is busy are batched into one forward pass (per step budget). A bad request (bytes that
are not msgpack, missing keys, wrong shapes or dtypes, NaN, an unknown budget) gets an error
reply that names the problem; the connection and everyone else's keep going. A message over
``max_message_bytes`` is refused by the WebSocket layer before it is decoded (close code 1009).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from shortcut_policy.deploy import wire
from shortcut_policy.objectives.sampling import BudgetError
from shortcut_policy.policy import ShortcutPolicy
from shortcut_policy.policy.auto_budget import candidate_budgets, largest_budget
from shortcut_policy.policy.chunk_buffer import ChunkBuffer
from shortcut_policy.policy.chunk_joins import checked_given, checked_warm_t
from shortcut_policy.policy.obs_check import checked_noise

log = logging.getLogger("shortcut_policy.serve")
# What a client needs to check and batch observations itself (see obs_check.ObservationCheck).
SPEC_KEYS = ("obs_shapes", "obs_types", "action_dim", "horizon", "n_obs_steps", "n_action_steps")


def describe(policy: ShortcutPolicy, max_message_bytes: int) -> dict[str, Any]:
    """What a client needs to know before its first request (plain data)."""
    spec = policy.spec
    choice = policy.budget_choice
    return {
        "task": spec["task"],
        "objective": policy.objective.name,
        "sampler": getattr(policy.objective, "sampler", None),
        "spec": {key: spec[key] for key in SPEC_KEYS},
        "obs_dtypes": {
            key: "uint8" if kind == "rgb" else "float32" for key, kind in policy.obs_types.items()
        },
        "steps": policy.steps,
        "budgets": candidate_budgets(policy.objective.budget),
        "max_steps": largest_budget(policy.objective.budget),
        "deadline_ms": choice.deadline_ms if choice else None,
        "measured_p99_ms": {str(k): v for k, v in choice.p99_ms.items()} if choice else None,
        "max_message_bytes": max_message_bytes,
        "train_step": policy.meta.get("step"),
        "prefix_max": getattr(policy.network, "prefix_max", 0),  # longest committed prefix
    }


@dataclass
class Request:
    """One client's observations ``{key: (B, n_obs_steps, *shape)}`` waiting for a forward."""

    obs: dict[str, np.ndarray]
    steps: int | None
    given: tuple[np.ndarray, np.ndarray] | None = None  # committed prefix (mask, actions)
    warm: tuple[float, np.ndarray] | None = None  # warm start (warm_t, old plan (B, H, Da))
    queued: float = field(default_factory=time.perf_counter)
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def rows(self) -> int:
        return len(next(iter(self.obs.values())))


class Batcher:
    """Runs queued requests in one worker thread, concurrent ones batched into one forward."""

    def __init__(self, policy: ShortcutPolicy, max_batch: int) -> None:
        self.policy, self.max_batch = policy, max_batch
        self.queue: asyncio.Queue[Request] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="policy-forward")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self.queue.get()]
            while not self.queue.empty() and sum(r.rows for r in group) < self.max_batch:
                group.append(self.queue.get_nowait())
            # One forward per budget and warm start time (None: cold).
            for key in dict.fromkeys(_forward_key(r) for r in group):
                same = [r for r in group if _forward_key(r) == key]
                await loop.run_in_executor(self.executor, self.forward, same, key[0], loop)

    def forward(self, requests: list[Request], steps: int | None, loop) -> None:
        """One forward for ``requests``; each future gets ``(chunk, timing)`` or its error."""
        start = time.perf_counter()
        obs = {key: np.concatenate([r.obs[key] for r in requests]) for key in requests[0].obs}
        try:
            given = _given(self.policy, requests)
            chunks = self.policy.predict_checked(obs, steps, given=given, **_warm(requests))
            chunks = np.split(chunks, _bounds(requests))
        except ValueError:  # one request's bad rows must not fail the others: retry alone
            chunks = [self._alone(r, steps) for r in requests]
        except Exception as err:  # a bug or a device fault: answer everyone, keep serving
            log.exception("forward pass failed")
            chunks = [RuntimeError(f"the server's forward pass failed: {err}")] * len(requests)
        infer_ms = (time.perf_counter() - start) * 1000.0
        for request, chunk in zip(requests, chunks, strict=True):
            timing = {"queue_ms": (start - request.queued) * 1000.0, "infer_ms": infer_ms}
            timing["batch_rows"] = len(obs[next(iter(obs))])
            loop.call_soon_threadsafe(_settle, request.done, chunk, timing)

    def _alone(self, request: Request, steps: int | None) -> np.ndarray | Exception:
        try:
            warm = _warm([request])
            return self.policy.predict_checked(request.obs, steps, given=request.given, **warm)
        except ValueError as err:
            return err


def _forward_key(request: Request) -> tuple[int | None, float | None]:
    return request.steps, None if request.warm is None else request.warm[0]


def _warm(requests: list[Request]) -> dict[str, Any]:
    """``predict_checked``'s warm start for a group (one ``warm_t``: the batcher groups by
    it), the plans stacked; empty for a cold group."""
    if requests[0].warm is None:
        return {}
    return {"warm": np.concatenate([r.warm[1] for r in requests]), "warm_t": requests[0].warm[0]}


def _given(policy: ShortcutPolicy, requests: list[Request]):
    """The group's committed prefixes stacked (rows without one: nothing given), or None."""
    if all(r.given is None for r in requests):
        return None
    horizon, action_dim = policy.horizon, policy.network.spec["action_dim"]
    masks, values = [], []
    for r in requests:
        mask, actions = r.given or (
            np.zeros((r.rows, horizon), bool),
            np.zeros((r.rows, horizon, action_dim), np.float32),
        )
        masks.append(mask)
        values.append(actions)
    return np.concatenate(masks), np.concatenate(values)


def _bounds(requests: list[Request]) -> list[int]:
    return list(np.cumsum([r.rows for r in requests])[:-1])


def _settle(future: asyncio.Future, chunk: np.ndarray | Exception, timing: dict) -> None:
    if future.done():
        return
    if isinstance(chunk, Exception):
        future.set_exception(chunk)
    else:
        future.set_result((chunk, timing))


class PolicyServer:
    """Serves ``policy`` over WebSocket; see the module docstring for the protocol."""

    def __init__(
        self, policy: ShortcutPolicy, max_message_bytes: int = 8 << 20, max_batch: int = 64
    ) -> None:
        self.policy = policy
        self.max_message_bytes, self.max_batch = max_message_bytes, max_batch
        self.description = describe(policy, max_message_bytes)
        self.served = self.errors = 0

    async def handle(self, connection: ServerConnection) -> None:
        """One client: hello, then one reply per message until it goes away."""
        host, port = connection.remote_address[:2]
        peer = f"{host}:{port}"
        log.info("client %s connected", peer)
        history = ChunkBuffer(self.policy.n_obs_steps, self.policy.n_action_steps)
        try:
            await connection.send(
                wire.pack({"type": "hello", "protocol": wire.PROTOCOL, "policy": self.description})
            )
            async for data in connection:
                received = time.perf_counter()
                reply = await self.answer(data, history, peer)
                if reply.get("type") == "chunk":
                    reply["timing"]["server_ms"] = (time.perf_counter() - received) * 1000.0
                await connection.send(wire.pack(reply))
        except ConnectionClosed as closed:
            log.info("client %s went away (%s)", peer, closed.rcvd or "no close frame")
            return
        log.info("client %s disconnected", peer)

    async def answer(self, data: bytes | str, history: ChunkBuffer, peer: str) -> dict[str, Any]:
        """The reply to one message (a chunk, a reset, or an error naming the problem)."""
        request_id = None
        try:
            message = wire.unpack(data)
            request_id = wire.request_id(message)
            if message["type"] == "reset":
                history.observations.clear()
                return {"type": "reset", "id": request_id}
            if message["type"] != "act":
                raise wire.WireError(f"unknown message type {message['type']!r}; send act or reset")
            steps = message.get("steps")
            if steps is not None:
                steps = self.policy.objective.budget(steps)
            obs, single = self.batched(wire.decode_obs(message), history)
            request = Request(obs, steps, self.given(message, obs), self.warm(message, obs))
            self.batcher.queue.put_nowait(request)
            chunk, timing = await request.done
            if single is not None:
                history.add_observation(single)
            self.served += 1
            return {
                "type": "chunk",
                "id": request_id,
                "action": chunk.astype(np.float32),
                "steps": steps or self.policy.steps,
                "timing": timing,
            }
        except (ValueError, BudgetError, RuntimeError) as err:
            self.errors += 1
            log.warning("client %s: %s: %s", peer, type(err).__name__, err)
            return {
                "type": "error",
                "id": request_id,
                "kind": type(err).__name__,
                "error": str(err),
            }

    def given(self, message: dict, obs: dict[str, np.ndarray]):
        """The request's committed prefix (``given_mask``, ``given_actions``), checked, or None."""
        if "given_mask" not in message:
            return None
        given = (
            wire.decode_array(message["given_mask"], "given_mask"),
            wire.decode_array(message.get("given_actions"), "given_actions"),
        )
        rows = len(next(iter(obs.values())))
        action_dim = self.policy.network.spec["action_dim"]
        prefix_max = getattr(self.policy.network, "prefix_max", 0)
        return checked_given(given, rows, self.policy.horizon, action_dim, prefix_max)

    def warm(self, message: dict, obs: dict[str, np.ndarray]) -> tuple[float, np.ndarray] | None:
        """The request's warm start (``warm_t``, default the served policy's, and
        ``warm_actions``), checked, or None."""
        if "warm_actions" not in message:
            return None
        if self.policy.objective.name == "ddpm":
            raise ValueError("join='warm' needs a flow-type policy; this server runs DDPM/DDIM")
        plan = wire.decode_array(message["warm_actions"], "warm_actions")
        rows = len(next(iter(obs.values())))
        shape = (rows, self.policy.horizon, self.policy.network.spec["action_dim"])
        return checked_warm_t(message.get("warm_t", self.policy.warm_t)), checked_noise(
            plan, shape, "warm_actions"
        )

    def batched(
        self, obs: dict[str, np.ndarray], history: ChunkBuffer
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """``obs`` as a checked batch ``{key: (B, n_obs_steps, *shape)}``, and the single
        observation to add to the connection's history once its chunk is computed (or None)."""
        check = self.policy.check
        extra = {
            key: np.ndim(value) - len(check.obs_shapes.get(key, ())) for key, value in obs.items()
        }
        forms = set(extra.values())
        if len(forms) != 1 or not forms <= {0, 1, 2}:
            raise ValueError(
                "every obs key must be one observation (*shape), one history "
                f"({check.n_obs_steps}, *shape) or a batch (B, {check.n_obs_steps}, *shape); "
                f"got leading dimensions {extra}"
            )
        form = forms.pop()
        if form == 0:
            single = check(obs, batched=False)
            return {k: v[None] for k, v in history.history(newest=single).items()}, single
        batch = check({k: v[None] for k, v in obs.items()} if form == 1 else obs, batched=True)
        rows = len(next(iter(batch.values())))
        if rows > self.max_batch:
            raise ValueError(f"a request may hold at most {self.max_batch} rows, got {rows}")
        return batch, None

    async def serve(self, host: str, port: int, ready=None) -> None:
        """Serve until SIGTERM or SIGINT; ``ready(port)`` is called once listening."""
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        self.batcher = Batcher(self.policy, self.max_batch)
        worker = asyncio.create_task(self.batcher.run())
        async with serve(self.handle, host, port, max_size=self.max_message_bytes) as server:
            bound = server.sockets[0].getsockname()[1]
            if ready is not None:
                ready(bound)
            await stop
            log.info("stopping: %d chunks served, %d errors", self.served, self.errors)
        worker.cancel()
        self.batcher.executor.shutdown(wait=True)
