"""The cache knob: which diffusers cache policy the denoiser runs with, and its settings.

Each policy is one of diffusers' own configs (``FirstBlockCacheConfig``, ``TaylorSeerCacheConfig``,
``MagCacheConfig``, ``FasterCacheConfig``, ``PyramidAttentionBroadcastConfig``), applied through the denoiser's
``enable_cache`` (``CacheMixin``); ldmpick never reimplements a cache. Which denoisers take one is read from the
class (``issubclass(cls, CacheMixin)``), not from a list.

Two sorts (``ADAPTIVE`` / ``FIXED``): FBCache and MagCache skip a step when the features changed little, a
content-dependent branch; TaylorSeer at an interval, PAB and FasterCache decide from the step index and the
sampler's timesteps alone, so ``schedule`` states exactly which steps run in full. The rules in ``schedule`` are
diffusers 0.42's own (the hooks' ``should_compute`` tests, copied as conditions, not as code), and
``tests/test_knob_apply.py`` checks them against the real hooks by counting the attention projections that run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ldmpick.files.errors import UsageError
from ldmpick.knobs import Applied, DeviceFacts, KnobSetting, Param, Policy, denoiser_of
from ldmpick.knobs.schedule import ADAPTIVE, FIXED, LatencySchedule, every_step

NONE = "none"
# TaylorSeer scopes -> the module-name patterns diffusers' TaylorSeerCacheConfig takes (None: its own default,
# the attention modules of each block; "lite": its use_lite_mode)
TAYLORSEER_SCOPES: dict[str, tuple[str, ...] | None] = {
    "attention": None,
    # whole blocks predicted: a cached step runs only the embeddings and the output layers (the paper's FLOP ratio)
    "blocks": (r"^transformer_blocks\.\d+$", r"^single_transformer_blocks\.\d+$", r"^blocks\.\d+$"),
    "lite": None,
}

POLICIES: dict[str, Policy] = {p.name: p for p in [
    Policy(NONE, "no cache: every step runs the whole denoiser", aliases=("off",)),
    Policy("fbcache", "First Block Cache (adaptive): skip the remaining blocks when the first block's residual "
           "changed less than the threshold", (
               Param("threshold", float, 0.05, "relative change of the first block's residual below which the step "
                     "reuses the cached residual (diffusers' default 0.05)", low=0.0, high=1.0),)),
    Policy("taylorseer", "TaylorSeer (fixed schedule): full steps every `interval` steps after `warmup`, the others "
           "predicted by a Taylor expansion of order `order`", (
               Param("interval", int, 5, "steps between full computations (diffusers' cache_interval)", 1, 100),
               Param("order", int, 1, "order of the Taylor expansion (diffusers' max_order)", 0, 4),
               Param("warmup", int, 3, "full steps before caching starts (diffusers' disable_cache_before_step)",
                     1, 1000),
               Param("scope", str, "attention", "what is predicted: the attention modules (diffusers' default), "
                     "whole blocks, or diffusers' lite mode", choices=tuple(TAYLORSEER_SCOPES)))),
    Policy("magcache", "MagCache (adaptive): skip while the accumulated magnitude-ratio error stays under the "
           "threshold, from ratios calibrated for the checkpoint", (
               Param("threshold", float, 0.06, "accumulated error below which steps are skipped", 0.0, 10.0),
               Param("max_skip", int, 3, "most consecutive skipped steps (diffusers' max_skip_steps)", 0, 100),
               Param("retention", float, 0.2, "fraction of the first steps never skipped (retention_ratio)", 0.0,
                     1.0))),
    Policy("fastercache", "FasterCache (fixed schedule): attention recomputed every `skip` steps inside the "
           "timestep window (`low`, `high`), extrapolated from the last two outputs between", (
               Param("skip", int, 2, "spatial_attention_block_skip_range", 1, 100),
               Param("low", int, -1, "window start (timestep, exclusive)", -1, 1000),
               Param("high", int, 681, "window end (timestep, exclusive)", 0, 1001))),
    Policy("pab", "Pyramid Attention Broadcast (fixed schedule): attention recomputed every `skip` steps inside the "
           "timestep window (`low`, `high`), reused between", (
               Param("skip", int, 2, "spatial_attention_block_skip_range", 1, 100),
               Param("low", int, 100, "window start (timestep, exclusive)", -1, 1000),
               Param("high", int, 800, "window end (timestep, exclusive)", 0, 1001))),
]}
ADAPTIVE_POLICIES = ("fbcache", "magcache")
FIXED_POLICIES = ("taylorseer", "fastercache", "pab")
# the diffusers config class each policy is (checked against diffusers by the tests)
CONFIG_CLASSES: dict[str, str] = {
    "fbcache": "FirstBlockCacheConfig", "taylorseer": "TaylorSeerCacheConfig", "magcache": "MagCacheConfig",
    "fastercache": "FasterCacheConfig", "pab": "PyramidAttentionBroadcastConfig",
}
# MagCache's magnitude ratios are calibrated per checkpoint; diffusers 0.42 ships them for Flux only
MAGCACHE_RATIOS: dict[str, str] = {"FluxTransformer2DModel": "FLUX_MAG_RATIOS"}


def sort_of(setting: KnobSetting) -> str:
    """``adaptive``, ``fixed`` or ``none``."""
    if setting.name in ADAPTIVE_POLICIES:
        return ADAPTIVE
    if setting.name in FIXED_POLICIES:
        return FIXED
    return NONE


def has_cache_mixin(denoiser_class: str) -> bool | None:
    """Whether diffusers' class ``denoiser_class`` has ``CacheMixin`` (``enable_cache``); None when diffusers has
    no such class. Imports diffusers."""
    import diffusers
    from diffusers.models.cache_utils import CacheMixin

    cls = getattr(diffusers, denoiser_class, None)
    if not isinstance(cls, type):
        return None
    return issubclass(cls, CacheMixin)


def cache_families() -> dict[str, bool]:
    """Each ldmpick family -> whether (every) denoiser class it serves has ``CacheMixin``, read from diffusers."""
    from ldmpick.models.families import FAMILIES

    return {name: all(has_cache_mixin(c) for c in family.denoiser_classes) for name, family in FAMILIES.items()}


def diffusers_config(setting: KnobSetting, steps: int | None = None, denoiser_class: str | None = None,
                     current_timestep: Callable[[], Any] | None = None) -> Any:
    """The diffusers config object of ``setting`` (None for no cache). ``steps`` is needed by MagCache (its ratios
    are interpolated to the run's step count), ``current_timestep`` by PAB and FasterCache (the pipeline's
    ``current_timestep``), ``denoiser_class`` by MagCache (whose ratios are per checkpoint family)."""
    if setting.name == NONE:
        return None
    from diffusers import hooks

    if setting.name == "fbcache":
        return hooks.FirstBlockCacheConfig(threshold=setting.param("threshold"))
    if setting.name == "taylorseer":
        scope = setting.param("scope")
        patterns = TAYLORSEER_SCOPES[scope]
        return hooks.TaylorSeerCacheConfig(
            cache_interval=setting.param("interval"), max_order=setting.param("order"),
            disable_cache_before_step=setting.param("warmup"),
            cache_identifiers=list(patterns) if patterns else None, use_lite_mode=scope == "lite")
    if setting.name == "magcache":
        if steps is None:
            raise ValueError("MagCache needs the run's step count")
        ratios_name = MAGCACHE_RATIOS.get(denoiser_class or "")
        if ratios_name is None:
            raise UsageError(_magcache_issue(denoiser_class or "this denoiser"))
        from diffusers.hooks import mag_cache

        return hooks.MagCacheConfig(threshold=setting.param("threshold"), max_skip_steps=setting.param("max_skip"),
                                    retention_ratio=setting.param("retention"), num_inference_steps=steps,
                                    mag_ratios=getattr(mag_cache, ratios_name))
    if current_timestep is None:
        raise ValueError(f"{setting.name} needs the pipeline's current timestep")
    window = (setting.param("low"), setting.param("high"))
    if setting.name == "pab":
        return hooks.PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=setting.param("skip"), spatial_attention_timestep_skip_range=window,
            current_timestep_callback=current_timestep)
    if setting.name == "fastercache":
        # ldmpick's families run one denoiser evaluation per conditioning (no concatenated CFG batch for the
        # unconditional-batch skip to halve): diffusers' guidance-distilled path, attention skipping only
        return hooks.FasterCacheConfig(
            spatial_attention_block_skip_range=setting.param("skip"), spatial_attention_timestep_skip_range=window,
            current_timestep_callback=current_timestep, is_guidance_distilled=True,
            attention_weight_callback=lambda _module: 0.5)
    raise KeyError(setting.name)


def apply_cache(setting: KnobSetting, denoiser: Any, steps: int | None = None,
                current_timestep: Callable[[], Any] | None = None) -> Applied:
    """Enable ``setting`` on ``denoiser`` through its own ``enable_cache``."""
    config = diffusers_config(setting, steps, type(denoiser).__name__, current_timestep)
    if config is None:
        return Applied(setting, "no cache")
    if not hasattr(denoiser, "enable_cache"):
        raise UsageError(f"{setting.text}: {_no_mixin(type(denoiser).__name__)}")
    denoiser.enable_cache(config)
    return Applied(setting, f"{type(config).__name__} enabled on {type(denoiser).__name__}")


def _no_mixin(denoiser_class: str) -> str:
    return (f"a {denoiser_class} has no diffusers cache (no CacheMixin: enable_cache is offered by the Flux, "
            "Flux2, Chroma, Qwen-Image and CogView4 transformers, among others)")


def _magcache_issue(denoiser_class: str) -> str:
    return (f"MagCache needs magnitude ratios calibrated for the checkpoint; diffusers ships them for "
            f"{', '.join(MAGCACHE_RATIOS)} only, not for {denoiser_class}")


def _taylorseer_full(step: int, warmup: int, interval: int) -> bool:
    # diffusers.hooks.taylorseer_cache.TaylorSeerCacheHook._measure_should_compute (0.42.1)
    return step < warmup or (step - warmup - 1) % interval == 0


def _windowed_full(step: int, t: float, setting: KnobSetting) -> bool:
    inside = setting.param("low") < t < setting.param("high")
    skip = setting.param("skip")
    if setting.name == "pab":  # PyramidAttentionBroadcastHook.new_forward
        return step == 0 or not inside or step % skip == 0
    return not inside or (step > 0 and step % skip == 0)  # FasterCacheBlockHook.new_forward


class CacheKind:
    name = "cache"
    summary = "a diffusers cache policy on the denoiser (enable_cache): fewer full steps, some quality cost"
    policies = POLICIES

    def default(self, device: str) -> KnobSetting:
        return KnobSetting(self.name, NONE)

    def trait(self, setting: KnobSetting) -> str:
        return f"cache:{sort_of(setting)}"

    def device_issue(self, setting: KnobSetting, device: DeviceFacts) -> str | None:
        return None  # diffusers' cache hooks are plain PyTorch: any device

    def denoiser_issue(self, setting: KnobSetting, denoiser_class: str) -> str | None:
        if setting.name == NONE:
            return None
        mixin = has_cache_mixin(denoiser_class)
        if mixin is None:
            return f"'{denoiser_class}' is not a diffusers model class"
        if not mixin:
            return _no_mixin(denoiser_class)
        if setting.name == "magcache" and denoiser_class not in MAGCACHE_RATIOS:
            return _magcache_issue(denoiser_class)
        return None

    def apply(self, setting: KnobSetting, pipeline: Any, device: str, steps: int | None = None) -> Applied:
        return apply_cache(setting, denoiser_of(pipeline), steps, lambda: pipeline.current_timestep)

    def schedule(self, setting: KnobSetting, steps: int, timesteps: list[float] | None = None) -> LatencySchedule:
        """Which of ``steps`` steps run in full. PAB and FasterCache need the sampler's ``timesteps`` (on the
        0-1000 scale the pipeline's ``current_timestep`` reports)."""
        sort = sort_of(setting)
        if sort == NONE:
            return every_step(steps, "no cache")
        if setting.name == "fbcache":
            return LatencySchedule(ADAPTIVE, steps, (0,) if steps else (),
                                   "the first step runs in full; later ones skip by content (skip rate from data)")
        if setting.name == "magcache":
            keep = min(steps, int(setting.param("retention") * steps + 0.5))
            return LatencySchedule(ADAPTIVE, steps, tuple(range(keep)),
                                   f"the first {keep} steps run in full (retention); later ones skip by content "
                                   "(skip rate from data)")
        if setting.name == "taylorseer":
            warmup, interval = setting.param("warmup"), setting.param("interval")
            full = tuple(i for i in range(steps) if _taylorseer_full(i, warmup, interval))
            what = {"attention": "the attention modules are predicted (the rest of each block runs)",
                    "blocks": "whole blocks are predicted", "lite": "diffusers' lite pattern is predicted"}
            return LatencySchedule(FIXED, steps, full, f"TaylorSeer: {warmup} warm-up steps, then one full step "
                                   f"every {interval}; on cached steps {what[setting.param('scope')]}")
        if timesteps is None or len(timesteps) != steps:
            raise ValueError(f"{setting.name}'s schedule needs the sampler's {steps} timesteps")
        full = tuple(i for i, t in enumerate(timesteps) if _windowed_full(i, float(t), setting))
        return LatencySchedule(FIXED, steps, full, f"{setting.name}: attention recomputed every "
                               f"{setting.param('skip')} steps while the timestep is in ({setting.param('low')}, "
                               f"{setting.param('high')}); other layers run every step")

    def latency_basis(self, setting: KnobSetting) -> str:
        sort = sort_of(setting)
        if sort == FIXED:
            return ("exact: the schedule's full and cached step counts times a full step and a cached step "
                    "measured on this device (profile --knobs)")
        if sort == ADAPTIVE:
            return ("a skip rate from data (published rows or the user's own generate runs, recorded per run) times "
                    "measured full and cached step costs; without one, unmeasured")
        return "the measured step cost"

    def quality_basis(self, setting: KnobSetting) -> str:
        if setting.name == NONE:
            return "none: no cache"
        return ("published rows mapped to this diffusers config (ldmpick/data/knob_effects.csv: a change against "
                "the source's own baseline), or the user's calibration (calibrate --knobs); else unmeasured")


KIND = CacheKind()
