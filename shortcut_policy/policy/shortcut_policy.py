"""``ShortcutPolicy``: the control-loop API.

    policy = ShortcutPolicy.from_pretrained("runs/push_t/shortcut-unet_small-seed0", steps=1)
    policy.reset()
    while True:
        action = policy.select_action({"keypoint": kp, "state": state})   # one action, (Da,)

Camera observations are passed as cameras give them, ``(H, W, 3)`` uint8 (e.g.
``{"img": frame, "agent_pos": xy}`` for ``push_t_image``); the policy converts them.

Three numbers define how a chunk is used (Push-T low-dim defaults in brackets):

| name             | meaning                                                          | Push-T |
|------------------|------------------------------------------------------------------|--------|
| ``n_obs_steps``  | observations the network conditions on (the newest ones)        | 2      |
| ``horizon``      | actions generated per network call (one chunk)                   | 16     |
| ``n_action_steps``| actions of the chunk executed before a new chunk is generated  | 8      |

::

    time          t-1   t    t+1  ...  t+7  t+8 ...  t+14
    observations  [o    o]                                     n_obs_steps = 2
    chunk         a    [a    a    ...  a]   a   ...  a         horizon = 16
    executed           ^--- n_action_steps = 8 ---^

The chunk starts at the oldest observation (as in training), so the executed actions are
``chunk[n_obs_steps - 1 : n_obs_steps - 1 + n_action_steps]``. ``select_action`` keeps the
observation history and the queue of actions still to execute; a new chunk is generated only
when the queue is empty. The step budget (network passes per chunk) is set per policy
(``policy.steps``) or per call (``predict_action_chunk(obs, steps=...)``).

On a robot, two options matter (``deploy/``):

* ``steps="auto", deadline_ms=X`` times every budget on this device at load and keeps the
  largest whose p99 latency fits ``X``; the chunk calls keep being timed, and the budget
  follows if latency drifts (``policy.budget_choice`` says what was measured and chosen).
* ``async_chunks=True`` computes the next chunk in a background thread while the current one
  is executed, so ``select_action`` waits on inference only for an episode's first chunk.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shortcut_policy.checkpoints.files import (
    CheckpointError,
)
from shortcut_policy.data.obs_space import RGB
from shortcut_policy.objectives import with_sampler
from shortcut_policy.objectives.sampling import BudgetError
from shortcut_policy.policy.async_chunks import AsyncChunks
from shortcut_policy.policy.auto_budget import (
    BudgetChoice,
    DriftWatch,
    candidate_budgets,
    choose_budget,
    measured_success,
    no_worse_than_one_pass,
    p99_ms,
)
from shortcut_policy.policy.chunk_buffer import ChunkBuffer
from shortcut_policy.policy.chunk_joins import (
    check_chunk_covers,
    checked_given,
    checked_join_setup,
    checked_warm_t,
    given_batch,
    warm_batch,
)
from shortcut_policy.policy.cuda_graph import GraphedChunks
from shortcut_policy.policy.hub import hub_folder, is_repo_id, model_card, push_folder
from shortcut_policy.policy.obs_check import ObservationCheck, checked_noise, finite_actions
from shortcut_policy.policy.pretrained import load_policy_network, resolve_policy_path, save_policy
from shortcut_policy.policy.timing import timed_ms

log = logging.getLogger("shortcut_policy.deploy")


class ShortcutPolicy:
    """A trained action generator with observation history and an action queue.

    Args:
        network: the trained :class:`PolicyNetwork` (EMA weights when loaded from training).
        objective: the objective it was trained with (defines sampling).
        meta: plain checkpoint metadata (``spec``, ``config``).
        steps: network passes per chunk (default: the objective's ``default_steps``), or
            ``"auto"``: the most that fit ``deadline_ms`` on this device.
        device: ``"cpu"``, ``"cuda"`` or None for CUDA when available.
        deadline_ms: the latency a chunk call must fit (p99), with ``steps="auto"``.
        async_chunks: compute the next chunk while the current one runs (``select_action``).
        async_lead: ticks before a chunk's executed part ends that the next is requested.
        cuda_graph: replay each ``(steps, batch)`` chunk call as one captured CUDA graph.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        objective: Any,
        meta: Mapping[str, Any],
        steps: int | str | None = None,
        device: str | torch.device | None = None,
        deadline_ms: float | None = None,
        async_chunks: bool = False,
        async_lead: int = 1,
        cuda_graph: bool = False,
        join: str = "none",
        warm_t: float = 0.5,
    ) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.network = network.to(self.device).eval().requires_grad_(False)
        self.objective = objective
        self.meta = dict(meta)
        self.spec = dict(meta["spec"])
        self.check = ObservationCheck(self.spec)
        self.obs_shapes, self.obs_types = self.check.obs_shapes, self.check.obs_types
        self.n_obs_steps = int(self.spec["n_obs_steps"])
        self.horizon = int(self.spec["horizon"])
        self.n_action_steps = int(self.spec["n_action_steps"])
        check_chunk_covers(self.horizon, self.n_obs_steps, self.n_action_steps)
        self.generator: torch.Generator | None = None
        self.graphed = GraphedChunks(self.network, objective, self.device) if cuda_graph else None
        self.budget_choice: BudgetChoice | None = None
        self.drift: DriftWatch | None = None
        self.steps = self.chosen_steps(steps, deadline_ms)
        delay = async_lead if async_chunks else 0  # ticks the old chunk still runs
        prefix_max = getattr(network, "prefix_max", 0)
        self.join, self.warm_t = checked_join_setup(
            join,
            warm_t,
            objective.name,
            prefix_max,
            self.n_obs_steps,
            delay,
            async_chunks,
            cuda_graph,
        )
        self.chunks = None
        if async_chunks:
            self.chunks = AsyncChunks(
                self.predict_one,
                self.n_obs_steps,
                self.horizon,
                self.n_action_steps,
                lead=async_lead,
                prefix=self.join == "prefix",
                warm=self.join == "warm",
            )
        self.reset()

    def chosen_steps(self, steps: int | str | None, deadline_ms: float | None) -> int:
        """``steps`` checked, or with ``"auto"`` the largest budget whose p99 fits the deadline."""
        if steps != "auto":
            if deadline_ms is not None:
                raise BudgetError("deadline_ms is used only with steps='auto'")
            return self.objective.budget(steps)
        if deadline_ms is None:
            raise BudgetError("steps='auto' needs deadline_ms: the latency a chunk call must fit")
        candidates = candidate_budgets(self.objective.budget)
        budgets = no_worse_than_one_pass(candidates, measured_success(self.meta))
        choice = choose_budget(self.chunk_p99_ms, budgets, deadline_ms, where=f" on {self.device}")
        choice.left_out = [steps for steps in candidates if steps not in budgets]
        log.info("steps=auto: %s", choice.summary())
        self.budget_choice, self.drift = choice, DriftWatch(choice, budgets)
        return choice.steps

    def chunk_p99_ms(self, steps: int, n_calls: int = 30) -> float:
        """p99 latency (ms) of a batch-1 chunk call with ``steps`` passes on this device."""
        batch = self.example_batch()
        fn = lambda: self.predict_action_chunk(batch, steps)  # noqa: E731
        return p99_ms(timed_ms(fn, self.device, n_calls, warmup=3))

    def example_batch(self, batch: int = 1) -> dict[str, np.ndarray]:
        """Zero observations ``{key: (batch, n_obs_steps, *shape)}`` of the right dtypes."""
        return {
            key: np.zeros(
                (batch, self.n_obs_steps, *shape),
                np.uint8 if self.obs_types[key] == RGB else np.float32,
            )
            for key, shape in self.obs_shapes.items()
        }

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        device: str | torch.device | None = None,
        steps: int | str | None = None,
        task: str | None = None,
        sampler: str | None = None,
        revision: str | None = None,
        **options: Any,
    ) -> ShortcutPolicy:
        """Load from a checkpoint file, a folder from :meth:`save_pretrained`, a run folder,
        or a Hub repository id ``org/name`` (at ``revision``; needs the ``hub`` extra).

        ``task`` (optional) refuses a policy trained for another task. ``sampler`` (shortcut and
        MeanFlow networks: ``jumps``, ``euler``, ``jump_euler``) replaces the checkpoint's way
        of spending the passes; None keeps it. ``options`` are the constructor's
        ``deadline_ms``, ``async_chunks``, ``async_lead``, ``cuda_graph``, ``join`` (``none``,
        ``ensemble``, ``warm`` or, for a policy trained with ``prefix_max``, ``prefix``: how
        each new chunk joins the one it replaces) and ``warm_t``.
        """
        if is_repo_id(path):
            path = hub_folder(os.fspath(path), revision)
        elif revision is not None:
            raise ValueError(f"revision={revision!r} is for a Hub repository id, not {path}")
        file = resolve_policy_path(path)
        network, objective, meta = load_policy_network(file)
        objective = with_sampler(objective, sampler)
        if sampler is not None:  # save_pretrained then records the sampler in use
            meta["config"]["objective"] = {**meta["config"]["objective"], "sampler": sampler}
        if task is not None and meta["spec"]["task"] != task:
            raise CheckpointError(
                f"{file} holds a policy for task {meta['spec']['task']!r}, not {task!r}; "
                "pick a checkpoint trained on this task"
            )
        return cls(network, objective, meta, steps=steps, device=device, **options)

    def save_pretrained(
        self,
        path: str | os.PathLike,
        weights_dtype: torch.dtype = torch.float32,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        report: Any = None,
        **push: Any,
    ) -> Path:
        """Write the weights and plain config to ``path/policy.safetensors`` (atomic).

        ``weights_dtype=torch.float16`` halves the file (for shipping); the normalizer's
        statistics stay float32, and loading casts everything back to float32. ``report`` (a
        rollout ``report.json`` path or its dict) saves the success measured at each budget,
        which ``steps="auto"`` uses to leave out budgets that scored below 1 pass. With
        ``push_to_hub=True`` the folder, with a model card, is also uploaded to ``repo_id``
        (default: the folder's name); ``push`` takes :meth:`push_to_hub`'s options.
        """
        report = json.loads(Path(report).read_text()) if _is_path(report) else report
        target = self._save(path, weights_dtype, report)
        if push_to_hub:
            self._push(Path(path), repo_id or Path(path).resolve().name, report=report, **push)
        return target

    def push_to_hub(
        self, repo_id: str, weights_dtype: torch.dtype = torch.float32, **push: Any
    ) -> Any:
        """Upload this policy and a generated model card to the Hub repository ``repo_id``.

        ``push``: ``report`` (a rollout ``report.json`` path or its dict: the card's results
        table), ``token``, ``private``, ``commit_message``, ``api`` (an ``HfApi`` or stand-in).
        Returns the commit information.
        """
        with tempfile.TemporaryDirectory() as folder:
            self._save(folder, weights_dtype)
            return self._push(Path(folder), repo_id, **push)

    def _push(self, folder: Path, repo_id: str, report: Any = None, **push: Any) -> Any:
        report = json.loads(Path(report).read_text()) if _is_path(report) else report
        budgets = candidate_budgets(self.objective.budget)
        sampler = getattr(self.objective, "sampler", None)
        (folder / "README.md").write_text(model_card(self.meta, budgets, report, sampler))
        return push_folder(folder, repo_id, **push)

    def _save(self, path: str | os.PathLike, weights_dtype: torch.dtype, report=None) -> Path:
        success = measured_success(self.meta)
        if report is not None:  # the rollout's success per budget: steps="auto" reads it
            success = {b["steps"]: b["success_rate"] for b in report["budgets"]}
        return save_policy(path, self.network, self.meta, weights_dtype, success)

    # ------------------------------------------------------------------ control loop
    def reset(self) -> None:
        """Forget the observation history and the queued actions (call at episode start)."""
        self.buffer = ChunkBuffer(self.n_obs_steps, self.n_action_steps, join=self.join)
        if self.chunks is not None:
            self.chunks.reset()

    def select_action(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One observation ``{key: shape}`` in, one action ``(Da,)`` out (data units).

        Generates a chunk only when the queue of actions is empty; until the history holds
        ``n_obs_steps`` observations, the oldest one is repeated (as the training data pads).
        An observation that is refused, or whose chunk is, leaves the history as it was.
        """
        checked = self.validate(obs, batched=False)
        if self.chunks is not None:
            return self.chunks.select_action(checked)
        return self.buffer.next_action(checked, self.predict_one)

    @torch.inference_mode()
    def predict_action_chunk(
        self,
        obs: Mapping[str, np.ndarray | torch.Tensor],
        steps: int | None = None,
        noise: np.ndarray | torch.Tensor | None = None,
    ) -> np.ndarray:
        """Observations ``{key: (B, n_obs_steps, *shape)}`` -> actions ``(B, horizon, Da)``.

        ``steps`` overrides ``self.steps`` for this call. ``noise`` ``(B, horizon, Da)``, standard
        normal, fixes the starting sample (to compare with an exported graph fed the same noise).
        Raises ``ValueError`` rather than return a NaN or infinite action.
        """
        return self.predict_checked(self.validate(obs, batched=True), steps, noise)

    @torch.inference_mode()
    def predict_checked(
        self,
        checked: Mapping[str, np.ndarray],
        steps: int | None = None,
        noise: np.ndarray | torch.Tensor | None = None,
        given: tuple[np.ndarray, np.ndarray] | None = None,
        warm: np.ndarray | None = None,
        warm_t: float | None = None,
    ) -> np.ndarray:
        """:meth:`predict_action_chunk` for observations :meth:`validate` already returned
        (``select_action`` and the batched rollouts check each observation once, on arrival).
        ``given``: ``(mask (B, H) bool, actions (B, H, Da))``, the committed prefix a network
        trained with ``prefix_max`` takes (``join='prefix'``). ``warm``: ``(B, H, Da)``, the old
        plan a warm sample starts from at ``warm_t`` (None: the policy's; ``join='warm'``)."""
        own_budget = steps is None
        steps = self.objective.budget(self.steps if own_budget else steps)
        start = time.perf_counter()
        tensors = self.on_device(checked)
        shape = self.network.sample_shape(next(iter(tensors.values())).shape[0])
        if noise is not None:
            noise = torch.as_tensor(checked_noise(noise, shape), device=self.device)
        prefix_max = getattr(self.network, "prefix_max", 0)
        given = checked_given(given, shape[0], self.horizon, shape[-1], prefix_max)
        if given is not None:
            given = tuple(torch.as_tensor(g, device=self.device) for g in given)
        if warm is not None:
            guess = checked_noise(warm, shape, "the warm start's old plan")
            t0 = self.warm_t if warm_t is None else checked_warm_t(warm_t)
            warm = (t0, torch.as_tensor(guess, device=self.device))
        if self.graphed is not None:
            if given is not None or warm is not None:
                raise ValueError("cuda_graph=True takes neither a prefix nor a warm start yet")
            if noise is None:  # the graph takes its noise as an input
                noise = torch.randn(shape, generator=self.generator, device=self.device)
            chunk = self.graphed(tensors, noise, steps)
        else:
            chunk = self.network.act(
                tensors, self.objective, steps, noise, self.generator, given=given, warm=warm
            )
        chunk = finite_actions(chunk.cpu().numpy())  # .cpu() waits for the device
        if own_budget and self.drift is not None:
            self.steps = self.drift.observe((time.perf_counter() - start) * 1000.0)
        return chunk

    def predict_one(self, history: Mapping[str, np.ndarray], given=None, warm=None) -> np.ndarray:
        """One checked history ``{key: (n_obs_steps, *shape)}`` -> one chunk ``(horizon, Da)``
        (with ``join='prefix'``, given the actions already decided; with ``warm``, the old
        plan: by the non-blocking executor, or here from the queue)."""
        if self.chunks is None:
            given = given_batch([self.buffer.queue], self.horizon)
            warm = warm_batch([self.buffer.queue], self.horizon)
        batch = {key: value[None] for key, value in history.items()}
        if given is None and warm is None:
            return self.predict_checked(batch)[0]
        return self.predict_checked(batch, given=given, warm=warm)[0]

    def network_inputs(self, obs: Mapping[str, np.ndarray | torch.Tensor]) -> dict:
        """Checked batched observations ``{key: (B, n_obs_steps, *shape)}`` as device tensors."""
        return self.on_device(self.validate(obs, batched=True))

    def on_device(self, checked: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Checked observations as device tensors. Frames travel as uint8 (4x less to copy to
        the GPU); the encoder converts them."""
        return {key: torch.as_tensor(value, device=self.device) for key, value in checked.items()}

    def seed(self, seed: int) -> None:
        """Make sampling noise reproducible from now on."""
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    # ------------------------------------------------------------------ validation
    def validate(self, obs: Mapping[str, Any], batched: bool) -> dict[str, np.ndarray]:
        """Check keys, shapes, dtypes and finiteness; raise a ``ValueError`` that names them."""
        return self.check(obs, batched)


def _is_path(value: Any) -> bool:
    return isinstance(value, str | os.PathLike)
