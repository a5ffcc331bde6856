"""Sharing policies through a Hugging Face Hub repository, as LeRobot users do.

    policy = ShortcutPolicy.from_pretrained("org/push_t-shortcut", revision="v1")
    policy.push_to_hub("org/push_t-shortcut", report="runs/rollout/push_t/report.json")

A repository holds what :meth:`ShortcutPolicy.save_pretrained` writes (``policy.safetensors``:
tensors and plain config, never code) and a model card (``README.md``) generated from the
checkpoint: task, objective and sampler, network, the budgets it serves, and, given a rollout
report, the success and latency per budget it was measured at. Downloads go through
``huggingface_hub``'s cache, so ``HF_HUB_OFFLINE=1``, ``HF_HUB_CACHE`` and ``revision`` behave as
everywhere else in that ecosystem. Needs the ``hub`` extra.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shortcut_policy.checkpoints.files import POLICY_FILE, CheckpointError
from shortcut_policy.extras import require

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_repo_id(path: str | os.PathLike) -> bool:
    """``org/name`` that is not a local path (a local folder of that name wins)."""
    text = os.fspath(path)
    return bool(REPO_ID.match(text)) and not Path(text).exists()


def hub_folder(repo_id: str, revision: str | None = None) -> Path:
    """The local snapshot of ``repo_id`` at ``revision`` (downloaded, or from the cache)."""
    where = f"no local folder {repo_id!r} exists, so it was read as a Hub repository id"
    hub = require("huggingface_hub", f"loading the policy {repo_id!r} ({where})", "hub")
    from huggingface_hub import errors

    try:
        folder = hub.snapshot_download(
            repo_id, revision=revision, allow_patterns=[POLICY_FILE, "README.md"]
        )
    except errors.LocalEntryNotFoundError as err:
        raise CheckpointError(
            f"{repo_id!r} ({where}; revision {revision or 'main'}) is not in the Hub cache "
            f"{hub.constants.HF_HUB_CACHE} and cannot be downloaded here (offline, or no "
            "network); download it on a connected machine and copy that cache, or give a "
            "local folder"
        ) from err
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as err:
        raise CheckpointError(
            f"no policy {repo_id!r} at revision {revision} ({where}): {err}"
        ) from err
    except errors.HfHubHTTPError as err:
        raise CheckpointError(f"the Hub refused {repo_id!r}: {err}") from err
    if not (Path(folder) / POLICY_FILE).is_file():
        raise CheckpointError(
            f"Hub repository {repo_id!r} holds no {POLICY_FILE}; it is not a shortcut_policy "
            "policy (push one with ShortcutPolicy.push_to_hub)"
        )
    return Path(folder)


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload policy",
    api: Any = None,
) -> Any:
    """Create ``repo_id`` if needed and upload ``folder``; returns the commit information.

    ``api`` is an ``HfApi`` (or anything with its ``create_repo`` and ``upload_folder``).
    """
    if api is None:
        hub = require("huggingface_hub", f"pushing the policy to {repo_id!r}", "hub")
        api = hub.HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    return api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message=commit_message
    )


def model_card(
    meta: Mapping[str, Any], budgets: list[int], report: Mapping | None, sampler: str | None = None
) -> str:
    """``README.md`` for a policy repository: what it is, how to run it, what it scored."""
    config, spec = meta["config"], meta["spec"]
    objective = config["objective"]
    task = spec.get("task", config.get("task", {}).get("name", "unknown"))
    lines = [
        "---",
        "library_name: shortcut_policy",
        "pipeline_tag: robotics",
        f"tags: [robotics, imitation-learning, shortcut-models, {task}]",
        "---",
        "",
        f"# {task}: a one-pass {objective['name']} policy",
        "",
        "| field | value |",
        "|---|---|",
        f"| task | `{task}` (observations {json.dumps(spec.get('obs_shapes', {}))}, "
        f"action dim {spec.get('action_dim')}) |",
        f"| objective | `{objective['name']}`" + (f", sampler `{sampler}` |" if sampler else " |"),
        f"| network | `{config['model'].get('name', 'unknown')}` |",
        f"| training steps | {meta.get('step')} |",
        f"| budgets (network passes per chunk) | {', '.join(map(str, budgets))} |",
        f"| chunk | horizon {spec.get('horizon')}, {spec.get('n_obs_steps')} observations in, "
        f"{spec.get('n_action_steps')} actions executed |",
        "",
        "```python",
        "from shortcut_policy import ShortcutPolicy",
        "",
        'policy = ShortcutPolicy.from_pretrained("<this repository>", steps=1)',
        "action = policy.select_action(observation)",
        "```",
        "",
    ]
    lines += _results(report, task)
    return "\n".join(lines) + "\n"


def _results(report: Mapping | None, task: str) -> list[str]:
    if report is None:
        return [
            "Not evaluated with this upload. Measure it with",
            f"`python -m shortcut_policy.rollout task={task} checkpoint=<folder> "
            "steps=[1,2,4,8] n_episodes=100`.",
        ]
    budgets = report.get("budgets", [])
    episodes = budgets[0]["n_episodes"] if budgets else 0
    first, last = report.get("seeds", ["?", "?"])
    lines = [
        f"Measured with `python -m shortcut_policy.rollout`: {episodes} episodes per budget, "
        f"environment seeds {first}-{last}, on {report.get('device', '?')} "
        f"({report.get('torch_threads', '?')} threads). Success: the task's success test within "
        "the episode; mean best score: each episode's best score (Push-T: coverage), averaged.",
        "",
        "| passes | success [95% CI] | mean best score | chunk latency p50 (ms) |",
        "|---|---|---|---|",
    ]
    for row in budgets:
        low, high = row["success_ci95"]
        latency = row.get("latency", {}).get("median_ms")
        lines.append(
            f"| {row['steps']} | {row['success_rate']:.2f} [{low:.2f}, {high:.2f}] "
            f"| {row['mean_score']:.3f} | {'n/a' if latency is None else f'{latency:.2f}'} |"
        )
    return lines
