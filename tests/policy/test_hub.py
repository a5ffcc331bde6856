"""Hub sharing without a network: a pre-filled cache in offline mode, and a stand-in ``HfApi``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")

from shortcut_policy import ShortcutPolicy  # noqa: E402
from shortcut_policy.checkpoints.files import read_meta  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "pretrained" / "push_t"
REPORT = Path(__file__).resolve().parents[2] / "docs" / "results" / "push_t_shortcut_rollout.json"


def fill_cache(cache: Path, repo_id: str, revisions: dict[str, Path]) -> None:
    """The layout huggingface_hub writes: refs/<revision> names a snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    for n, (revision, folder) in enumerate(revisions.items()):
        commit = f"{n + 1:040x}"
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / revision).write_text(commit)
        shutil.copytree(folder, repo / "snapshots" / commit)


def load_offline(cache: Path, *args: str) -> subprocess.CompletedProcess:
    """``from_pretrained(*args)`` in a fresh process with HF_HUB_OFFLINE=1 and this cache."""
    code = (
        "import sys; from shortcut_policy import ShortcutPolicy; "
        "p = ShortcutPolicy.from_pretrained(*sys.argv[1:2], revision=(sys.argv[2:] or [None])[0]); "
        "print('step', p.meta['step'])"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_a_repository_id_resolves_offline_from_the_cache_at_its_revision(tmp_path):
    policy = ShortcutPolicy.from_pretrained(SHIPPED)
    policy.meta["step"] = 1234  # marks the second revision
    policy.save_pretrained(tmp_path / "v1")
    fill_cache(tmp_path / "cache", "org/push_t", {"main": SHIPPED, "v1": tmp_path / "v1"})
    main = load_offline(tmp_path / "cache", "org/push_t")
    assert main.returncode == 0, main.stderr
    assert f"step {read_meta(SHIPPED / 'policy.safetensors')['step']}" in main.stdout
    v1 = load_offline(tmp_path / "cache", "org/push_t", "v1")
    assert v1.returncode == 0 and "step 1234" in v1.stdout, v1.stderr


def test_a_repository_missing_from_the_cache_offline_names_the_cache(tmp_path):
    done = load_offline(tmp_path / "cache", "org/absent")
    assert done.returncode != 0
    assert "not in the Hub cache" in done.stderr and str(tmp_path / "cache") in done.stderr


class RecordingApi:
    """Stands in for ``HfApi``: records the calls and keeps a copy of the uploaded folder."""

    def __init__(self, keep: Path) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.keep = keep

    def create_repo(self, repo_id: str, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, folder_path: str, **kwargs):
        self.calls.append(("upload_folder", {"folder_path": folder_path, **kwargs}))
        shutil.copytree(folder_path, self.keep)
        return "commit-info"


def test_push_to_hub_uploads_the_policy_and_a_card_that_loads_back(tmp_path):
    policy = ShortcutPolicy.from_pretrained(SHIPPED)
    api = RecordingApi(tmp_path / "uploaded")
    assert policy.push_to_hub("org/push_t", report=REPORT, api=api, private=True) == "commit-info"
    assert [name for name, _ in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][1] == {
        "repo_id": "org/push_t",
        "repo_type": "model",
        "private": True,
        "exist_ok": True,
    }
    assert api.calls[1][1]["repo_id"] == "org/push_t"
    card = (tmp_path / "uploaded" / "README.md").read_text()
    assert "# push_t: a one-pass meanflow policy" in card
    assert "library_name: shortcut_policy" in card
    first = json.loads(REPORT.read_text())["budgets"][0]
    assert f"| {first['steps']} | {first['success_rate']:.2f} [" in card
    again = ShortcutPolicy.from_pretrained(tmp_path / "uploaded")
    assert again.meta["spec"] == policy.meta["spec"]


def test_save_pretrained_can_push_the_folder_it_writes(tmp_path):
    policy = ShortcutPolicy.from_pretrained(SHIPPED)
    api = RecordingApi(tmp_path / "uploaded")
    policy.save_pretrained(tmp_path / "my_policy", push_to_hub=True, api=api)
    assert api.calls[0][1]["repo_id"] == "my_policy"
    assert "Not evaluated with this upload" in (tmp_path / "my_policy" / "README.md").read_text()


def test_a_local_folder_named_like_a_repository_id_stays_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ShortcutPolicy.from_pretrained(SHIPPED).save_pretrained(tmp_path / "org" / "name")
    assert ShortcutPolicy.from_pretrained("org/name").meta["spec"]["task"] == "push_t"
