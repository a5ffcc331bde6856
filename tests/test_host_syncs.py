"""No op that blocks the host on a GPU in a training step or an ``act``, per objective and sampler.

On a GPU, ``.item()``, ``nonzero()``, ``torch.equal`` and their kin wait for every queued kernel
and stop CUDA graphs from capturing. The CPU run records them with a dispatch mode, so the test
needs no GPU. AdamW's own ``.item()`` on its step counters is exempt: those counters live on the
host (not capturable mode), so reading them blocks nothing.
"""

from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader

from shortcut_policy.train import build_run, to_device, train_step
from tests.conftest import quick_run

BLOCKING = {
    "_local_scalar_dense",  # .item(), float(t), bool(t), int(t)
    "nonzero",
    "is_nonzero",
    "equal",
    "masked_select",
    "unique",
    "_unique2",
    "repeat_interleave",  # with a tensor of repeats
}


class BlockingOps(TorchDispatchMode):
    """Records the names of host-blocking ops run inside it (``exempt``: tensors to ignore)."""

    def __init__(self, exempt: set[int] = frozenset()) -> None:
        super().__init__()
        self.exempt, self.seen = exempt, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in BLOCKING and not (args and id(args[0]) in self.exempt):
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("syncs") / "bimodal.zarr"


def small_run(tmp_path: Path, store: Path, objective: str, *overrides: str):
    cfg = quick_run(
        tmp_path,
        f"objective={objective}",
        f"dataset.path={store}",
        "dataset.generator_args.n_episodes=20",
        "train.batch_size=16",
        "eval_steps=[1]",
        *overrides,
    )
    run = build_run(cfg)
    batch = next(iter(DataLoader(run.data.train, batch_size=16)))
    return run, to_device(batch, run.device)


RUNS = [
    ("shortcut", ()),
    ("shortcut", ("objective.ema_teacher=true",)),
    ("flow", ()),
    ("ddpm", ()),
    ("meanflow", ()),
    ("meanflow", ("objective.consistency=split",)),
    ("meanflow", ("objective.consistency=difference",)),
]


@pytest.mark.parametrize(("objective", "overrides"), RUNS)
def test_a_training_step_never_blocks_the_host(tmp_path, store, objective, overrides):
    run, batch = small_run(tmp_path, store, objective, *overrides)
    train_step(run, batch)  # the optimizer's state exists from here on
    steps = {id(state["step"]) for state in run.optimizer.state.values()}
    with BlockingOps(exempt=steps) as ops:
        train_step(run, batch)
    assert ops.seen == []


SAMPLING = [
    ("shortcut", "objective.sampler=jumps", [1, 3]),
    ("shortcut", "objective.sampler=euler", [2]),
    ("shortcut", "objective.sampler=jump_euler", [3]),
    ("flow", "objective.finest_steps=128", [1, 4]),
    ("ddpm", "objective.train_steps=10", [2, 10]),  # DDIM and the ancestral sampler
    ("meanflow", "objective.sampler=jumps", [2]),
    ("meanflow", "objective.sampler=euler", [2]),
]


@pytest.mark.parametrize(("objective", "sampler", "budgets"), SAMPLING)
def test_act_never_blocks_the_host(tmp_path, store, objective, sampler, budgets):
    run, batch = small_run(tmp_path, store, objective, sampler)
    network = run.ema.eval()
    obs = {key: value[:2] for key, value in batch["obs"].items()}
    for steps in budgets:
        with BlockingOps() as ops:
            chunk = network.act(
                obs, run.objective, steps, generator=torch.Generator().manual_seed(0)
            )
        assert ops.seen == [], f"{steps} passes"
        assert chunk.shape[0] == 2


def test_the_recorder_sees_a_blocking_op():
    with BlockingOps() as ops:
        torch.tensor([0.0, 1.0]).nonzero()
        torch.ones(()).item()
    assert ops.seen == ["nonzero", "_local_scalar_dense"]


def test_ddpm_moves_its_schedule_to_the_device_once():
    from shortcut_policy.objectives import DDPM

    ddpm = DDPM(train_steps=10)
    like = torch.empty(2, device="meta")  # a device other than the table's
    ddpm._abar(3, like)
    table = ddpm.alphas_cumprod
    ddpm._abar(torch.tensor([1, 2], device="meta"), like)
    assert table.device.type == "meta" and ddpm.alphas_cumprod is table


def test_auto_precision_ignores_emulated_bf16_on_a_gpu(monkeypatch):
    from shortcut_policy.train import resolved_precision

    # A pre-Ampere GPU: bf16 "supported" only through emulation.
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    assert resolved_precision("auto", torch.device("cuda")) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolved_precision("auto", torch.device("cuda")) == "bf16"
