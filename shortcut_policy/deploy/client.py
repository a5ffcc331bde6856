"""``PolicyClient``: a remote policy with the same surface as ``ShortcutPolicy``.

    policy = PolicyClient("ws://gpu-box:8765", steps=1)   # or ShortcutPolicy.from_pretrained(...)
    policy.reset()
    action = policy.select_action({"keypoint": kp, "state": state})

The client keeps the observation history and the action queue itself (so a server restart loses
nothing), checks observations before they leave (same messages as the in-process policy), and
sends one history per chunk. It reconnects after a lost connection and raises
:class:`PolicyTimeout` when a reply does not come in time.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from shortcut_policy.deploy import wire
from shortcut_policy.objectives.sampling import BudgetError, step_budget
from shortcut_policy.policy.async_chunks import AsyncChunks
from shortcut_policy.policy.chunk_buffer import ChunkBuffer
from shortcut_policy.policy.chunk_joins import (
    checked_join_setup,
    given_batch,
    warm_batch,
)
from shortcut_policy.policy.obs_check import ObservationCheck

ERRORS = {"BudgetError": BudgetError, "ValueError": ValueError, "WireError": ValueError}


class PolicyTimeout(TimeoutError):
    """The server did not answer in time."""


class PolicyClient:
    """A policy served by ``python -m shortcut_policy.serve``, used like ``ShortcutPolicy``.

    Args:
        url: ``ws://host:port`` of the server.
        steps: network passes per chunk (None: the server's choice).
        timeout_s: how long one request may take before :class:`PolicyTimeout`.
        reconnect_s: how long to keep trying to reconnect after the connection is lost.
        async_chunks, async_lead: as for ``ShortcutPolicy`` (the next chunk is requested while
            the current one runs).
        join, warm_t: as for ``ShortcutPolicy`` (``none``, ``ensemble``, ``warm``, ``prefix``),
            applied here, on the client; with ``prefix`` each request carries the committed
            actions, with ``warm`` the old plan and ``warm_t``.
    """

    def __init__(
        self,
        url: str,
        steps: int | None = None,
        timeout_s: float = 1.0,
        reconnect_s: float = 10.0,
        async_chunks: bool = False,
        async_lead: int = 1,
        join: str = "none",
        warm_t: float = 0.5,
    ) -> None:
        self.url, self.timeout_s, self.reconnect_s = url, timeout_s, reconnect_s
        self.ids = itertools.count(1)
        self.lock = threading.Lock()  # one request on the connection at a time
        self.connection: ClientConnection | None = None
        self._connect(deadline=time.monotonic() + reconnect_s)
        spec = self.description["spec"]
        self.check = ObservationCheck(spec)
        self.n_obs_steps, self.horizon = int(spec["n_obs_steps"]), int(spec["horizon"])
        self.n_action_steps = int(spec["n_action_steps"])
        self.steps = self._checked_steps(steps)
        delay = async_lead if async_chunks else 0
        prefix_max = int(self.description.get("prefix_max", 0))
        self.join, self.warm_t = checked_join_setup(
            join,
            warm_t,
            self.description["objective"],
            prefix_max,
            self.n_obs_steps,
            delay,
            async_chunks,
        )
        self.last_timing: dict[str, float] = {}
        self.chunks = None
        if async_chunks:
            self.chunks = AsyncChunks(
                self.predict_one,
                self.n_obs_steps,
                self.horizon,
                self.n_action_steps,
                async_lead,
                prefix=self.join == "prefix",
                warm=self.join == "warm",
            )
        self.reset()

    # ------------------------------------------------------------------ policy surface
    def reset(self) -> None:
        """Forget the observation history and the queued actions (call at episode start)."""
        self.buffer = ChunkBuffer(self.n_obs_steps, self.n_action_steps, join=self.join)
        if self.chunks is not None:
            self.chunks.reset()

    def select_action(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One observation in, one action ``(Da,)`` out; a chunk is requested when needed."""
        checked = self.check(obs, batched=False)
        if self.chunks is not None:
            return self.chunks.select_action(checked)
        return self.buffer.next_action(checked, self.predict_one)

    def predict_action_chunk(
        self, obs: Mapping[str, np.ndarray], steps: int | None = None, given=None, warm=None
    ) -> np.ndarray:
        """Observations ``{key: (B, n_obs_steps, *shape)}`` -> actions ``(B, horizon, Da)``;
        ``given`` ``(mask (B, H), actions (B, H, Da))``: a committed prefix; ``warm`` ``(B, H,
        Da)``: an old plan to start from at ``warm_t`` (both checked there)."""
        batch = self.check(obs, batched=True)
        steps = self.steps if steps is None else self._checked_steps(steps)
        request = {"type": "act", "obs": batch} | ({"steps": steps} if steps else {})
        if given is not None:
            mask, actions = given
            request["given_mask"] = np.asarray(mask, dtype=bool)
            request["given_actions"] = np.asarray(actions, dtype=np.float32)
        if warm is not None:
            request["warm_actions"] = np.asarray(warm, dtype=np.float32)
            request["warm_t"] = self.warm_t
        reply = self.request(request)
        self.last_timing = dict(reply.get("timing") or {})
        return wire.decode_array(reply["action"], "action")

    def predict_one(self, history: Mapping[str, np.ndarray], given=None, warm=None) -> np.ndarray:
        """One history ``{key: (n_obs_steps, *shape)}`` -> one chunk ``(horizon, Da)``; with
        ``join='prefix'`` the committed actions travel with it, with ``warm`` the old plan."""
        if self.chunks is None:
            given = given_batch([self.buffer.queue], self.horizon)
            warm = warm_batch([self.buffer.queue], self.horizon)
        batch = {key: value[None] for key, value in history.items()}
        return self.predict_action_chunk(batch, given=given, warm=warm)[0]

    # ------------------------------------------------------------------ transport
    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` and return its reply; reconnect once if the connection was lost."""
        with self.lock:
            message = dict(message, id=next(self.ids))
            data = wire.pack(message)
            if len(data) > self.description["max_message_bytes"]:
                raise ValueError(
                    f"the request is {len(data)} bytes; the server accepts at most "
                    f"{self.description['max_message_bytes']} (its max_message_mb)"
                )
            start = time.perf_counter()
            try:
                reply = self._exchange(data, message["id"])
            except (ConnectionClosed, OSError):
                self._connect(deadline=time.monotonic() + self.reconnect_s)
                reply = self._exchange(data, message["id"])
            if reply.get("timing") is not None:
                reply["timing"]["round_trip_ms"] = (time.perf_counter() - start) * 1000.0
        if reply["type"] == "error":
            error = ERRORS.get(reply.get("kind"), RuntimeError)
            raise error(f"the policy server refused the request: {reply.get('error')}")
        return reply

    def _exchange(self, data: bytes, request_id: int) -> dict[str, Any]:
        """Send and wait for the reply with ``request_id`` (late replies to earlier, timed-out
        requests are dropped)."""
        self.connection.send(data)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                raw = self.connection.recv(timeout=max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                raise PolicyTimeout(
                    f"no reply from {self.url} within {self.timeout_s} s (request {request_id}); "
                    "the server is overloaded, stopped or unreachable (raise timeout_s?)"
                ) from None
            reply = wire.unpack(raw)
            if reply.get("id") == request_id or reply.get("id") is None:
                return reply

    def _connect(self, deadline: float) -> None:
        """(Re)connect and read the server's description; retries until ``deadline``."""
        self.close()
        wait = 0.05
        while True:
            try:
                self.exits = ExitStack()  # websockets wants connect() used as a context
                self.connection = self.exits.enter_context(
                    connect(self.url, open_timeout=self.timeout_s, max_size=None)
                )
                hello = wire.unpack(self.connection.recv(timeout=self.timeout_s))
                break
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as err:
                if time.monotonic() + wait > deadline:
                    raise ConnectionError(
                        f"cannot reach the policy server at {self.url}: {err} "
                        "(is python -m shortcut_policy.serve running there?)"
                    ) from None
                time.sleep(wait)
                wait = min(wait * 2, 1.0)
        if hello.get("type") != "hello" or hello.get("protocol") != wire.PROTOCOL:
            raise ConnectionError(
                f"{self.url} is not a shortcut_policy server of protocol {wire.PROTOCOL}: "
                f"got {hello.get('type')!r} protocol {hello.get('protocol')!r}"
            )
        self.description = hello["policy"]

    def _checked_steps(self, steps: object) -> int | None:
        """``steps`` as the server's policy accepts it (None: the server's choice)."""
        if steps is None:
            return None
        most = self.description.get("max_steps")
        return step_budget(steps, 1, most, "this server's policy")

    def close(self) -> None:
        if self.connection is not None:
            self.exits.close()
            self.connection = None

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self.chunks is not None:
            self.chunks.close()
