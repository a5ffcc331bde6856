import copy
import json
import os
import stat

import pytest
from safetensors.torch import save_file

from shortcut_policy.checkpoints.files import (
    CheckpointError,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from shortcut_policy.policy.pretrained import load_policy_network

SHIPPED = "data/pretrained/push_t/policy.safetensors"


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(SHIPPED)


def rewritten(tmp_path, shipped, change):
    tensors, meta = shipped
    meta = copy.deepcopy(meta)
    change(meta)
    path = tmp_path / "policy.safetensors"
    save_checkpoint(path, tensors, meta)
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m["spec"]["obs_shapes"].update(state=[10**12]), r"obs_shapes=.*integers in"),
        (lambda m: m["config"]["model"].update(down_dims=[200000]), r"down_dims=\[200000\]"),
        (lambda m: m["spec"].update(horizon=10**15), r"spec.horizon=.*integer in \[1, 4096\]"),
        (lambda m: m["spec"].pop("action_dim"), r"spec.action_dim is missing"),
        (lambda m: m.pop("spec"), r"'spec' \(the task's shapes\) is missing"),
        (lambda m: m["config"].pop("model"), r"config.model is missing"),
        (lambda m: m["config"]["model"].update(_target_="os.system"), r"never name code"),
        (lambda m: m["spec"].update(backdoor=1), r"spec.backdoor: unknown key"),
        (lambda m: m["config"]["objective"].update(finest_steps=2**40), r"out of range"),
        (lambda m: m["config"]["objective"].update(bogus=1), r"bad objective in its config"),
    ],
)
def test_hostile_metadata_is_refused_before_anything_is_built(tmp_path, shipped, change, message):
    path = rewritten(tmp_path, shipped, change)
    with pytest.raises(CheckpointError, match=message):
        load_policy_network(path)


def test_metadata_that_is_not_json_is_a_checkpoint_error(tmp_path, shipped):
    path = tmp_path / "bad.safetensors"
    save_file({"w": shipped[0]["ema.normalizer.action_low"]}, path, {"shortcut_policy": "{no"})
    for read in (load_checkpoint, read_meta):
        with pytest.raises(CheckpointError, match="metadata is not valid JSON"):
            read(path)
    save_file({"w": shipped[0]["ema.normalizer.action_low"]}, path, {"shortcut_policy": "[1]"})
    with pytest.raises(CheckpointError, match="not a JSON object"):
        load_checkpoint(path)


def test_checkpoints_get_the_usual_file_mode(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {}, {"step": 0})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_the_shipped_metadata_passes(shipped):
    assert json.dumps(shipped[1])  # plain JSON
    load_policy_network(SHIPPED)


def test_every_vision_option_a_checkpoint_can_hold_is_known_to_the_loader():
    """A new model.vision field the loader's schema lacks would refuse the checkpoints that
    use it."""
    from dataclasses import fields

    from shortcut_policy.checkpoints.meta import VISION_KEYS
    from shortcut_policy.models.vision import VisionConfig

    assert {f.name for f in fields(VisionConfig)} == set(VISION_KEYS)
