import os

import numpy as np
import pytest

from shortcut_policy.data.images import read_image_store, write_image_store
from shortcut_policy.training.run_state import drop_metrics_after


def test_an_image_store_survives_a_failed_rewrite(tmp_path, monkeypatch):
    path = tmp_path / "digits.zarr"
    images = np.zeros((4, 1, 8, 8), np.uint8)
    write_image_store(path, images, np.arange(4), source="first")
    real_replace = os.replace

    def fails_moving_the_new_store_in(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError("disk gone")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fails_moving_the_new_store_in)
    with pytest.raises(OSError, match="disk gone"):
        write_image_store(path, images + 1, np.arange(4), source="second")
    monkeypatch.setattr(os, "replace", real_replace)
    kept, labels = read_image_store(path)  # the old store, whole
    assert (kept == 0).all() and list(labels) == [0, 1, 2, 3]


def test_metrics_kept_whole_when_the_rewrite_is_killed(tmp_path, monkeypatch):
    metrics = tmp_path / "metrics.jsonl"
    text = "".join(f'{{"step": {s}, "loss": 1.0}}\n' for s in range(1, 6))
    metrics.write_text(text)

    def killed(fd):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        drop_metrics_after(metrics, 3)
    assert metrics.read_text() == text  # not emptied
    monkeypatch.undo()
    drop_metrics_after(metrics, 3)
    assert metrics.read_text().count("\n") == 3
