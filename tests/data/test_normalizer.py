import numpy as np
import torch

from shortcut_policy.data.normalizer import RangeNormalizer


def test_round_trip_and_range():
    rng = np.random.default_rng(0)
    data = {"action": rng.uniform(-5, 300, (100, 2)).astype(np.float32)}
    norm = RangeNormalizer.fit(data)
    x = torch.from_numpy(data["action"])
    y = norm.normalize("action", x)
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    assert torch.isclose(y.min(), torch.tensor(-1.0)) and torch.isclose(y.max(), torch.tensor(1.0))
    torch.testing.assert_close(norm.unnormalize("action", y), x, atol=1e-4, rtol=1e-5)


def test_constant_dimension_maps_to_zero_not_nan():
    data = {"state": np.stack([np.full(10, 3.0), np.arange(10.0)], -1)}
    y = RangeNormalizer.fit(data).normalize(
        "state", torch.tensor(data["state"], dtype=torch.float32)
    )
    assert torch.isfinite(y).all() and torch.all(y[:, 0] == 0)


def test_statistics_travel_in_the_state_dict():
    norm = RangeNormalizer.fit({"a": np.random.rand(10, 3), "b": np.random.rand(10, 9, 2)})
    empty = RangeNormalizer.empty_like({"a": (3,), "b": (9, 2)})
    empty.load_state_dict(norm.state_dict())
    x = torch.rand(4, 9, 2)
    torch.testing.assert_close(empty.normalize("b", x), norm.normalize("b", x))
