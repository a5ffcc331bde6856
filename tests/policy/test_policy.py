import numpy as np
import pytest

from shortcut_policy import ShortcutPolicy
from shortcut_policy.checkpoints.files import CheckpointError
from tests.conftest import tiny_bimodal_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_bimodal_run(tmp_path_factory.mktemp("policy"), "task.n_action_steps=4")


def obs(x=0.1):
    return {"pos": np.array([x, -1.0], dtype=np.float32)}


def test_save_and_load_give_identical_actions(run_dir, tmp_path):
    policy = ShortcutPolicy.from_pretrained(run_dir, device="cpu", steps=2)
    saved = policy.save_pretrained(tmp_path / "p")
    assert saved.stat().st_size < 5_000_000
    again = ShortcutPolicy.from_pretrained(tmp_path / "p", device="cpu", steps=2)
    batch = {"pos": np.random.default_rng(0).normal(size=(3, 2, 2)).astype(np.float32)}
    policy.seed(7)
    again.seed(7)
    np.testing.assert_array_equal(
        policy.predict_action_chunk(batch), again.predict_action_chunk(batch)
    )


def test_a_new_chunk_only_when_the_queue_is_empty(run_dir):
    policy = ShortcutPolicy.from_pretrained(run_dir, device="cpu")
    calls = []
    real = policy.predict_checked

    def counting(batch, steps=None):
        calls.append({k: v.copy() for k, v in batch.items()})
        return real(batch, steps)

    policy.predict_checked = counting
    policy.seed(0)
    actions = [policy.select_action(obs(0.01 * i)) for i in range(9)]
    assert len(calls) == 3  # steps 0, 4 and 8 (n_action_steps = 4)
    assert all(a.shape == (2,) for a in actions)
    # The first call pads the history by repeating the first observation.
    np.testing.assert_array_equal(calls[0]["pos"][0, 0], calls[0]["pos"][0, 1])
    # The second call sees the two newest observations (steps 3 and 4).
    np.testing.assert_allclose(calls[1]["pos"][0, :, 0], [0.03, 0.04], rtol=1e-6)
    policy.reset()
    policy.select_action(obs())
    assert len(calls) == 4  # reset cleared the queue


def test_executed_actions_are_the_chunk_after_the_oldest_observation(run_dir):
    policy = ShortcutPolicy.from_pretrained(run_dir, device="cpu")
    policy.seed(3)
    first = [policy.select_action(obs()) for _ in range(4)]
    policy.reset()
    policy.seed(3)
    chunk = policy.predict_action_chunk({"pos": np.stack([obs()["pos"]] * 2)[None]})[0]
    np.testing.assert_allclose(np.stack(first), chunk[1:5], rtol=1e-5)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"position": np.zeros(2)}, r"missing key\(s\) \['pos'\]; got \['position'\]"),
        ({"pos": np.zeros(3)}, r"'pos' has shape \(3,\); expected \(2,\)"),
        ({"pos": np.zeros((1, 2))}, r"'pos' has shape \(1, 2\); expected \(2,\)"),
        ({"pos": np.array(["a", "b"])}, r"'pos' has dtype <U1"),
        ({"pos": np.array([np.nan, 0.0])}, r"'pos' contains NaN or inf"),
        ({"pos": np.array([np.inf, 0.0])}, r"'pos' contains NaN or inf"),
        ({"pos": np.array([1e300, 0.0])}, r"'pos' contains NaN or inf, or a value beyond float32"),
    ],
)
def test_bad_observations_are_named(run_dir, bad, message):
    policy = ShortcutPolicy.from_pretrained(run_dir, device="cpu")
    with pytest.raises(ValueError, match=message):
        policy.select_action(bad)


def test_batched_shape_is_checked(run_dir):
    policy = ShortcutPolicy.from_pretrained(run_dir, device="cpu")
    with pytest.raises(ValueError, match=r"expected \(B, 2, \*\(2,\)\)"):
        policy.predict_action_chunk({"pos": np.zeros((4, 3, 2), np.float32)})


def test_policy_for_another_task_is_refused(run_dir):
    with pytest.raises(CheckpointError, match="for task 'bimodal', not 'push_t'"):
        ShortcutPolicy.from_pretrained(run_dir, task="push_t")
    with pytest.raises(CheckpointError, match="no policy at"):
        ShortcutPolicy.from_pretrained(run_dir / "nowhere")


def test_a_refused_observation_leaves_the_history_untouched(run_dir):
    policy = ShortcutPolicy.from_pretrained(run_dir, device="cpu")
    policy.select_action(obs(0.1))
    before = [dict(o) for o in policy.buffer.observations]
    with pytest.raises(ValueError, match="beyond float32"):
        policy.select_action({"pos": np.array([1e300, 0.0])})
    assert len(policy.buffer.observations) == len(before)
    policy.select_action(obs(0.2))  # the next valid observation still works


def test_non_finite_actions_are_refused_and_nothing_is_stored(run_dir):
    policy = ShortcutPolicy.from_pretrained(run_dir, device="cpu")
    huge = {"pos": np.array([1e30, 1e30], dtype=np.float32)}  # finite, absurd
    with pytest.raises(ValueError, match="NaN or infinite actions for batch row"):
        policy.select_action(huge)
    assert len(policy.buffer.observations) == 0 and policy.buffer.needs_chunk
    assert np.isfinite(policy.select_action(obs(0.1))).all()


@pytest.mark.parametrize("steps", [0, -1, 1.5, "4", True, 129])
def test_bad_step_budgets_are_refused_everywhere(run_dir, steps):
    message = r"steps \(network passes per sample\) must be an integer in \[1, 128\]"
    with pytest.raises(ValueError, match=message):
        ShortcutPolicy.from_pretrained(run_dir, device="cpu", steps=steps)
    policy = ShortcutPolicy.from_pretrained(run_dir, device="cpu")
    batch = {"pos": np.zeros((1, 2, 2), np.float32)}
    with pytest.raises(ValueError, match=message):
        policy.predict_action_chunk(batch, steps=steps)


def test_a_numpy_integer_budget_is_accepted(run_dir):
    policy = ShortcutPolicy.from_pretrained(run_dir, device="cpu", steps=np.int64(2))
    assert policy.steps == 2 and type(policy.steps) is int


def test_given_noise_fixes_the_chunk_and_is_checked(run_dir):
    policy = ShortcutPolicy.from_pretrained(run_dir, device="cpu", steps=2)
    batch = {"pos": np.random.default_rng(0).normal(size=(3, 2, 2)).astype(np.float32)}
    noise = np.random.default_rng(1).normal(size=(3, policy.horizon, 2)).astype(np.float32)
    first = policy.predict_action_chunk(batch, noise=noise)
    policy.seed(5)  # the generator is not used when noise is given
    np.testing.assert_array_equal(first, policy.predict_action_chunk(batch, noise=noise))
    assert not np.allclose(first, policy.predict_action_chunk(batch, noise=noise + 1.0))
    with pytest.raises(ValueError, match=r"noise has shape \(3, 2\)"):
        policy.predict_action_chunk(batch, noise=noise[:, 0])
    with pytest.raises(ValueError, match="noise contains NaN"):
        policy.predict_action_chunk(batch, noise=np.full_like(noise, np.nan))


def test_a_chosen_sampler_changes_the_chunk_and_is_saved_with_the_policy(run_dir, tmp_path):
    batch = {"pos": np.random.default_rng(0).normal(size=(3, 2, 2)).astype(np.float32)}
    noise = np.random.default_rng(1).normal(size=(3, 8, 2)).astype(np.float32)
    jumps = ShortcutPolicy.from_pretrained(run_dir, device="cpu", steps=4)
    euler = ShortcutPolicy.from_pretrained(run_dir, device="cpu", steps=4, sampler="euler")
    assert jumps.objective.sampler == "jumps" and euler.objective.sampler == "euler"
    first = euler.predict_action_chunk(batch, noise=noise)
    assert not np.allclose(first, jumps.predict_action_chunk(batch, noise=noise))
    again = ShortcutPolicy.from_pretrained(euler.save_pretrained(tmp_path / "p").parent)
    assert again.objective.sampler == "euler"  # the saved default
    np.testing.assert_array_equal(first, again.predict_action_chunk(batch, 4, noise=noise))
    with pytest.raises(ValueError, match="sampler must be one of"):
        ShortcutPolicy.from_pretrained(run_dir, device="cpu", sampler="heun")


def test_actions_stay_inside_the_demonstrated_range_far_from_the_data():
    """Unclamped, the shipped 1-pass policy answered these observations with targets from
    -568 to 1145 pixels on Push-T's 512-pixel board."""
    policy = ShortcutPolicy.from_pretrained("data/pretrained/push_t", device="cpu")
    rng = np.random.default_rng(0)
    far = {
        k: rng.uniform(-1000, 1500, v.shape).astype(np.float32)
        for k, v in policy.example_batch(64).items()
    }
    chunk = policy.predict_action_chunk(far, steps=1)
    low, high = (x.numpy() for x in policy.network.normalizer.stats("action"))
    assert (chunk >= low - 1e-3).all() and (chunk <= high + 1e-3).all()
    assert np.isclose(chunk, high, atol=1e-3).any()  # the bound is reached, not just respected
