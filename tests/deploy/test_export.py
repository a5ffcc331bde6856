"""ONNX export: parity with ``predict_action_chunk``, a dynamic batch, refusals, metadata."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from hydra import compose, initialize_config_dir  # noqa: E402

from shortcut_policy import ShortcutPolicy  # noqa: E402
from shortcut_policy.deploy.onnx_export import (  # noqa: E402
    METADATA_KEY,
    OnnxPolicy,
    data_range,
    describe,
    example_inputs,
    export_policy,
)
from shortcut_policy.export import export  # noqa: E402
from shortcut_policy.extras import MissingExtra  # noqa: E402
from shortcut_policy.objectives import build_objective  # noqa: E402
from shortcut_policy.objectives.sampling import BudgetError  # noqa: E402
from tests.conftest import CONFIG_DIR, tiny_bimodal_run  # noqa: E402

IMAGE_POLICY = Path(__file__).resolve().parents[2] / "data/pretrained/push_t_image"
TOL = 1e-4  # max abs difference, fp32


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny bimodal policy's run after 3 training steps (n_obs_steps 2, horizon 8, Da 2)."""
    return tiny_bimodal_run(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def policy(run_dir):
    return ShortcutPolicy.from_pretrained(run_dir, device="cpu")


@pytest.fixture(scope="module")
def exported(policy, tmp_path_factory):
    """``{steps: path}`` of the tiny policy exported at 1 and 4 passes."""
    folder = tmp_path_factory.mktemp("onnx")
    return {
        steps: Path(export_policy(policy, folder / f"p{steps}.onnx", steps).path)
        for steps in (1, 4)
    }


@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize("batch", [1, 3])
def test_graph_matches_torch_at_any_batch(policy, exported, steps, batch):
    obs, noise = example_inputs(policy, batch, seed=steps + batch)
    expected = policy.predict_action_chunk(obs, steps=steps, noise=noise)
    got = OnnxPolicy(exported[steps], threads=1).predict_action_chunk(obs, noise)
    assert got.shape == (batch, policy.horizon, 2) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= TOL


def test_image_policy_matches_torch_on_uint8_frames(tmp_path):
    policy = ShortcutPolicy.from_pretrained(IMAGE_POLICY, device="cpu")
    report = export_policy(policy, tmp_path / "image.onnx", steps=1, check=False)
    obs, noise = example_inputs(policy, batch=1, seed=5)
    assert obs["img"].dtype == np.uint8 and obs["img"].shape == (1, 2, 96, 96, 3)
    expected = policy.predict_action_chunk(obs, steps=1, noise=noise)
    got = OnnxPolicy(report.path, threads=1).predict_action_chunk(obs, noise)
    # Push-T's actions are pixels (~20..500): 1e-4 is held in normalized units, where fp32
    # rounding lives (torch's own batch-1 and batch-3 calls differ by ~3e-4 px).
    low, high = data_range(policy, "action")
    assert (np.abs(got - expected) / ((high - low) / 2)).max() <= TOL
    with pytest.raises(ValueError, match="'img' frames are float32; pass uint8"):
        OnnxPolicy(report.path).predict_action_chunk({**obs, "img": obs["img"] / 255.0}, noise)


@pytest.mark.parametrize("steps", [0, 129, 1.5])
def test_bad_budgets_are_refused_before_anything_is_written(policy, tmp_path, steps):
    with pytest.raises(BudgetError, match=r"must be an integer in \[1, 128\]"):
        export_policy(policy, tmp_path / "bad.onnx", steps)
    assert not list(tmp_path.iterdir())


def test_the_command_composes_and_refuses_a_bad_budget(run_dir, tmp_path):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose("export", [f"checkpoint={run_dir}", f"out={tmp_path / 'p.onnx'}", "steps=0"])
    assert cfg.task.name == "push_t" and cfg.opset is None and cfg.check
    with pytest.raises(BudgetError, match=r"got 0 \(int\)"):
        export(cfg)  # a named checkpoint is exported whatever the task group says


def test_budgets_past_the_unroll_limit_are_refused(policy, tmp_path):
    with pytest.raises(BudgetError, match=r"steps=128 would unroll 128 network passes.*max_passes"):
        export_policy(policy, tmp_path / "p.onnx", 128)
    assert not list(tmp_path.iterdir())


def test_ddpm_ancestral_sampling_is_refused(policy, tmp_path):
    ddpm = ShortcutPolicy(policy.network, build_objective({"name": "ddpm"}), policy.meta)
    with pytest.raises(BudgetError, match="draws fresh noise at every pass"):
        export_policy(ddpm, tmp_path / "ddpm.onnx", ddpm.objective.train_steps)


@pytest.mark.parametrize(
    "obs, noise_shape, message",
    [
        (
            {"pos": np.zeros((1, 3, 2))},
            (1, 8, 2),
            r"'pos' has shape \(1, 3, 2\); expected \(B, 2, \*\(2,\)\)",
        ),
        (
            {"pos": np.zeros((2, 2))},
            (1, 8, 2),
            r"'pos' has shape \(2, 2\); expected \(B, 2, \*\(2,\)\)",
        ),
        ({"position": np.zeros((1, 2, 2))}, (1, 8, 2), r"missing key\(s\) \['pos'\]"),
        (
            {"pos": np.zeros((1, 2, 2))},
            (1, 16, 2),
            r"noise has shape \(1, 16, 2\); expected \(1, 8, 2\)",
        ),
        ({"pos": np.full((1, 2, 2), np.nan)}, (1, 8, 2), r"'pos' contains NaN or inf"),
    ],
)
def test_helper_names_bad_inputs(exported, obs, noise_shape, message):
    with pytest.raises(ValueError, match=message):
        OnnxPolicy(exported[1]).predict_action_chunk(obs, np.zeros(noise_shape, np.float32))


def test_metadata_round_trips(policy, exported):
    runner = OnnxPolicy(exported[4])
    assert runner.meta == describe(policy, 4)
    assert (runner.steps, runner.horizon, runner.n_obs_steps) == (4, 8, 2)
    assert runner.meta["task"] == "bimodal" and runner.meta["obs_shapes"] == {"pos": [2]}
    model = onnx.load(exported[4], load_external_data=False)
    stored = {prop.key: prop.value for prop in model.metadata_props}
    assert json.loads(stored[METADATA_KEY])["inputs"] == ["pos", "noise"]
    names = [value.name for value in model.graph.input]
    assert names == ["pos", "noise"] and model.graph.output[0].name == "action"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # batch is symbolic
    runner.seed(0)  # noise drawn when none is given, reproducibly
    first = runner.predict_action_chunk({"pos": np.zeros((2, 2, 2))})
    runner.seed(0)
    np.testing.assert_array_equal(first, runner.predict_action_chunk({"pos": np.zeros((2, 2, 2))}))


def test_missing_packages_name_the_extra(policy, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(MissingExtra, match=r'pip install -e "\.\[export\]"'):
        export_policy(policy, tmp_path / "p.onnx", 1)
