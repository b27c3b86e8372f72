"""The compile knob: how the denoiser's forward runs -- eagerly, replayed from CUDA graphs, with its repeated blocks
compiled (diffusers' ``compile_repeated_blocks``, regional compilation), or compiled whole.

Today's ``--mode`` values are its spellings: ``eager`` is ``none``, ``cudagraph`` is ``cudagraph``, ``compile`` is
``full``. Those three run through ``ldmpick.hardware.execution``'s ``DenoiserRunner`` (the runner the profiler and
generation share; nothing here repeats it); ``repeated-blocks`` calls the denoiser's own ``compile_repeated_blocks``.
Compile time is a cold-start cost, measured apart from the step cost.
"""

from __future__ import annotations

from typing import Any

from ldmpick.files.errors import UsageError
from ldmpick.hardware.execution import MODES, check_mode, default_mode, install_runner
from ldmpick.knobs import Applied, DeviceFacts, KnobSetting, Policy, denoiser_of

POLICIES: dict[str, Policy] = {p.name: p for p in [
    Policy("none", "eager PyTorch (today's --mode eager)", aliases=("eager",)),
    Policy("cudagraph", "one CUDA graph captured per input signature and replayed (today's --mode cudagraph)"),
    Policy("repeated-blocks", "regional compilation: each repeated transformer block compiled once "
           "(diffusers compile_repeated_blocks)", aliases=("regional",)),
    Policy("full", "the whole forward compiled with CUDA graphs, torch.compile mode reduce-overhead "
           "(today's --mode compile)", aliases=("compile",)),
]}
# compile setting -> the execution mode its runner runs in (repeated-blocks: compiled inside, called eagerly)
RUNNER_MODE = {"none": "eager", "cudagraph": "cudagraph", "full": "compile", "repeated-blocks": "eager"}
assert set(RUNNER_MODE.values()) <= set(MODES)


def from_mode(mode: str) -> KnobSetting:
    """Today's ``--mode`` value as a compile setting."""
    if mode not in MODES:
        from ldmpick.files.errors import unknown_name

        raise unknown_name("execution mode", mode, MODES)
    return KnobSetting("compile", {"eager": "none", "compile": "full"}.get(mode, mode))


def repeated_blocks(denoiser_class: str) -> tuple[str, ...] | None:
    """The block classes diffusers' ``denoiser_class`` declares repeated (``_repeated_blocks``); None when
    diffusers has no such class. Imports diffusers."""
    import diffusers

    cls = getattr(diffusers, denoiser_class, None)
    if not isinstance(cls, type):
        return None
    return tuple(getattr(cls, "_repeated_blocks", None) or ())


class CompileKind:
    name = "compile"
    summary = "how the denoiser runs: eager, CUDA-graph replay, repeated blocks compiled, or the whole forward"
    policies = POLICIES

    def default(self, device: str) -> KnobSetting:
        return from_mode(default_mode(device))

    def trait(self, setting: KnobSetting) -> str:
        return f"compile:{setting.name}"

    def device_issue(self, setting: KnobSetting, device: DeviceFacts) -> str | None:
        if setting.name == "repeated-blocks":
            if not device.is_cuda:
                return (f"compiling needs a CUDA device (got '{device.device}'): on the CPU its steps kept "
                        "recompiling; use compile=none")
            return None
        try:
            check_mode(RUNNER_MODE[setting.name], device.device)
        except UsageError as exc:
            return str(exc)
        return None

    def denoiser_issue(self, setting: KnobSetting, denoiser_class: str) -> str | None:
        if setting.name != "repeated-blocks":
            return None
        blocks = repeated_blocks(denoiser_class)
        if blocks is None:
            return f"'{denoiser_class}' is not a diffusers model class"
        if not blocks:
            return f"{denoiser_class} declares no repeated blocks (_repeated_blocks); use compile=full"
        return None

    def apply(self, setting: KnobSetting, pipeline: Any, device: str, steps: int | None = None) -> Applied:
        denoiser = denoiser_of(pipeline)
        if setting.name == "repeated-blocks":
            denoiser.compile_repeated_blocks()
            return Applied(setting, f"{', '.join(denoiser._repeated_blocks)} compiled (compile_repeated_blocks)")
        runner = install_runner(denoiser, RUNNER_MODE[setting.name], device)
        return Applied(setting, f"denoiser runs in mode {runner.mode}", runner)

    def schedule(self, setting: KnobSetting, steps: int, timesteps: list[float] | None = None) -> Any:
        from ldmpick.knobs.schedule import every_step

        return every_step(steps, f"compile={setting.name}: every step alike; compile time is a cold-start cost")

    def latency_basis(self, setting: KnobSetting) -> str:
        if setting.name == "none":
            return "the eager step cost measured on this device"
        return ("the step cost measured after compilation or capture on this device; the compile or capture time "
                "itself reported apart, as a cold-start cost")

    def quality_basis(self, setting: KnobSetting) -> str:
        return "none: compiling changes how the same computation runs, not what it computes (float rounding aside)"


KIND = CompileKind()
