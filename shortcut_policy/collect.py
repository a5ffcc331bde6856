"""Generate a task's demonstrations.

    python -m shortcut_policy.collect task=push_t n_episodes=200

Writes the store at ``dataset.path`` (or ``out=...``) with the task's generator; interrupted
runs resume from the episodes already saved (see ``envs/push_t/demos.py``).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from shortcut_policy.cli import user_errors
from shortcut_policy.tasks import CONFIG_DIR, generate_dataset


def collect(cfg: DictConfig) -> Path:
    """Run the task's generator with the collection options; returns the store path."""
    out = Path(cfg.out or cfg.dataset.path)
    if out.exists() and not cfg.overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=true or out=another.zarr")
    options = {key: value for key, value in cfg.options.items() if value is not None}
    generate_dataset(cfg.dataset, out, **options)
    print(f"[collect] wrote {out}")
    return out


@hydra.main(config_path=CONFIG_DIR, config_name="collect", version_base=None)
def main(cfg: DictConfig) -> None:
    with user_errors("collect"):
        collect(cfg)


if __name__ == "__main__":
    main()
