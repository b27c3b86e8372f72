"""How a UNet step is executed: eagerly, replayed from a CUDA graph, or compiled.

The same runner is used by the profiler and by generation, so that what is measured is what runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ldmpick.errors import UsageError

MODES = ("eager", "cudagraph", "compile")
# --dtype names -> torch dtype attribute names
DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}

UNetRunner = Callable[[Any, Any, Any], Any]  # (sample, timestep, encoder_hidden_states) -> noise prediction


def check_mode(mode: str, device: str) -> None:
    if mode not in MODES:
        from ldmpick.errors import unknown_name

        raise unknown_name("execution mode", mode, MODES)
    if mode in ("cudagraph", "compile") and not device.startswith("cuda"):
        # compile on the CPU: measured here, its steps kept recompiling (0.9 s per step of a model whose eager
        # step is 7 ms), so a profile would record compilation, not generation
        raise UsageError(f"mode '{mode}' needs a CUDA device (got '{device}'); use --mode eager")


def make_unet_runner(unet: Any, mode: str, sample: Any, timestep: Any, encoder_hidden_states: Any) -> UNetRunner:
    """A callable running ``unet`` in ``mode`` for inputs shaped like the examples given.

    ``cudagraph`` captures one forward pass into a CUDA graph with static input buffers and replays it; each call
    copies the inputs into those buffers (a new shape needs a new runner). The returned tensor is a fresh copy.
    """
    import torch

    device = str(sample.device)
    check_mode(mode, device)

    def eager(s: Any, t: Any, ehs: Any) -> Any:
        return unet(s, t, encoder_hidden_states=ehs, return_dict=False)[0]

    if mode == "eager":
        return eager
    if mode == "compile":
        compiled = torch.compile(
            unet, mode="reduce-overhead" if device.startswith("cuda") else "default", fullgraph=True
        )

        def run_compiled(s: Any, t: Any, ehs: Any) -> Any:
            out = compiled(s, t, encoder_hidden_states=ehs, return_dict=False)[0]
            return out.clone()

        return run_compiled

    # cudagraph
    static_sample = sample.detach().clone()
    static_t = torch.as_tensor(timestep, device=sample.device, dtype=torch.float32).detach().clone()
    static_ehs = encoder_hidden_states.detach().clone()
    stream = torch.cuda.Stream(device=sample.device)
    stream.wait_stream(torch.cuda.current_stream(sample.device))
    with torch.no_grad(), torch.cuda.stream(stream):
        for _ in range(3):  # warm-up on a side stream, as CUDA graph capture requires
            eager(static_sample, static_t, static_ehs)
    torch.cuda.current_stream(sample.device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_out = eager(static_sample, static_t, static_ehs)

    def replay(s: Any, t: Any, ehs: Any) -> Any:
        static_sample.copy_(s)
        static_t.copy_(torch.as_tensor(t, dtype=torch.float32))
        if ehs is not static_ehs:
            static_ehs.copy_(ehs)
        graph.replay()
        return static_out.clone()

    return replay
