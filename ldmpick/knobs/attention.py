"""The attention knob: which attention kernel the denoiser's attention layers dispatch to, through diffusers'
``set_attention_backend`` (``diffusers.models.attention_dispatch``).

Only denoisers whose attention processors go through diffusers' dispatcher take it (their processor classes carry
``_attention_backend``: Flux, Flux2, Chroma, Qwen-Image, Z-Image in diffusers 0.42); the UNets and the older
transformers (SD3, PixArt, Sana, ...) call PyTorch's SDPA directly, so a backend would change nothing there and is
refused. Backends fetched from the Hugging Face Hub at run time (``*_hub``) are not offered: ldmpick loads no code
from the network.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import Any

from ldmpick.files.errors import UsageError
from ldmpick.knobs import Applied, DeviceFacts, KnobSetting, Policy, denoiser_of


@dataclass(frozen=True)
class Backend:
    """One backend: diffusers' name for it, whether it needs CUDA (and which compute capability), which package."""

    diffusers_name: str
    cuda: bool
    min_capability: tuple[int, int] | None = None
    package: str | None = None  # import name of the package it needs
    half_only: bool = False  # its kernels take bf16 / fp16 only


BACKENDS: dict[str, Backend] = {
    "sdpa": Backend("native", cuda=False),
    "math": Backend("_native_math", cuda=False),
    "flex": Backend("flex", cuda=False),
    "efficient": Backend("_native_efficient", cuda=True),
    "cudnn": Backend("_native_cudnn", cuda=True),
    "flash": Backend("flash", cuda=True, min_capability=(8, 0), package="flash_attn", half_only=True),
    "flash3": Backend("_flash_3", cuda=True, min_capability=(9, 0), package="flash_attn_interface", half_only=True),
    "sage": Backend("sage", cuda=True, min_capability=(8, 0), package="sageattention", half_only=True),
    "xformers": Backend("xformers", cuda=True, package="xformers"),
}
DEFAULT = "sdpa"
POLICIES: dict[str, Policy] = {p.name: p for p in [
    Policy("sdpa", "PyTorch scaled_dot_product_attention, choosing its own kernel (diffusers 'native', the default)",
           aliases=("native",)),
    Policy("math", "PyTorch SDPA's reference math kernel (slow; for checking)"),
    Policy("flex", "PyTorch flex attention"),
    Policy("efficient", "PyTorch SDPA's memory-efficient kernel (CUDA)"),
    Policy("cudnn", "PyTorch SDPA's cuDNN kernel (CUDA)"),
    Policy("flash", "FlashAttention 2 (flash-attn package; CUDA 8.0+; bf16/fp16)"),
    Policy("flash3", "FlashAttention 3 (flash_attn_interface; Hopper, CUDA 9.0+; bf16/fp16)"),
    Policy("sage", "SageAttention (sageattention package; CUDA 8.0+; quantized attention, bf16/fp16)"),
    Policy("xformers", "xFormers memory-efficient attention (xformers package; CUDA)"),
]}


def dispatching_processors(denoiser_class: str) -> tuple[str, ...] | None:
    """The attention processor classes in ``denoiser_class``'s diffusers module that go through the dispatcher
    (they carry ``_attention_backend``); None when diffusers has no such class. Imports diffusers."""
    import diffusers

    cls = getattr(diffusers, denoiser_class, None)
    if not isinstance(cls, type):
        return None
    module = sys.modules[cls.__module__]
    return tuple(sorted(n for n, v in vars(module).items() if isinstance(v, type) and hasattr(v, "_attention_backend")))


def apply_attention(setting: KnobSetting, denoiser: Any) -> Applied:
    """Set the backend through the denoiser's own ``set_attention_backend``; refuse a denoiser none of whose
    attention processors would use it."""
    processors = [getattr(m, "processor", None) for m in denoiser.modules()]
    dispatching = [p for p in processors if p is not None and hasattr(p, "_attention_backend")]
    if not dispatching:
        raise UsageError(f"{setting.text}: {_no_dispatch(type(denoiser).__name__)}")
    denoiser.set_attention_backend(BACKENDS[setting.name].diffusers_name)
    return Applied(setting, f"{len(dispatching)} attention layer(s) use backend {BACKENDS[setting.name].diffusers_name}")


def _no_dispatch(denoiser_class: str) -> str:
    return (f"{denoiser_class}'s attention does not go through diffusers' attention dispatcher, so a backend "
            "changes nothing there (it calls PyTorch SDPA directly)")


class AttentionKind:
    name = "attention"
    summary = "the attention kernel, through diffusers' set_attention_backend, where the denoiser dispatches"
    policies = POLICIES

    def default(self, device: str) -> KnobSetting:
        return KnobSetting(self.name, DEFAULT)

    def trait(self, setting: KnobSetting) -> str:
        if setting.name == DEFAULT:
            return "attention:sdpa"
        return "attention:half-only" if BACKENDS[setting.name].half_only else "attention:any-dtype"

    def device_issue(self, setting: KnobSetting, device: DeviceFacts) -> str | None:
        backend = BACKENDS[setting.name]
        if backend.cuda and not device.is_cuda:
            return f"attention backend {setting.name} needs a CUDA device (got '{device.device}')"
        if backend.min_capability and device.is_cuda:
            cc = device.compute_capability
            if cc is None or tuple(cc) < backend.min_capability:
                need = f"{backend.min_capability[0]}.{backend.min_capability[1]}"
                got = f"{cc[0]}.{cc[1]}" if cc else "unknown"
                return f"attention backend {setting.name} needs CUDA compute capability {need}+ (this device: {got})"
        if backend.package and importlib.util.find_spec(backend.package) is None:
            return f"attention backend {setting.name} needs the {backend.package} package"
        return None

    def denoiser_issue(self, setting: KnobSetting, denoiser_class: str) -> str | None:
        if setting.name == DEFAULT:
            return None
        processors = dispatching_processors(denoiser_class)
        if processors is None:
            return f"'{denoiser_class}' is not a diffusers model class"
        if not processors:
            return _no_dispatch(denoiser_class)
        return None

    def apply(self, setting: KnobSetting, pipeline: Any, device: str, steps: int | None = None) -> Applied:
        denoiser = denoiser_of(pipeline)
        if setting.name == DEFAULT:
            return Applied(setting, "PyTorch SDPA (the default)")
        return apply_attention(setting, denoiser)

    def schedule(self, setting: KnobSetting, steps: int, timesteps: list[float] | None = None) -> Any:
        from ldmpick.knobs.schedule import every_step

        return every_step(steps, f"attention={setting.name}: every step alike")

    def latency_basis(self, setting: KnobSetting) -> str:
        return "the step cost measured with this backend on this device"

    def quality_basis(self, setting: KnobSetting) -> str:
        if setting.name == "sage":
            return ("SageAttention quantizes attention (int8 QK, fp8/fp16 PV): unmeasured unless the user calibrates "
                    "it (calibrate --knobs)")
        return "none: an exact attention kernel computes the same attention (float rounding aside)"


KIND = AttentionKind()
