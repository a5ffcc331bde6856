"""The policy server against bad input and faults, on a real server process on 127.0.0.1."""

import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("websockets")
pytest.importorskip("msgpack")

from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from shortcut_policy import PolicyClient, ShortcutPolicy  # noqa: E402
from shortcut_policy.deploy import wire  # noqa: E402
from shortcut_policy.deploy.client import PolicyTimeout  # noqa: E402
from shortcut_policy.objectives.sampling import BudgetError  # noqa: E402
from tests.deploy.server_process import SHIPPED, ServerProcess, free_port  # noqa: E402


@pytest.fixture(scope="module")
def server():
    process = ServerProcess("max_message_mb=1")
    yield process
    assert process.stop() == 0  # SIGTERM is a clean shutdown
    assert "[serve] stopped" in process.log()


def observation(rng):
    return {"keypoint": rng.uniform(100, 400, (8, 2)), "state": rng.uniform(100, 400, 5)}


def history(rng, batch=1):
    return {
        "keypoint": rng.uniform(100, 400, (batch, 2, 8, 2)).astype(np.float32),
        "state": rng.uniform(100, 400, (batch, 2, 5)).astype(np.float32),
    }


@contextmanager
def raw(server):
    """A bare WebSocket connection, past the hello."""
    with connect(server.url, max_size=None) as connection:
        hello = wire.unpack(connection.recv(timeout=10))
        assert hello["type"] == "hello"
        yield connection


def ask(connection, message):
    connection.send(message if isinstance(message, (bytes, str)) else wire.pack(message))
    return wire.unpack(connection.recv(timeout=10))


def test_the_client_acts_like_the_in_process_policy(server):
    rng = np.random.default_rng(0)
    with PolicyClient(server.url) as client:
        assert client.description["spec"]["obs_shapes"] == {"keypoint": [8, 2], "state": [5]}
        assert client.description["max_steps"] == 128
        local = ShortcutPolicy.from_pretrained(SHIPPED, "cpu")
        batch = history(rng, batch=3)
        noise_free = client.predict_action_chunk(batch, steps=4)
        assert noise_free.shape == (3, 16, 2) and noise_free.dtype == np.float32
        # Same network: the actions are alike (not equal: each side draws its own noise).
        assert np.abs(noise_free - local.predict_action_chunk(batch, steps=4)).mean() < 60
        client.reset()
        actions = [client.select_action(observation(rng)) for _ in range(10)]
        assert np.shape(actions) == (10, 2)
        assert client.last_timing["round_trip_ms"] >= client.last_timing["server_ms"] > 0


@pytest.mark.parametrize(
    "message, error",
    [
        (b"\xc1not msgpack", "not a msgpack message"),
        ("a text frame", "text frames are not messages"),
        ({"type": "act"}, "an act message needs 'obs'"),
        ({"type": "fly"}, "unknown message type 'fly'"),
        ({"no": "type"}, "a map with a string 'type'"),
        (
            {"type": "act", "obs": {"state": {"dtype": "object", "shape": [1], "data": b"x"}}},
            "dtype 'object'",
        ),
        (
            {"type": "act", "obs": {"state": {"dtype": "float32", "shape": [5], "data": b"x"}}},
            "has 1 bytes of data",
        ),
    ],
)
def test_malformed_messages_get_an_error_that_names_the_problem(server, message, error):
    with raw(server) as connection:
        reply = ask(connection, message)
        assert reply["type"] == "error" and error in reply["error"]
        # the connection is still served
        assert (
            ask(connection, {"type": "act", "id": 5, "obs": history(np.random.default_rng(1))})[
                "id"
            ]
            == 5
        )


@pytest.mark.parametrize(
    "change, error",
    [
        (lambda obs: obs.pop("state"), "missing key(s) ['state']"),
        (
            lambda obs: obs.update(state=obs["state"][..., :4]),
            "observation 'state' has shape (1, 2, 4)",
        ),
        (lambda obs: obs.update(state=obs["state"].astype(bool)), "has dtype bool"),
        (lambda obs: obs["state"].__setitem__((0, 1, 2), np.nan), "'state' contains NaN"),
        (lambda obs: obs.update(state=obs["state"][:, :, None]), "leading dimensions"),
    ],
)
def test_bad_observations_are_refused_by_name(server, change, error):
    obs = history(np.random.default_rng(2))
    change(obs)
    with raw(server) as connection:
        reply = ask(connection, {"type": "act", "id": 3, "obs": obs})
    assert reply == {"type": "error", "id": 3, "kind": "ValueError", "error": reply["error"]}
    assert error in reply["error"]
    assert error in server.log()  # and logged


def test_an_unknown_budget_is_refused_on_both_ends(server):
    with raw(server) as connection:
        reply = ask(
            connection, {"type": "act", "obs": history(np.random.default_rng(3)), "steps": 129}
        )
    assert reply["kind"] == "BudgetError" and "[1, 128]" in reply["error"]
    with pytest.raises(BudgetError, match=r"\[1, 128\]"):
        PolicyClient(server.url, steps=0)


def test_a_message_over_the_size_limit_is_refused_before_decoding(server):
    with raw(server) as connection:
        connection.send(b"\x00" * (100 << 20))  # 100 MB; the limit is 1 MB
        with pytest.raises(ConnectionClosed) as closed:
            connection.recv(timeout=10)
    assert closed.value.rcvd.code == 1009  # "message too big"
    with PolicyClient(server.url) as client:  # everyone else is still served
        assert client.predict_action_chunk(history(np.random.default_rng(4))).shape == (1, 16, 2)


def test_single_observations_build_a_history_per_connection(server):
    rng = np.random.default_rng(5)
    with raw(server) as connection:
        one = {key: value.astype(np.float32) for key, value in observation(rng).items()}
        reply = ask(connection, {"type": "act", "id": 1, "obs": one})
        assert wire.decode_array(reply["action"], "action").shape == (1, 16, 2)
        assert ask(connection, {"type": "reset", "id": 2}) == {"type": "reset", "id": 2}


def test_a_client_that_leaves_mid_request_does_not_disturb_the_others(server):
    with raw(server) as connection:
        message = {"type": "act", "obs": history(np.random.default_rng(6), 8), "steps": 128}
        connection.send(wire.pack(message))
    with PolicyClient(server.url, timeout_s=30) as client:
        assert client.predict_action_chunk(history(np.random.default_rng(7))).shape == (1, 16, 2)
    time.sleep(0.5)
    assert "went away" in server.log()


def test_ten_clients_at_once(server):
    failures, rows = [], []

    def run(seed):
        rng = np.random.default_rng(seed)
        try:
            with PolicyClient(server.url, timeout_s=20) as client:
                for _ in range(10):
                    assert client.predict_action_chunk(history(rng)).shape == (1, 16, 2)
                    rows.append(client.last_timing["batch_rows"])
        except Exception as err:  # noqa: BLE001 - reported below
            failures.append(repr(err))

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(10)]
    [thread.start() for thread in threads]
    [thread.join(timeout=120) for thread in threads]
    assert failures == [] and len(rows) == 100


def test_a_slow_reply_raises_a_timeout_and_the_next_request_is_fine(server):
    with PolicyClient(server.url, timeout_s=0.01) as client:
        with pytest.raises(PolicyTimeout, match="no reply from ws://127.0.0.1"):
            client.predict_action_chunk(history(np.random.default_rng(8), 16), steps=128)
        client.timeout_s = 30  # the late reply to the first request is dropped, not taken
        batch = history(np.random.default_rng(9), 2)
        assert client.predict_action_chunk(batch, steps=1).shape == (2, 16, 2)


def test_the_client_reconnects_after_a_server_restart():
    port = free_port()
    first = ServerProcess(port=port)
    rng = np.random.default_rng(10)
    with PolicyClient(first.url, reconnect_s=60) as client:
        client.select_action(observation(rng))
        assert first.stop() == 0
        second = ServerProcess(port=port)
        try:
            client.reset()
            assert client.select_action(observation(rng)).shape == (2,)
        finally:
            second.stop()
    with pytest.raises(ConnectionError, match="cannot reach the policy server"):
        PolicyClient(first.url, reconnect_s=0.2)


def test_a_committed_prefix_for_a_policy_trained_without_one_is_refused(server):
    rng = np.random.default_rng(0)
    message = {
        "type": "act",
        "obs": history(rng),
        "given_mask": np.zeros((1, 16), bool),
        "given_actions": np.zeros((1, 16, 2), np.float32),
    }
    with raw(server) as connection:
        reply = ask(connection, message)
    assert reply["type"] == "error" and "trained without prefix conditioning" in reply["error"]
    with pytest.raises(ValueError, match="needs a policy trained with prefix conditioning"):
        PolicyClient(server.url, join="prefix")


def test_the_batcher_stacks_prefixes_and_leaves_rows_without_one_free():
    from shortcut_policy.deploy.server import Request, _given

    class Policy:
        horizon = 4
        network = type("Net", (), {"spec": {"action_dim": 2}})()

    obs = {"state": np.zeros((2, 1, 5), np.float32)}
    mask = np.array([[True, True, False, False]])
    actions = np.ones((1, 4, 2), np.float32)
    import asyncio

    async def requests():
        return [Request(obs, None), Request({"state": obs["state"][:1]}, None, (mask, actions))]

    stacked_mask, stacked = _given(Policy(), asyncio.run(requests()))
    assert stacked_mask.tolist() == [[False] * 4, [False] * 4, [True, True, False, False]]
    assert stacked.shape == (3, 4, 2) and stacked[2].sum() == 8 and stacked[:2].sum() == 0


def test_a_warm_request_starts_from_the_plan_it_carries(server):
    rng = np.random.default_rng(0)
    obs = history(rng)
    plan = np.tile(np.array([250.0, 300.0], np.float32), (1, 16, 1))
    gaps = {}
    with raw(server) as connection:
        for label, extra in [("cold", {}), ("warm", {"warm_actions": plan, "warm_t": 15 / 16})]:
            reply = ask(connection, {"type": "act", "obs": obs, "steps": 1, **extra})
            gaps[label] = np.abs(wire.decode_array(reply["action"], "action") - plan).mean()
        bad = ask(connection, {"type": "act", "obs": obs, "warm_actions": plan[:, :8]})
    assert gaps["warm"] < 0.25 * gaps["cold"], gaps  # 1/16 of a jump from the plan
    assert bad["type"] == "error" and "warm_actions has shape (1, 8, 2)" in bad["error"]
    with PolicyClient(server.url, join="warm", warm_t=0.5) as client:
        actions = [client.select_action(observation(rng)) for _ in range(12)]  # 2 chunks
    assert np.isfinite(actions).all()


def test_the_batcher_runs_warm_and_cold_requests_in_separate_forwards():
    import asyncio

    from shortcut_policy.deploy.server import Request, _forward_key, _warm

    obs = {"state": np.zeros((1, 1, 5), np.float32)}
    plan = np.ones((1, 4, 2), np.float32)

    async def requests():
        return [
            Request(obs, 1),
            Request(obs, 1, warm=(0.5, plan)),
            Request(obs, 1, warm=(0.5, 2 * plan)),
            Request(obs, 1, warm=(0.75, plan)),
        ]

    group = asyncio.run(requests())
    assert [_forward_key(r) for r in group] == [(1, None), (1, 0.5), (1, 0.5), (1, 0.75)]
    assert _warm(group[:1]) == {}
    stacked = _warm(group[1:3])
    assert stacked["warm_t"] == 0.5 and stacked["warm"][:, 0, 0].tolist() == [1.0, 2.0]
