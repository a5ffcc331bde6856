"""Convert demonstrations from other libraries' formats: ``python -m shortcut_policy.convert``.

    python -m shortcut_policy.convert lerobot=path/to/dataset out=data/mine.zarr

reads a LeRobotDataset folder (v2.1 or v3.0, see :mod:`shortcut_policy.data.lerobot`), writes
the zarr store and prints which keys became which, and what to train it with.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from shortcut_policy.cli import user_errors
from shortcut_policy.data.lerobot import convert_lerobot
from shortcut_policy.tasks import CONFIG_DIR
from shortcut_policy.training.settings import ConfigError


def convert(cfg: DictConfig) -> dict:
    """Run the conversion ``cfg`` asks for; returns its summary."""
    if not cfg.lerobot or not cfg.out:
        raise ConfigError(
            "give the dataset folder and the store to write: lerobot=DIR out=OUT.zarr"
        )
    out = Path(cfg.out)
    if out.exists() and not cfg.overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=true to replace it")
    summary = convert_lerobot(cfg.lerobot, out)
    print(
        f"[convert] {summary['source']} ({summary['version']}): {summary['episodes']} episodes, "
        f"{summary['frames']} frames -> {out}"
    )
    for name, ours in summary["keys"].items():
        print(f"  {name:32s} -> data/{ours} {tuple(summary['shapes'][ours])}")
    for note in summary["notes"]:
        print(f"  note: {note}")
    shapes = summary["shapes"]
    obs = [ours for name, ours in summary["keys"].items() if name != "action"]
    vectors = [key for key in obs if len(shapes[key]) < 3]
    print(
        f"[convert] train: python -m shortcut_policy.train task=zarr dataset.path={out} "
        f"task.obs_keys=[{','.join(vectors)}]"
    )
    for camera in (key for key in obs if len(shapes[key]) == 3):
        print(
            f"  to use camera {camera!r} too, describe every observation in task.obs instead: "
            f"{camera}: {{type: rgb, shape: {shapes[camera]}}}, vectors as {{type: low_dim}}"
        )
    return summary


@hydra.main(config_path=CONFIG_DIR, config_name="convert", version_base=None)
def main(cfg: DictConfig) -> None:
    with user_errors("convert"):
        convert(cfg)


if __name__ == "__main__":
    main()
