"""Camera observations end to end: rendered store -> lazy frames -> loss -> policy."""

import numpy as np
import pytest
import torch
import zarr
from torch.utils.data import DataLoader

from envs.push_t.demos import make_push_t_store
from shortcut_policy import ShortcutPolicy
from shortcut_policy.checkpoints.files import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from shortcut_policy.data.replay_buffer import DatasetError
from shortcut_policy.evaluation.evaluators import evaluate_rollouts
from shortcut_policy.models import build_network
from shortcut_policy.objectives import build_objective
from shortcut_policy.tasks import load_task_data
from shortcut_policy.train import train
from shortcut_policy.training.loss_module import ObjectiveLoss
from tests.conftest import quick_run

TINY_VISION = [
    "model.vision.channels=[8,16]",
    "model.vision.keypoints=4",
    "model.vision.feature_dim=16",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("pixels") / "push_t_image.zarr"
    make_push_t_store(path, n_episodes=3, start_seed=0, workers=1, render=True)
    return path


def image_config(tmp_path, store, *extra):
    return quick_run(
        tmp_path,
        f"dataset.path={store}",
        "dataset.val_fraction=0",
        "train.steps=4",
        "train.batch_size=8",
        "train.num_workers=1",
        "train.warmup_steps=1",
        "checkpoint_every=4",
        "eval_every=0",
        *TINY_VISION,
        *extra,
        task="push_t_image",
    )


def test_frames_are_stored_uint8_one_per_chunk_and_compressed(store):
    frames = zarr.open_group(str(store), mode="r")["data/img"]
    assert frames.dtype == np.uint8 and frames.shape[1:] == (96, 96, 3)
    assert frames.chunks == (1, 96, 96, 3)  # one decode per frame read
    files = [f for f in (store / "data" / "img").rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) < frames.nbytes / 3  # compressed
    assert len(files) < 5  # a shard file, not a file per frame


def test_hybrid_batch_flows_from_the_store_through_the_loss(tmp_path, store):
    cfg = image_config(tmp_path, store)
    data = load_task_data(cfg.task, cfg.dataset)
    assert not isinstance(data.train.buffer.data["img"], np.ndarray)  # decoded on read
    assert data.spec["obs_types"] == {"img": "rgb", "agent_pos": "low_dim"}
    assert data.normalizer.keys == ["agent_pos", "action"]  # no statistics for frames
    item = data.train[0]
    assert item["obs"]["img"].dtype == torch.uint8
    assert item["obs"]["img"].shape == (2, 96, 96, 3)
    batch = next(iter(DataLoader(data.train, batch_size=4, shuffle=True, num_workers=1)))
    network = build_network(data.spec, cfg.model, data.normalizer).train()
    loss, metrics = ObjectiveLoss(network, build_objective(cfg.objective))(batch, None)
    loss.backward()
    assert torch.isfinite(loss)
    stem = network.obs_encoder.cameras["shared"].stem[0].weight
    assert stem.grad is not None and stem.grad.abs().sum() > 0


def test_student_and_teacher_see_the_same_crop(tmp_path, store):
    cfg = image_config(tmp_path, store)
    data = load_task_data(cfg.task, cfg.dataset)
    network = build_network(data.spec, cfg.model, data.normalizer).train()
    batch = next(iter(DataLoader(data.train, batch_size=4)))
    augmented = network.augment(batch)
    assert augmented["obs"]["img"].shape == (4, 2, 84, 84, 3)
    teacher = build_network(data.spec, cfg.model, data.normalizer).eval()
    teacher.load_state_dict(network.state_dict())
    with torch.no_grad():  # the eval-mode teacher must not crop the crop again
        student_cond = network.eval().prepare_batch(augmented)[1]
        torch.testing.assert_close(teacher.prepare_batch(augmented)[1], student_cond)


def test_store_shape_that_differs_from_the_task_is_named(tmp_path, store):
    cfg = image_config(tmp_path, store, "task.obs.img.shape=[64,64,3]")
    with pytest.raises(DatasetError, match=r"data/img has shape \[96, 96, 3\].*task.obs.img"):
        load_task_data(cfg.task, cfg.dataset)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, store):
    tmp = tmp_path_factory.mktemp("image_run")
    train(image_config(tmp, store))
    return tmp / "run"


def camera_obs(seed=0, dtype=np.uint8):
    frame = np.random.default_rng(seed).integers(0, 256, (96, 96, 3)).astype(np.uint8)
    if dtype != np.uint8:
        frame = frame.astype(dtype) / 255.0
    return {"img": frame, "agent_pos": np.array([200.0, 300.0], dtype=np.float32)}


def test_policy_acts_from_uint8_camera_frames(image_run):
    policy = ShortcutPolicy.from_pretrained(image_run, device="cpu", steps=1)
    policy.seed(0)
    action = policy.select_action(camera_obs())
    assert action.shape == (2,) and np.isfinite(action).all()
    policy.reset()
    policy.seed(0)
    as_float = policy.select_action(camera_obs(dtype=np.float32))
    np.testing.assert_allclose(action, as_float, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.zeros((3, 96, 96), np.uint8), "camera 'img' frame has shape .* channels first"),
        (np.zeros((120, 160, 3), np.uint8), "camera 'img' gives 120x160 frames .* 96x96"),
        (np.full((96, 96, 3), 255.0, np.float32), "camera 'img' float frames must be .* in"),
        (np.zeros((96, 96, 3), np.int64), "camera 'img' frames are int64"),
    ],
)
def test_bad_camera_frames_are_named(image_run, frame, message):
    policy = ShortcutPolicy.from_pretrained(image_run, device="cpu", steps=1)
    with pytest.raises(ValueError, match=message):
        policy.select_action({"img": frame, "agent_pos": np.zeros(2, np.float32)})


def test_image_policy_rolls_out_in_the_pixel_simulator(image_run, tmp_path, store):
    policy = ShortcutPolicy.from_pretrained(image_run, device="cpu", steps=1)
    cfg = image_config(tmp_path, store, "task.env.max_steps=12")
    data = load_task_data(cfg.task, cfg.dataset)
    metrics = evaluate_rollouts(
        policy.network, policy.objective, data, [1], n_episodes=1, workers=1
    )
    assert set(metrics) == {"success@1", "score@1"}
    assert 0.0 <= metrics["score@1"] <= 1.0


def test_teacher_encodes_only_the_consistency_rows(tmp_path, store):
    cfg = image_config(tmp_path, store, "objective=shortcut")  # the objective with a teacher
    data = load_task_data(cfg.task, cfg.dataset)
    network = build_network(data.spec, cfg.model, data.normalizer).eval()  # no crops: compare
    teacher = build_network(data.spec, cfg.model, data.normalizer).eval()
    # An EMA teacher at K = 8 (the live-weight default has no separate teacher to encode).
    objective = build_objective({**cfg.objective, "ema_teacher": True, "consistency_every": 8})
    batch = next(iter(DataLoader(data.train, batch_size=16)))
    seen = []
    real = teacher.prepare_batch
    teacher.prepare_batch = lambda b: seen.append(len(b["action"])) or real(b)
    torch.manual_seed(3)
    loss, _ = ObjectiveLoss(network, objective)(batch, teacher)
    assert seen == [objective.consistency_rows(16)] == [2]
    torch.manual_seed(3)
    x1, cond = network.prepare_batch(batch)
    expected, _ = objective.loss(network, x1, cond, teacher, real(batch)[1])
    torch.testing.assert_close(loss, expected)


def test_latency_of_an_image_policy_includes_the_encoder(image_run):
    from shortcut_policy.evaluation.latency import chunk_latency, encode_latency, example_batch

    policy = ShortcutPolicy.from_pretrained(image_run, device="cpu", steps=1)
    obs = camera_obs()
    assert example_batch(policy, obs, 2)["img"].dtype == np.uint8  # frames stay as cameras give
    encode = encode_latency(policy, obs, n_calls=3, warmup=1)
    chunk = chunk_latency(policy, obs, steps=1, n_calls=3, warmup=1)
    assert 0 < encode["median_ms"] < chunk["median_ms"] * 5


def test_channels_last_encodes_the_same_and_downsampling_sees_a_quarter_of_the_pixels():
    from shortcut_policy.models.vision import ConvEncoder, VisionConfig

    frames = torch.rand(4, 3, 84, 84, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    plain = ConvEncoder(VisionConfig())
    torch.manual_seed(0)
    fast = ConvEncoder(VisionConfig(channels_last=True))
    torch.testing.assert_close(fast(frames), plain(frames), atol=1e-4, rtol=1e-4)
    seen = []
    coarse = ConvEncoder(VisionConfig(downsample=2))
    coarse.stem.register_forward_hook(lambda module, inputs, out: seen.append(inputs[0].shape))
    assert coarse(frames).shape == (4, 64)
    assert tuple(seen[0][-2:]) == (42, 42)
    with pytest.raises(ValueError, match="downsample must be an integer >= 1"):
        VisionConfig.from_dict({"downsample": 0})


def test_a_pixel_checkpoint_from_before_downsample_resumes_only_at_its_defaults(tmp_path, store):
    """Saved before ``downsample`` / ``channels_last`` existed: trained at 1 / false."""
    train(image_config(tmp_path, store))
    path = latest_checkpoint(tmp_path / "run" / "checkpoints")
    tensors, meta = load_checkpoint(path)
    for field in ("downsample", "channels_last"):
        del meta["config"]["model"]["vision"][field]
    save_checkpoint(path, tensors, meta)
    with pytest.raises(CheckpointError, match="trained with model="):
        train(image_config(tmp_path, store, "resume=true", "model.vision.downsample=2"))
    resumed = train(image_config(tmp_path, store, "resume=true", "train.steps=5"))
    assert resumed.step == 5
