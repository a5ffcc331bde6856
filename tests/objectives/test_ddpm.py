import pytest
import torch

from shortcut_policy.objectives import DDPM, build_objective
from shortcut_policy.objectives.ddpm import squared_cosine_alphas_cumprod, trailing_timesteps


def test_squared_cosine_schedule_runs_from_clean_to_noise():
    abar = squared_cosine_alphas_cumprod(100)
    assert abar.shape == (100,)
    assert abar[0] > 0.999 and abar[-1] < 1e-3
    assert torch.all(abar[1:] < abar[:-1])


def test_trailing_timesteps_start_at_the_noisiest_step():
    assert trailing_timesteps(100, 1) == [99]
    assert trailing_timesteps(100, 4) == [99, 74, 49, 24]
    assert trailing_timesteps(100, 100) == list(range(99, -1, -1))


class Oracle(torch.nn.Module):
    """Predicts the exact noise that separates x from one known clean sample."""

    def __init__(self, ddpm: DDPM, clean: torch.Tensor):
        super().__init__()
        self.ddpm, self.clean = ddpm, clean

    def forward(self, x, t, d, cond):
        k = torch.round((1 - t) * self.ddpm.train_steps - 1).long()
        abar = self.ddpm.alphas_cumprod[k].float().view(-1, *[1] * (x.dim() - 1))
        return (x - abar.sqrt() * self.clean) / (1 - abar).sqrt()


@pytest.mark.parametrize("steps", [1, 2, 10, 100])
def test_sampling_with_a_perfect_noise_predictor_returns_the_data(steps):
    ddpm = DDPM()
    clean = torch.rand(3, 4, 2) * 2 - 1
    out = ddpm.sample(Oracle(ddpm, clean), torch.randn(3, 4, 2), None, steps)
    torch.testing.assert_close(out, clean, atol=1e-3, rtol=1e-3)


def test_ddpm_loss_trains_noise_prediction():
    ddpm = DDPM()
    clean = torch.rand(8, 4, 2)
    loss, metrics = ddpm.loss(Oracle(ddpm, clean), clean)
    assert loss.item() < 1e-8 and metrics["loss_eps"] == loss.item()


def test_unknown_objective_names_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        build_objective({"name": "consistency"})
    with pytest.raises(ValueError, match="bad field"):
        build_objective({"name": "ddpm", "bogus": 1})


def test_every_ddim_budget_uses_exactly_that_many_valid_timesteps():
    for steps in range(1, 101):
        grid = trailing_timesteps(100, steps)
        assert len(grid) == steps and len(set(grid)) == steps, steps
        assert grid[0] == 99 and min(grid) >= 0, steps


def test_ddpm_noise_follows_the_generator():
    ddpm = DDPM()

    class Zero(torch.nn.Module):
        def forward(self, x, t, d, cond):
            return torch.zeros_like(x)

    noise = torch.randn(2, 4, 2)
    a = ddpm.sample(Zero(), noise, None, 100, torch.Generator().manual_seed(1))
    b = ddpm.sample(Zero(), noise, None, 100, torch.Generator().manual_seed(1))
    c = ddpm.sample(Zero(), noise, None, 100, torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
