import pickle

import pytest
import torch

from shortcut_policy.checkpoints import files as ckpt
from shortcut_policy.checkpoints.files import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def test_round_trip(tmp_path):
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    save_checkpoint(tmp_path / "step_00000001.safetensors", tensors, {"step": 1, "x": [1, 2]})
    loaded, meta = load_checkpoint(tmp_path / "step_00000001.safetensors")
    assert meta == {"step": 1, "x": [1, 2]}
    for key, value in tensors.items():
        torch.testing.assert_close(loaded[key], value)


def test_pickle_is_refused_without_being_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('code ran')",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    torch.save({"w": torch.zeros(2)}, tmp_path / "torch.safetensors")
    with pytest.raises(CheckpointError, match="pickle or zip"):
        load_checkpoint(tmp_path / "torch.safetensors")


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "step_00000002.safetensors"
    save_checkpoint(path, {"w": torch.randn(100, 100)}, {"step": 2})
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_crash_during_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "step_00000001.safetensors", {"w": torch.ones(3)}, {"step": 1})

    def dies_half_way(tensors, filename, metadata):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "step_00000002.safetensors", {"w": torch.zeros(3)}, {"step": 2})
    newest = latest_checkpoint(tmp_path)
    assert newest.name == "step_00000001.safetensors"
    assert load_checkpoint(newest)[1]["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["step_00000001.safetensors"]


@pytest.mark.parametrize(
    "first_bytes,pads", [(b"\x80", range(0, 300)), (b"PK", range(19_000, 19_400))]
)
def test_header_length_that_looks_like_a_pickle_or_zip_still_loads(tmp_path, first_bytes, pads):
    """The header length is little-endian: its first bytes can be 0x80 or "PK" by chance."""
    path = tmp_path / "c.safetensors"
    tensors = {"w": torch.zeros(3)}
    for pad in pads:
        save_checkpoint(path, tensors, {"step": 1, "pad": "x" * pad})
        if path.read_bytes()[: len(first_bytes)] == first_bytes:
            break
    else:
        pytest.fail("no padding gave the wanted header length")
    loaded, meta = load_checkpoint(path)
    assert meta["step"] == 1 and torch.equal(loaded["w"], tensors["w"])
