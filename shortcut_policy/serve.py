"""Serve a policy to robots: ``python -m shortcut_policy.serve checkpoint=PATH port=8765``.

Clients connect with :class:`shortcut_policy.PolicyClient` (or any WebSocket client that speaks
the msgpack messages of ``deploy/wire.py``). The server prints one line when it listens (with the
port, which ``port=0`` picks) and stops cleanly on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import asyncio

import hydra
import torch
from omegaconf import DictConfig

from shortcut_policy.cli import user_errors
from shortcut_policy.extras import require
from shortcut_policy.policy import ShortcutPolicy
from shortcut_policy.tasks import CONFIG_DIR, newest_checkpoint_for_task
from shortcut_policy.training.settings import ConfigError


def load_served_policy(cfg: DictConfig) -> ShortcutPolicy:
    """The policy ``cfg`` names, on its device, with its budget chosen (``steps=auto``)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    checkpoint = cfg.checkpoint or newest_checkpoint_for_task(cfg.task.name)
    device = None if cfg.device == "auto" else cfg.device
    policy = ShortcutPolicy.from_pretrained(
        checkpoint,
        device,
        steps=cfg.steps,
        task=cfg.task.name,
        deadline_ms=cfg.deadline_ms,
        sampler=cfg.sampler,
    )
    print(f"[serve] checkpoint {checkpoint} on {policy.device}, {policy.steps} pass(es) per chunk")
    return policy


def serve(cfg: DictConfig) -> None:
    for module in ("websockets", "msgpack"):
        require(module, "the policy server", "serve")
    from shortcut_policy.deploy.server import PolicyServer

    if not 0 < cfg.max_message_mb <= 1024:
        raise ConfigError(f"max_message_mb must be in (0, 1024], got {cfg.max_message_mb}")
    server = PolicyServer(
        load_served_policy(cfg), int(cfg.max_message_mb * (1 << 20)), int(cfg.max_batch)
    )

    def ready(port: int) -> None:
        print(f"[serve] listening on ws://{cfg.host}:{port}", flush=True)

    asyncio.run(server.serve(cfg.host, int(cfg.port), ready))
    print("[serve] stopped", flush=True)


@hydra.main(config_path=CONFIG_DIR, config_name="serve", version_base=None)
def main(cfg: DictConfig) -> None:
    with user_errors("serve"):
        serve(cfg)


if __name__ == "__main__":
    main()
