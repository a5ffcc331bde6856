"""A fixed-shape chunk call captured as one CUDA graph.

At batch 1 a 1-pass chunk is a few dozen small kernels; launching them one by one from Python
costs more than running them. A CUDA graph records the whole call (encode, the network passes,
unnormalize) once and replays it with one launch. The graph is fixed to one batch size, one
step budget and the observations' dtypes, so :class:`GraphedChunks` keeps one graph per
``(steps, batch)`` and captures it on first use.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


class GraphedChunks:
    """``(obs, noise, steps) -> chunk`` through CUDA graphs of ``network`` and ``objective``."""

    def __init__(self, network: torch.nn.Module, objective, device: torch.device) -> None:
        if device.type != "cuda":
            raise ValueError(
                f"cuda_graph=True needs a CUDA device, but the policy is on {device}; "
                "drop cuda_graph or load the policy with device='cuda'"
            )
        if device.index is None:  # "cuda" means the current GPU; tensors name its index
            device = torch.device("cuda", torch.cuda.current_device())
        self.network, self.objective, self.device = network, objective, device
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, dict, torch.Tensor, torch.Tensor]] = {}

    @torch.inference_mode()
    def __call__(
        self, obs: Mapping[str, torch.Tensor], noise: torch.Tensor, steps: int
    ) -> torch.Tensor:
        """Observations ``{key: (B, n_obs_steps, *shape)}`` and ``noise`` ``(B, H, Da)`` on the
        device -> actions ``(B, H, Da)`` in data units (a copy; the graph's output is reused)."""
        # A graph replays on the device it was captured on: inputs from another device would
        # be copied in, but its kernels would not see them there, and the actions come back
        # stale. Refuse rather than answer wrongly.
        for name, value in [*obs.items(), ("noise", noise)]:
            if value.device != self.device:
                raise ValueError(
                    f"{name} is on {value.device}, but this policy's CUDA graphs run on "
                    f"{self.device}: move the inputs there (or load the policy on {value.device})"
                )
        key = (steps, noise.shape[0], tuple((k, v.dtype) for k, v in obs.items()))
        if key not in self.graphs:
            self.graphs[key] = self._capture(obs, noise, steps)
        graph, static_obs, static_noise, out = self.graphs[key]
        for name, value in obs.items():
            static_obs[name].copy_(value)
        static_noise.copy_(noise)
        graph.replay()
        return out.clone()

    def _capture(self, obs: Mapping[str, torch.Tensor], noise: torch.Tensor, steps: int):
        static_obs = {name: value.clone() for name, value in obs.items()}
        static_noise = noise.clone()

        def call() -> torch.Tensor:
            return self.network.act(static_obs, self.objective, steps, static_noise)

        # Warm-up on a side stream, as capture requires (lazy allocations happen here).
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                call()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = call()
        return graph, static_obs, static_noise, out
