import pytest
import torch
from torch import nn

from shortcut_policy.models.obs_encoder import ObservationEncoder
from shortcut_policy.models.vision import (
    ConvEncoder,
    SpatialSoftmax,
    VisionConfig,
    crop_frames,
    frames_to_unit,
)

SMALL = {"channels": [8, 16], "keypoints": 4, "feature_dim": 12}


def camera_spec(cameras, size, low_dim=True, n_obs_steps=2):
    shapes = {name: [*size, 3] for name in cameras}
    types = {name: "rgb" for name in cameras}
    if low_dim:
        shapes["agent_pos"], types["agent_pos"] = [2], "low_dim"
    return {"obs_shapes": shapes, "obs_types": types, "n_obs_steps": n_obs_steps}


def random_obs(spec, batch=3):
    obs = {}
    for key, shape in spec["obs_shapes"].items():
        lead = (batch, spec["n_obs_steps"])
        if spec["obs_types"][key] == "rgb":
            obs[key] = torch.randint(0, 256, (*lead, *shape), dtype=torch.uint8)
        else:
            obs[key] = torch.randn(*lead, *shape)
    return obs


@pytest.mark.parametrize(
    "cameras, size, shared, pool",
    [
        (["img"], (96, 96), True, "spatial_softmax"),
        (["agentview", "wrist"], (84, 84), True, "spatial_softmax"),
        (["agentview", "wrist"], (64, 48), False, "avg"),
        (["a", "b", "c"], (32, 32), False, "spatial_softmax"),
    ],
)
def test_encoder_output_shape_for_sizes_and_camera_counts(cameras, size, shared, pool):
    spec = camera_spec(cameras, size)
    encoder = ObservationEncoder(spec, {**SMALL, "shared": shared, "pool": pool})
    out = encoder(random_obs(spec))
    assert encoder.out_dim == 2 * (2 + len(cameras) * 12)
    assert out.shape == (3, encoder.out_dim)
    assert torch.isfinite(out).all()
    assert len(encoder.cameras) == (1 if shared else len(cameras))


def test_encoder_uses_group_norm_not_batch_norm():
    encoder = ConvEncoder(VisionConfig(channels=[8, 16, 32]))
    kinds = {type(module) for module in encoder.modules()}
    assert nn.GroupNorm in kinds
    assert not any(issubclass(kind, nn.modules.batchnorm._BatchNorm) for kind in kinds)


def test_crop_is_random_only_in_training():
    spec = camera_spec(["img"], (24, 24), low_dim=False)
    encoder = ObservationEncoder(spec, {**SMALL, "crop_shape": [16, 16]})
    obs = random_obs(spec)
    encoder.eval()
    assert torch.equal(encoder(obs), encoder(obs))  # centre crop: deterministic
    encoder.train()
    torch.manual_seed(1)
    first = encoder(obs)
    torch.manual_seed(2)
    assert not torch.allclose(first, encoder(obs))  # different crops
    torch.manual_seed(1)
    assert torch.equal(first, encoder(obs))  # but reproducible from the seed


def test_centre_and_random_crops_take_windows_of_the_frame():
    frames = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    centre = crop_frames(frames, (4, 4), random=False)
    assert torch.equal(centre, frames[:, :, 1:5, 1:5])
    torch.manual_seed(0)
    crops = crop_frames(frames, (4, 4), random=True)
    for n in range(2):
        windows = [frames[n, :, i : i + 4, j : j + 4] for i in range(3) for j in range(3)]
        assert any(torch.equal(crops[n], window) for window in windows)
    with pytest.raises(ValueError, match="larger than the 6x6 frames"):
        crop_frames(frames, (8, 8), random=False)


def test_uint8_and_float_frames_give_the_same_features():
    spec = camera_spec(["img"], (32, 32))
    encoder = ObservationEncoder(spec, {**SMALL, "crop_shape": [28, 28]}).eval()
    obs = random_obs(spec)
    as_float = {**obs, "img": obs["img"].float() / 255.0}
    torch.testing.assert_close(encoder(obs), encoder(as_float))
    unit = frames_to_unit(obs["img"][0, 0])
    assert unit.shape == (3, 32, 32) and 0 <= unit.min() and unit.max() <= 1


def test_spatial_softmax_finds_a_bright_spot():
    pool = SpatialSoftmax(channels=1, keypoints=1)
    with torch.no_grad():
        pool.project.weight.fill_(1.0)
        pool.project.bias.zero_()
        pool.log_temperature.fill_(-3.0)  # sharp
    maps = torch.zeros(1, 1, 11, 21)
    maps[0, 0, 8, 15] = 1.0  # row 8 of 0..10, column 15 of 0..20
    x, y = pool(maps)[0].tolist()
    assert x == pytest.approx(-1 + 2 * 15 / 20, abs=0.02)
    assert y == pytest.approx(-1 + 2 * 8 / 10, abs=0.02)


def test_bad_vision_config_is_named():
    with pytest.raises(ValueError, match="unknown model.vision field"):
        VisionConfig.from_dict({"chanels": [8]})
    with pytest.raises(ValueError, match="larger than camera 'img'"):
        ObservationEncoder(camera_spec(["img"], (24, 24)), {"crop_shape": [32, 32]})
