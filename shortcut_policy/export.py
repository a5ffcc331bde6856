"""Export a policy to ONNX: ``python -m shortcut_policy.export checkpoint=PATH out=policy.onnx``.

    python -m shortcut_policy.export task=push_t_image out=push_t_image.onnx steps=1

One graph of the action-chunk call, normalization included: observations per key and
``noise (B, horizon, Da)`` in, ``action (B, horizon, Da)`` in data units out, the batch axis
dynamic and the step budget fixed. The logic is in :mod:`shortcut_policy.deploy.onnx_export`;
run the file from numpy with :class:`shortcut_policy.deploy.onnx_export.OnnxPolicy`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from shortcut_policy.cli import user_errors
from shortcut_policy.deploy.onnx_export import ExportReport, export_checkpoint
from shortcut_policy.tasks import CONFIG_DIR, newest_checkpoint_for_task


def export(cfg: DictConfig) -> ExportReport:
    """Export the checkpoint ``cfg`` names (the task's newest run when null) to ``cfg.out``."""
    checkpoint = cfg.checkpoint or newest_checkpoint_for_task(cfg.task.name)
    print(f"[export] checkpoint: {checkpoint}")
    # A named checkpoint is exported whatever its task; the task group only finds the newest.
    report = export_checkpoint(
        checkpoint,
        cfg.out,
        cfg.steps,
        cfg.opset,
        check=cfg.check,
        max_passes=cfg.max_passes,
        sampler=cfg.sampler,
    )
    print(f"[export] {report.summary()}")
    return report


@hydra.main(config_path=CONFIG_DIR, config_name="export", version_base=None)
def main(cfg: DictConfig) -> None:
    with user_errors("export"):
        export(cfg)


if __name__ == "__main__":
    main()
