import json
import time
import types

import numpy as np
import pytest
import torch
from hydra.errors import MissingConfigException

from shortcut_policy.checkpoints.files import CheckpointError, latest_checkpoint, load_checkpoint
from shortcut_policy.data.replay_buffer import DatasetError
from shortcut_policy.policy.pretrained import load_policy_network
from shortcut_policy.train import train
from tests.conftest import make_config, quick_run


def tiny_config(tmp_path, *extra):
    return quick_run(
        tmp_path,
        f"dataset.path={tmp_path / 'bimodal.zarr'}",
        "dataset.generator_args.n_episodes=200",
        "train.steps=12",
        "train.batch_size=32",
        "train.warmup_steps=4",
        "checkpoint_every=6",
        "eval_every=0",
        "logging.log_every=1",
        "val_every=6",
        *extra,
    )


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# The second case keeps a separate teacher EMA, which must be saved and restored too.
@pytest.mark.parametrize(
    "extra", [[], ["objective.ema_teacher=true", "objective.teacher_decay=0.5"]]
)
def test_killed_run_resumes_with_the_same_step_lr_and_data(tmp_path, monkeypatch, extra):
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    train(tiny_config(reference_dir, *extra))
    expected = read_metrics(reference_dir / "run")

    import shortcut_policy.train as train_module

    real_step = train_module.train_step

    def killed_at_step_9(run, batch):
        if run.step == 8:
            raise KeyboardInterrupt("killed")
        return real_step(run, batch)

    monkeypatch.setattr(train_module, "train_step", killed_at_step_9)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path, *extra))
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step_00000006.safetensors"
    monkeypatch.setattr(train_module, "train_step", real_step)
    resumed = train(tiny_config(tmp_path, "resume=true", *extra))
    assert resumed.step == 12
    rows = read_metrics(tmp_path / "run")
    assert [row["step"] for row in rows] == list(range(1, 13))  # killed-run lines 7-8 dropped
    got = {row["step"]: row for row in rows}
    for row in expected[6:]:
        for key in ("loss", "lr", "val/loss"):  # the same schedule, data and noise
            if key in row:
                assert got[row["step"]][key] == pytest.approx(row[key], rel=1e-6), key


def test_a_run_in_pieces_pauses_with_a_checkpoint_and_resumes_the_same_schedule(
    tmp_path, monkeypatch
):
    """train.max_minutes: each invocation stops when its time is up; resume=true goes on as
    if it had never stopped (long runs in pieces)."""
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    train(tiny_config(reference_dir))
    expected = {row["step"]: row for row in read_metrics(reference_dir / "run")}

    import shortcut_policy.train as train_module

    clock = iter(range(0, 10_000, 30))  # every look at the clock: 30 s later
    fake = types.SimpleNamespace(
        monotonic=lambda: float(next(clock)), perf_counter=time.perf_counter
    )
    monkeypatch.setattr(train_module, "time", fake)
    paused = train(tiny_config(tmp_path, "train.max_minutes=2"))  # 4 clock calls: 2 minutes
    assert 0 < paused.step < 12
    checkpoints = tmp_path / "run" / "checkpoints"
    assert latest_checkpoint(checkpoints).name == f"step_{paused.step:08d}.safetensors"
    assert not (checkpoints / "last.safetensors").exists()  # not finished
    monkeypatch.undo()
    resumed = train(tiny_config(tmp_path, "resume=true"))
    assert resumed.step == 12 and (checkpoints / "last.safetensors").exists()
    rows = read_metrics(tmp_path / "run")
    assert [row["step"] for row in rows] == list(range(1, 13))
    for row in rows:
        assert row["loss"] == pytest.approx(expected[row["step"]]["loss"], rel=1e-6)
        assert row["epoch"] == pytest.approx(expected[row["step"]]["epoch"])


def test_resume_skips_a_truncated_newest_checkpoint_and_a_torn_log_line(tmp_path):
    train(tiny_config(tmp_path))
    checkpoints = tmp_path / "run" / "checkpoints"
    newest = checkpoints / "step_00000012.safetensors"
    newest.write_bytes(newest.read_bytes()[:2000])  # a copy or a disk cut short
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 13, "lo')  # a kill mid-line
    with pytest.warns(UserWarning, match="skipping a damaged checkpoint.*step_00000012"):
        resumed = train(tiny_config(tmp_path, "resume=true"))
    assert resumed.step == 12
    assert [row["step"] for row in read_metrics(tmp_path / "run")] == list(range(1, 13))
    load_checkpoint(newest)  # rewritten whole


def test_existing_run_is_not_overwritten_without_resume(tmp_path):
    train(tiny_config(tmp_path, "train.steps=6"))
    with pytest.raises(FileExistsError, match="resume=true"):
        train(tiny_config(tmp_path, "train.steps=6"))


def test_resume_with_another_model_is_refused(tmp_path):
    train(tiny_config(tmp_path, "train.steps=6"))
    with pytest.raises(CheckpointError, match="trained with model="):
        train(tiny_config(tmp_path, "train.steps=6", "resume=true", "model.embed_dim=16"))


# MeanFlow's checkpoint must also carry the model fields its objective set (time_scale ...).
@pytest.mark.parametrize("objective", ["shortcut", "meanflow"])
def test_checkpoint_reloads_to_identical_outputs(tmp_path, objective):
    run = train(tiny_config(tmp_path, "train.steps=6", f"objective={objective}"))
    network, objective, meta = load_policy_network(
        latest_checkpoint(tmp_path / "run" / "checkpoints")
    )
    assert meta["step"] == 6 and meta["spec"]["task"] == "bimodal"
    obs = {"pos": torch.randn(4, 1, 2)}
    torch.manual_seed(1)
    expected = run.ema.eval().act(obs, run.objective, 3)
    torch.manual_seed(1)
    got = network.act(obs, objective, 3)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("group", ["task", "model", "objective"])
def test_unknown_group_choice_lists_the_options(group):
    with pytest.raises(MissingConfigException, match="Available options"):
        make_config(f"{group}=nonexistent")


def test_dataset_without_the_task_keys_names_found_and_needed(tmp_path):
    train(tiny_config(tmp_path, "train.steps=1"))  # writes a bimodal store: keys pos, action
    cfg = make_config(
        "task=push_t", f"dataset.path={tmp_path / 'bimodal.zarr'}", f"run_dir={tmp_path / 'x'}"
    )
    with pytest.raises(DatasetError, match=r"lacks data keys \['keypoint', 'state'\].*'pos'"):
        train(cfg)


@pytest.mark.parametrize("name", ["pusht_cchi_v7_replay.zarr", "pusht_cchi_v7_replay.zarr.zip"])
def test_trains_on_diffusion_policy_pusht_file(tmp_path, name):
    from tests.data.test_replay_buffer import write_diffusion_policy_layout

    write_diffusion_policy_layout(tmp_path / name, zip_store=name.endswith(".zip"))
    cfg = quick_run(
        tmp_path,
        f"dataset.path={tmp_path / name}",
        "dataset.val_fraction=0",
        "train.steps=2",
        "train.batch_size=4",
        "eval_every=0",
        task="push_t",
    )
    run = train(cfg)
    assert run.data.spec["obs_shapes"] == {"keypoint": [9, 2], "state": [5]}
    # Its 9 keypoints cannot be rolled out in gym-pusht (8): refused before training starts.
    with pytest.raises(ValueError, match=r"'keypoint' has shape \(9, 2\) but the push_t"):
        train(
            quick_run(
                tmp_path / "eval", f"dataset.path={tmp_path / name}", "eval_every=10", task="push_t"
            )
        )
    assert latest_checkpoint(tmp_path / "run" / "checkpoints") is not None


def test_image_task_trains_on_diffusion_policy_file_reading_the_pusher_from_state(tmp_path):
    from tests.data.test_replay_buffer import write_diffusion_policy_layout

    data = write_diffusion_policy_layout(tmp_path / "dp.zarr", images=True)  # no agent_pos key
    cfg = quick_run(
        tmp_path,
        f"dataset.path={tmp_path / 'dp.zarr'}",
        "dataset.val_fraction=0",
        "train.steps=1",
        "train.batch_size=4",
        "train.num_workers=0",
        "model.vision.channels=[8,8,8]",
        task="push_t_image",
    )
    run = train(cfg)
    assert run.data.spec["obs_shapes"] == {"img": [96, 96, 3], "agent_pos": [2]}
    window = run.data.train[0]["obs"]["agent_pos"]  # (n_obs_steps, 2): state[..., :2] of step 0
    np.testing.assert_allclose(window[-1].numpy(), data["state"][0, :2])


def test_resume_with_another_batch_size_is_refused(tmp_path):
    train(tiny_config(tmp_path, "train.steps=6"))
    with pytest.raises(CheckpointError, match="train.batch_size=32, this run has 16"):
        train(tiny_config(tmp_path, "train.steps=6", "resume=true", "train.batch_size=16"))


@pytest.mark.parametrize("objective", ["shortcut", "meanflow"])
def test_bf16_autocast_trains_and_keeps_fp32_weights(tmp_path, objective):
    config = tiny_config(
        tmp_path, "train.precision=bf16", "train.steps=4", "val_every=0", f"objective={objective}"
    )
    run = train(config)
    rows = read_metrics(tmp_path / "run")
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in rows)
    assert all(p.dtype == torch.float32 for p in run.model.parameters())


def test_unknown_precision_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"must be one of \['auto', 'fp32', 'bf16'\]"):
        train(tiny_config(tmp_path, "train.precision=fp16"))


def distance(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return sum((p - q).norm().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_fast_teacher_ema_tracks_the_live_weights_closer_than_the_evaluation_ema(tmp_path):
    run = train(
        tiny_config(
            tmp_path,
            "objective.ema_teacher=true",
            "objective.teacher_decay=0.2",
            "train.ema_decay=0.9",
        )
    )
    assert run.teacher is not None
    assert distance(run.teacher, run.model) < 0.5 * distance(run.ema, run.model)
    tensors, _ = load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"))
    assert any(key.startswith("teacher.") for key in tensors)


@pytest.mark.parametrize("extra", [["objective.ema_teacher=true"], []])
def test_no_separate_teacher_unless_asked(tmp_path, extra):
    assert train(tiny_config(tmp_path, "train.steps=2", *extra)).teacher is None


def test_lr_floor_reaches_the_optimizer(tmp_path):
    train(tiny_config(tmp_path, "train.lr_floor=0.5", "train.lr=1e-3"))
    rows = read_metrics(tmp_path / "run")
    assert rows[-1]["lr"] >= 0.5e-3 - 1e-9
    assert min(row["lr"] for row in rows[4:]) >= 0.5e-3 - 1e-9


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_only_where_the_cpu_has_it(tmp_path, monkeypatch, native, expected):
    import shortcut_policy.train as train_module

    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: native)
    run = train(tiny_config(tmp_path, "train.steps=1", "train.precision=auto"))
    assert run.cfg.train.precision == expected
    assert f"precision: {expected}" in (tmp_path / "run" / "config.yaml").read_text()


def test_checkpoint_from_before_the_recipe_fields_resumes_only_as_it_was_trained(tmp_path):
    """A config saved without ``coarse_share`` / ``teacher_decay`` was trained without them."""
    from shortcut_policy.checkpoints.files import save_checkpoint

    old = ["objective.consistency_every=8", "objective.ema_teacher=true"]
    train(tiny_config(tmp_path, "train.steps=6", *old, "objective.coarse_share=0.0"))
    path = latest_checkpoint(tmp_path / "run" / "checkpoints")
    tensors, meta = load_checkpoint(path)
    for field in ("coarse_share", "teacher_decay"):
        del meta["config"]["objective"][field]
    save_checkpoint(path, tensors, meta)
    with pytest.raises(CheckpointError, match="trained with objective="):
        train(tiny_config(tmp_path, "train.steps=8", "resume=true", *old))  # coarse_share 0.5
    resumed = train(
        tiny_config(tmp_path, "train.steps=8", "resume=true", *old, "objective.coarse_share=0")
    )
    assert resumed.step == 8


def test_a_diverged_loss_stops_the_run_before_a_checkpoint_of_it(tmp_path, monkeypatch):
    import shortcut_policy.objectives.flow as flow

    real = flow.FlowMatching.loss

    def loss_nan_from_step_8(self, net, x1, *args):
        loss, metrics = real(self, net, x1, *args)
        if train_steps_seen.append(1) or len(train_steps_seen) >= 8:
            loss = loss * float("nan")
            metrics = {key: value * float("nan") for key, value in metrics.items()}
        return loss, metrics

    train_steps_seen = []
    monkeypatch.setattr(flow.FlowMatching, "loss", loss_nan_from_step_8)
    cfg = tiny_config(tmp_path, "objective=flow", "logging.log_every=5", "val_every=0")
    with pytest.raises(FloatingPointError, match="loss is nan at step 10"):
        train(cfg)
    # The step-6 checkpoint is the last one, and its weights are finite.
    newest = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert newest.name == "step_00000006.safetensors"
    tensors, _ = load_checkpoint(newest)
    assert all(torch.isfinite(value).all() for value in tensors.values())
