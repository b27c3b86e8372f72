"""How a denoiser step is executed: eagerly, replayed from a CUDA graph, or compiled.

The same runner is used by the profiler and by generation, so that what is measured is what runs. A runner wraps a
denoiser's ``forward`` (a UNet or a transformer of any family) and takes the same arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ldmpick.errors import UsageError

MODES = ("eager", "cudagraph", "compile")
# --dtype names -> torch dtype attribute names
DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
MAX_GRAPHS = 4  # distinct input signatures captured per runner; past that, new signatures run eagerly


def default_device() -> str:
    """The GPU if there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> str:
    """fp16 on a GPU, fp32 on the CPU (fp16 there is very slow or unimplemented)."""
    return "fp16" if device.startswith("cuda") else "fp32"


def default_mode(device: str) -> str:
    """CUDA-graph replay on a GPU (eager PyTorch is host-bound there), eager on the CPU."""
    return "cudagraph" if device.startswith("cuda") else "eager"


def check_mode(mode: str, device: str) -> None:
    if mode not in MODES:
        from ldmpick.errors import unknown_name

        raise unknown_name("execution mode", mode, MODES)
    if mode in ("cudagraph", "compile") and not device.startswith("cuda"):
        # compile on the CPU: measured here, its steps kept recompiling (0.9 s per step of a model whose eager
        # step is 7 ms), so a profile would record compilation, not generation
        raise UsageError(f"mode '{mode}' needs a CUDA device (got '{device}'); use --mode eager")


class DenoiserRunner:
    """Calls ``forward`` (a denoiser's original forward) in an execution mode, with the same arguments.

    ``cudagraph`` captures one graph per input signature (the structure of the arguments, every tensor's shape,
    dtype and device, every non-tensor value) with static input buffers, and replays it: each call copies the tensor
    inputs into those buffers and returns fresh copies of the outputs. ``compile`` uses ``torch.compile`` with
    CUDA graphs ("reduce-overhead").
    """

    def __init__(self, forward: Callable[..., Any], mode: str, device: str):
        check_mode(mode, device)
        self.forward = forward
        self.mode = mode
        self.device = device
        self.graphs: dict[Any, tuple[Any, list[Any], Any, Any]] = {}
        self.compiled: Callable[..., Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.mode == "eager":
            return self.forward(*args, **kwargs)
        if self.mode == "compile":
            return self._compiled(*args, **kwargs)
        return self._graphed(*args, **kwargs)

    def _compiled(self, *args: Any, **kwargs: Any) -> Any:
        import torch
        from torch.utils._pytree import tree_map

        if self.compiled is None:
            self.compiled = torch.compile(self.forward, mode="reduce-overhead")
        out = self.compiled(*args, **kwargs)
        # outputs of a CUDA-graph tree are overwritten by the next replay: hand out copies
        return tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, out)

    def _graphed(self, *args: Any, **kwargs: Any) -> Any:
        import torch
        from torch.utils._pytree import tree_flatten, tree_unflatten

        flat, spec = tree_flatten((args, kwargs))
        key = (str(spec), tuple(
            (tuple(x.shape), x.dtype, str(x.device)) if isinstance(x, torch.Tensor) else (type(x).__name__, repr(x))
            for x in flat))
        entry = self.graphs.get(key)
        if entry is None:
            if len(self.graphs) >= MAX_GRAPHS:
                return self.forward(*args, **kwargs)
            entry = self.graphs[key] = self._capture(flat, spec)
        graph, static_flat, out_flat, out_spec = entry
        for static, x in zip(static_flat, flat):
            if isinstance(x, torch.Tensor) and static is not x:
                static.copy_(x)
        graph.replay()
        return tree_unflatten([o.clone() if isinstance(o, torch.Tensor) else o for o in out_flat], out_spec)

    def _capture(self, flat: list[Any], spec: Any) -> tuple[Any, list[Any], Any, Any]:
        import torch
        from torch.utils._pytree import tree_flatten, tree_unflatten

        static_flat = [x.detach().clone() if isinstance(x, torch.Tensor) else x for x in flat]
        args, kwargs = tree_unflatten(static_flat, spec)
        device = torch.device(self.device)
        stream = torch.cuda.Stream(device=device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.no_grad(), torch.cuda.stream(stream):
            for _ in range(3):  # warm-up on a side stream, as CUDA graph capture requires
                self.forward(*args, **kwargs)
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            out = self.forward(*args, **kwargs)
        out_flat, out_spec = tree_flatten(out)
        return graph, static_flat, out_flat, out_spec


def make_denoiser_runner(denoiser: Any, mode: str, device: str) -> DenoiserRunner:
    """A runner of ``denoiser``'s forward in ``mode`` (``denoiser`` itself is not changed)."""
    return DenoiserRunner(denoiser.forward, mode, device)


def install_runner(denoiser: Any, mode: str, device: str) -> DenoiserRunner:
    """Make ``denoiser(...)`` (as a diffusers pipeline calls it) run in ``mode``: its ``forward`` is replaced by a
    runner of the original one. Hooks registered on the module still run."""
    runner = make_denoiser_runner(denoiser, mode, device)
    if mode != "eager":
        denoiser.forward = runner
    return runner
