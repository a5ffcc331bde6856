import pytest

from shortcut_policy.training.schedule import warmup_cosine_lr


def test_cosine_decays_to_zero_without_a_floor():
    rates = [warmup_cosine_lr(s, 1e-3, 10, 100) for s in range(101)]
    assert rates[9] == pytest.approx(1e-3)  # end of warm-up: the peak
    assert rates[-1] == pytest.approx(0.0, abs=1e-8)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))


@pytest.mark.parametrize("floor", [0.1, 0.5])
def test_lr_floor_holds_the_rate_above_its_share_of_peak(floor):
    rates = [warmup_cosine_lr(s, 1e-3, 10, 100, floor) for s in range(10, 130)]
    assert min(rates) == pytest.approx(floor * 1e-3)
    assert rates[0] == pytest.approx(1e-3)
    # Half way through the decay the rate is half way between peak and floor.
    assert warmup_cosine_lr(55, 1e-3, 10, 100, floor) == pytest.approx((1 + floor) / 2 * 1e-3)


def test_floor_one_is_a_constant_rate_after_warm_up():
    rates = [warmup_cosine_lr(s, 1e-3, 10, 100, 1.0) for s in range(10, 100)]
    assert rates == pytest.approx([1e-3] * len(rates))


def test_bad_floor_is_refused():
    with pytest.raises(ValueError, match="train.lr_floor must lie in"):
        warmup_cosine_lr(50, 1e-3, 10, 100, 1.5)
