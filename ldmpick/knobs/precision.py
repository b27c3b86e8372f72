"""The precision knob: the denoiser's number format.

``fp32`` / ``bf16`` / ``fp16`` are today's ``--dtype`` values (``ldmpick.hardware.execution.DTYPES`` and its
``check_dtype`` rule, reused, not repeated): the denoiser is cast to that dtype. ``int8`` (weight-only) and ``fp8``
(fp8 weights and dynamically quantized fp8 activations, row-wise scales) quantize the denoiser's linear layers
through torchao's ``quantize_`` -- the library diffusers' ``TorchAoConfig`` uses -- computing in bf16. fp8 needs a
CUDA device of compute capability 8.9 or newer (Ada, Hopper, Blackwell); torchao must be installed for either.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from ldmpick.files.errors import UsageError
from ldmpick.hardware.execution import DTYPES, check_dtype, default_dtype
from ldmpick.knobs import Applied, DeviceFacts, KnobSetting, Policy, denoiser_of

FP8_MIN_CAPABILITY = (8, 9)
TORCHAO = ("int8", "fp8")
# torchao config class per quantized precision (torchao.quantization), and the compute dtype they run in
TORCHAO_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "int8": ("Int8WeightOnlyConfig", {}),
    "fp8": ("Float8DynamicActivationFloat8WeightConfig", {"granularity": "PerRow"}),
}
COMPUTE_DTYPE = "bf16"

POLICIES: dict[str, Policy] = {p.name: p for p in [
    Policy("fp32", "32-bit floats (the CPU default)", aliases=("float32",)),
    Policy("bf16", "bfloat16", aliases=("bfloat16",)),
    Policy("fp16", "float16 (the GPU default; not on the CPU)", aliases=("float16",)),
    Policy("int8", "int8 weight-only quantization of the linear layers (torchao Int8WeightOnlyConfig), bf16 compute",
           aliases=("int8wo", "int8-weight-only")),
    Policy("fp8", "fp8 e4m3 weights and dynamic fp8 activations, row-wise scales (torchao "
           "Float8DynamicActivationFloat8WeightConfig), bf16 compute; CUDA compute capability 8.9+",
           aliases=("fp8dq", "float8")),
]}


def torchao_installed() -> bool:
    return importlib.util.find_spec("torchao") is not None


def torch_dtype_name(setting: KnobSetting) -> str:
    """The torch dtype the denoiser is loaded and computes in (``bfloat16`` for the torchao precisions)."""
    return DTYPES[COMPUTE_DTYPE if setting.name in TORCHAO else setting.name]


def from_dtype(dtype: str) -> KnobSetting:
    """Today's ``--dtype`` value as a precision setting."""
    if dtype not in DTYPES:
        from ldmpick.files.errors import unknown_name

        raise unknown_name("dtype", dtype, DTYPES)
    return KnobSetting("precision", dtype)


def torchao_config(setting: KnobSetting) -> Any:
    """The torchao config object that quantizes the denoiser for ``setting`` (imports torchao)."""
    if not torchao_installed():
        raise UsageError(f"{setting.text} needs torchao (pip install torchao)")
    import torchao.quantization as tq

    class_name, kwargs = TORCHAO_CONFIGS[setting.name]
    kwargs = {k: (getattr(tq, v)() if k == "granularity" else v) for k, v in kwargs.items()}
    return getattr(tq, class_name)(**kwargs)


def apply_precision(setting: KnobSetting, denoiser: Any) -> Applied:
    """Cast (fp32 / bf16 / fp16) or quantize (int8 / fp8, torchao ``quantize_``) ``denoiser`` in place."""
    import torch

    dtype = getattr(torch, torch_dtype_name(setting))
    denoiser.to(dtype)
    if setting.name not in TORCHAO:
        return Applied(setting, f"denoiser in {dtype}")
    config = torchao_config(setting)
    from torchao.quantization import quantize_

    quantize_(denoiser, config)
    return Applied(setting, f"denoiser quantized with torchao {type(config).__name__}, computing in {dtype}")


class PrecisionKind:
    name = "precision"
    summary = "the denoiser's number format: fp32 / bf16 / fp16 (today's --dtype), or int8 / fp8 through torchao"
    policies = POLICIES

    def default(self, device: str) -> KnobSetting:
        return KnobSetting(self.name, default_dtype(device))

    def trait(self, setting: KnobSetting) -> str:
        if setting.name in TORCHAO:
            return "precision:torchao"
        return "precision:fp32" if setting.name == "fp32" else "precision:half"

    def device_issue(self, setting: KnobSetting, device: DeviceFacts) -> str | None:
        if setting.name in DTYPES:
            try:
                check_dtype(setting.name, device.device)
            except UsageError as exc:
                return str(exc)
            return None
        if setting.name == "fp8":
            if not device.is_cuda:
                return f"fp8 needs a CUDA device of compute capability {_cc(FP8_MIN_CAPABILITY)}+ (got '{device.device}')"
            if device.compute_capability is None or tuple(device.compute_capability) < FP8_MIN_CAPABILITY:
                got = _cc(device.compute_capability) if device.compute_capability else "unknown"
                return f"fp8 needs CUDA compute capability {_cc(FP8_MIN_CAPABILITY)}+ (this device: {got})"
        if not torchao_installed():
            return "needs torchao (pip install torchao)"
        return None

    def denoiser_issue(self, setting: KnobSetting, denoiser_class: str) -> str | None:
        return None  # a dtype or torchao's linear-layer quantization applies to any diffusers denoiser

    def apply(self, setting: KnobSetting, pipeline: Any, device: str, steps: int | None = None) -> Applied:
        return apply_precision(setting, denoiser_of(pipeline))

    def schedule(self, setting: KnobSetting, steps: int, timesteps: list[float] | None = None) -> Any:
        from ldmpick.knobs.schedule import every_step

        return every_step(steps, f"{setting.name}: every step alike")

    def latency_basis(self, setting: KnobSetting) -> str:
        return "the step cost measured in this precision on this device (profile --knobs / --dtype)"

    def quality_basis(self, setting: KnobSetting) -> str:
        if setting.name in DTYPES:
            return "none assumed: a float format is taken to draw as the model's reference precision does"
        return ("published rows mapped to this torchao config (ldmpick/data/knob_effects.csv), or the user's "
                "calibration (calibrate --knobs); else unmeasured")


def _cc(cc: tuple[int, int] | None) -> str:
    return f"{cc[0]}.{cc[1]}" if cc else "unknown"


KIND = PrecisionKind()
