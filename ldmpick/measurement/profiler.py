"""The latency profiler: what one denoising step, the text encoder, the VAE decode and each sampler cost here.

Models are built from their configs with random weights directly on the target device (weights do not change
latency). Timing follows torch.utils.benchmark and hyperfine: warm up, synchronize, repeat until a repeat count or
a per-model time cap, keep raw samples, report median / p10 / p90 / IQR. On CUDA, CUDA events time each call.
"""

from __future__ import annotations

import gc
import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from ldmpick.models.catalogue import ModelSpec, check_distinct_names, resolve_model
from ldmpick.files.errors import UsageError
from ldmpick.hardware.execution import (DTYPES, available_memory_bytes, check_dtype, check_mode, default_device,
                               make_denoiser_runner)
from ldmpick.models.families.base import TextEncoder, constructor_args, count_params
from ldmpick.profiles.schema import LatencyStats, ModelLatency, Profile, SamplerOverhead, Settings
from ldmpick.models.samplers import get_sampler, make_scheduler
from ldmpick.measurement.timer import SLOW_MIN_RUNS, WARMUP_SECONDS, Timer  # noqa: F401 (re-exported)

SAMPLER_STEPS = 20  # steps of the loop timed per sampler repetition
# Timing budgets (see Timer.measure): the denoiser step, paid once per sampling step, gets the whole --max-seconds;
# each fixed part (text-encoder stack, VAE decode), paid once per image, a quarter of it; each sampler loop a tenth.
FIXED_PART_SHARE = 0.25
SAMPLER_SHARE = 0.1
# A model is not built when its weights, plus a share for activations and workspace, exceed free memory.
ACTIVATION_OVERHEAD = 1.25
WORKSPACE_BYTES = 512 * 2**20

ProgressFn = Callable[[str], None]  # called with a label each time one unit of work is done


@dataclass
class ProfileRequest:
    models: list[str]
    device: str = "cpu"
    dtype: str = "fp32"
    resolution: int = 512
    batch: int = 1
    cfg: bool = True
    mode: str = "eager"
    samplers: list[str] | None = None  # None: each model's own samplers (its family's, lcm/scm when distilled)
    warmup: int = 3
    repeats: int = 20
    min_repeats: int = 5
    max_seconds_per_model: float = 20.0
    threads: int | None = None
    command: str = ""
    rounds: int = 1  # >1: measure the models round-robin, repeats/rounds samples each time, and pool the samples
    # a model with weights: its own pipeline call end to end, warm at two step counts and in fresh processes
    pipeline_call: bool = True
    call_steps: tuple[int, int] = (2, 8)
    fresh_processes: int = 5
    # profile --knobs: knob lists (canonical text, ``knob_steps.parse_knob_sets``) measured on each model's denoiser
    knob_sets: list[str] = field(default_factory=list)

    def settings(self) -> Settings:
        return Settings(
            device=self.device,
            dtype=self.dtype,
            resolution=self.resolution,
            batch=self.batch,
            cfg=self.cfg,
            mode=self.mode,
            warmup=self.warmup,
            repeats=self.repeats,
            max_seconds_per_model=self.max_seconds_per_model,
            threads=self.threads,
            rounds=self.rounds,
        )

    def samplers_for(self, spec: ModelSpec) -> list[str]:
        """The samplers ``spec`` is costed with: those that fit it, restricted to the asked ones."""
        fitting = spec.adapter.fitting_samplers(spec)
        return fitting if self.samplers is None else [s for s in self.samplers if s in fitting]

    def work_units(self, specs: list[ModelSpec] | None = None) -> int:
        """Units reported to the progress callback: each model's fixed parts + samplers + models x rounds, and for
        each model with weights its warm pipeline calls and each fresh process."""
        specs = specs if specs is not None else [resolve_model(m) for m in self.models]
        samplers = {s for spec in specs for s in self.samplers_for(spec)}
        calls = sum(1 + self.fresh_processes for spec in specs if self.measures_call(spec))
        knobs = len(specs) if self.knob_sets else 0
        return len(specs) + len(samplers) + len(specs) * self.rounds + calls + knobs

    def measures_call(self, spec: ModelSpec) -> bool:
        """Whether this run measures ``spec``'s own pipeline call (it needs the model's weights and tokenizers)."""
        return self.pipeline_call and spec.has_weights and spec.path is not None and bool(self.samplers_for(spec))


def validate_request(req: ProfileRequest) -> list[ModelSpec]:
    """Check everything before any model is built; resolve the model names."""
    import torch

    if req.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {req.device}: no CUDA GPU is available here; use --device cpu")
        idx = int(req.device.split(":")[1]) if ":" in req.device else 0
        if idx >= torch.cuda.device_count():
            raise UsageError(f"--device {req.device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif req.device != "cpu":
        raise UsageError(f"unknown device '{req.device}'; use cpu, cuda or cuda:N")
    check_dtype(req.dtype, req.device)
    check_mode(req.mode, req.device)
    if req.batch < 1 or req.batch > 64:
        raise UsageError(f"--batch must be between 1 and 64 (got {req.batch})")
    if req.warmup < 0 or req.repeats < 1:
        raise UsageError("--warmup must be >= 0 and --repeats >= 1")
    if not req.models:
        raise UsageError("no models to profile")
    low, high = req.call_steps
    if not 1 <= low < high <= 1000:
        raise UsageError(f"--call-steps must be two step counts, the lower first, in 1..1000 (got {low},{high})")
    if not 0 <= req.fresh_processes <= 100:
        raise UsageError(f"--fresh-runs must be between 0 and 100 (got {req.fresh_processes})")
    if req.samplers is not None and not req.samplers:
        raise UsageError("no samplers to profile")
    for s in req.samplers or []:
        get_sampler(s)
    specs = [resolve_model(m) for m in req.models]
    check_distinct_names(req.models, specs)
    for spec in specs:
        check_resolution(req.resolution, spec)
        if req.samplers is not None and not req.samplers_for(spec):
            fitting = ", ".join(spec.adapter.fitting_samplers(spec))
            raise UsageError(f"none of the samplers asked for fits '{spec.name}' ({spec.family} family); "
                             f"it takes: {fitting}")
        if req.mode not in spec.adapter.fast_modes:
            raise UsageError(f"mode '{req.mode}' is not supported for the {spec.family} family "
                             f"(it supports {', '.join(spec.adapter.fast_modes)})")
    return specs


MAX_RESOLUTION = 4096


def check_resolution(resolution: int, spec: ModelSpec) -> None:
    """Image sides must be multiples of the model's resolution multiple (VAE factor x denoiser downsampling or
    patch size), within 1x that multiple and 4096 pixels. One rule for profiling and generation."""
    multiple, factor = spec.resolution_multiple, spec.vae_scale_factor
    if resolution < multiple or resolution > MAX_RESOLUTION:
        raise UsageError(f"--resolution {resolution} is out of range ({multiple}..{MAX_RESOLUTION} pixels)")
    if resolution % multiple:
        lower = resolution // multiple * multiple
        grid = factor * spec.adapter.patch_size(spec)
        why = (f"the VAE of '{spec.name}' downsamples by {factor}" if multiple == factor else
               f"model '{spec.name}': VAE factor {factor} x patch {grid // factor}" if multiple == grid else
               f"the {spec.family} pipeline takes multiples of {spec.adapter.pipeline_multiple}")
        raise UsageError(f"--resolution {resolution} is not a multiple of {multiple} ({why}); "
                         f"try {lower or multiple} or {lower + multiple}")
    made = spec.adapter.generated_resolution(spec, resolution)
    if made != resolution:  # HiDream: a 512 px request made a 1024 px image, recorded and predicted as 512
        raise UsageError(f"--resolution {resolution}: the {spec.family} pipeline generates {made} px whatever size is "
                         f"asked (it rescales to its native area); give --resolution {made}")


# ---------------------------------------------------------------------------------------------- timing


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text
    )


def free_memory(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


BYTES_PER = {"fp16": 2, "bf16": 2, "fp32": 4}


# ---------------------------------------------------------------------------------------------- builders


@contextmanager
def skipped_weight_init() -> Iterator[None]:
    """Build modules without running their weight initialisers (seconds, not minutes, for billions of parameters
    on a CPU); the caller fills the weights afterwards (``randomize``)."""
    import torch

    names = ("uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "xavier_uniform_",
             "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_")
    saved = {n: getattr(torch.nn.init, n) for n in names if hasattr(torch.nn.init, n)}

    def keep(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor

    for n in saved:
        setattr(torch.nn.init, n, keep)
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(torch.nn.init, n, fn)


def randomize(module: Any) -> Any:
    """Fill every floating-point parameter with N(0, 0.02) noise: latency does not depend on the values, but
    uninitialised memory could hold NaNs or denormals, which are slow on CPUs."""
    import torch

    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point():
                p.normal_(0.0, 0.02)
    return module


def text_encoder_params(enc: TextEncoder) -> int:
    return count_params("transformers", enc.class_name, enc.config)


def vae_params(spec: ModelSpec) -> int:
    return count_params("diffusers", spec.adapter.vae_class(spec), spec.adapter.vae_config(spec))


class ModuleFactory:
    """Builds the modules of a model on the target device with random weights. Tests may substitute it."""

    def __init__(self, device: str, dtype: str):
        import torch
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()  # random-weight builds trigger harmless casting notices
        try:
            from transformers.utils import logging as transformers_logging

            transformers_logging.set_verbosity_error()
        except Exception:  # pragma: no cover - cosmetic only
            pass
        self.torch = torch
        self.device = device
        self.dtype_name = dtype
        self.dtype = getattr(torch, DTYPES[dtype])

    def _build(self, make: Callable[[], Any], dtype: Any = None) -> Any:
        torch = self.torch
        dtype = dtype or self.dtype
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(self.device), skipped_weight_init():
                module = make()
        finally:
            torch.set_default_dtype(previous)
        return randomize(module.to(dtype=dtype)).eval().requires_grad_(False)

    def denoiser(self, spec: ModelSpec) -> Any:
        import diffusers

        cls = getattr(diffusers, spec.adapter.denoiser_class(spec))
        return self._build(lambda: cls.from_config(constructor_args(spec.denoiser_config)))

    def unet(self, spec: ModelSpec) -> Any:
        return self.denoiser(spec)

    def text_encoder(self, enc: TextEncoder) -> Any:
        import transformers

        cls = getattr(transformers, enc.class_name)
        return self._build(lambda: cls(cls.config_class(**constructor_args(enc.config))))

    def vae(self, spec: ModelSpec, dtype: str | None = None) -> Any:
        import diffusers

        cls = getattr(diffusers, spec.adapter.vae_class(spec))
        torch_dtype = getattr(self.torch, DTYPES[dtype]) if dtype else None
        return self._build(lambda: cls.from_config(constructor_args(spec.adapter.vae_config(spec))), torch_dtype)


# ---------------------------------------------------------------------------------------------- profiling


def _too_big(params: int, dtype: str, device: str, what: str) -> str | None:
    """Why a module of ``params`` parameters cannot be built on ``device`` now, or None when it fits."""
    weight_bytes = params * BYTES_PER[dtype]
    free = available_memory_bytes(device)
    needed = weight_bytes * ACTIVATION_OVERHEAD + WORKSPACE_BYTES
    if free is not None and needed > free:
        return (f"{what} needs about {needed / 2**30:.1f} GiB ({weight_bytes / 2**30:.1f} GiB of weights "
                f"x {ACTIVATION_OVERHEAD:g} for activations + {WORKSPACE_BYTES / 2**30:.1f} GiB of workspace), "
                f"{free / 2**30:.1f} GiB free")
    return None


@dataclass
class EnergyLog:
    """Joules per call of each measured part, from NVML's energy counter (``ldmpick.hardware.energy``), read after
    each part's timing: ``meter`` is None off NVIDIA GPUs, and then nothing is measured or written."""

    meter: Any = None  # hardware.energy.EnergyMeter | None
    joules: dict[tuple[str, str], float] = field(default_factory=dict)

    def measure(self, key: tuple[str, str], fn: Callable[[], Any], median_ms: float, timer: Timer) -> None:
        if self.meter is None:
            return
        from ldmpick.hardware.energy import joules_per_call

        j = joules_per_call(self.meter, fn, median_ms / 1e3, synchronize=timer.sync)
        if j is not None:
            self.joules[key] = j

    def block(self, model: str, te_key: str, vae_key: str, sampler: str | None) -> dict[str, Any] | None:
        """A model's energy block, only when all four parts were read."""
        parts = (self.joules.get(("denoiser", model)), self.joules.get(("fixed", te_key)),
                 self.joules.get(("fixed", vae_key)), self.joules.get(("sampler", sampler or "")))
        if self.meter is None or any(p is None for p in parts):
            return None
        return {**dict(zip(("denoiser_step_j", "text_encoder_j", "vae_decode_j", "sampler_step_j"), parts)),
                "device": self.meter.device}


def model_entry(spec: ModelSpec, req: ProfileRequest) -> ModelLatency:
    """A model's profile entry before anything is measured: what it is and how it is run."""
    return ModelLatency(name=spec.name, status="ok", denoiser_params=spec.denoiser_params, source=spec.source,
                        family=spec.family, cfg=spec.adapter.uses_cfg(spec, req.cfg), distilled=spec.distilled,
                        samplers=req.samplers_for(spec))


def measure_denoiser(spec: ModelSpec, req: ProfileRequest, factory: ModuleFactory, timer: Timer,
                     base: ModelLatency, energy: EnergyLog | None = None) -> ModelLatency:
    """One model's denoiser step (one evaluation at batch x (2 when this model doubles it for CFG)) added to its
    entry ``base``, or ``does_not_fit``."""
    torch = factory.torch
    adapter = spec.adapter
    params = spec.denoiser_params
    base = replace(base, weight_bytes=params * BYTES_PER[req.dtype])
    reason = _too_big(params, req.dtype, req.device, "denoiser")
    if reason:
        return replace(base, status="does_not_fit", denoiser_step=None, error=reason)
    denoiser = runner = None
    try:
        if req.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(req.device)
        denoiser = factory.denoiser(spec)
        if req.device.startswith("cuda"):  # the peak of generation: weights in the target dtype + activations
            torch.cuda.synchronize(req.device)
            torch.cuda.reset_peak_memory_stats(req.device)
        batch = req.batch * adapter.evals_per_step(spec, req.cfg)
        inputs = adapter.denoiser_inputs(spec, batch, req.resolution, req.device, factory.dtype)
        with torch.no_grad():
            runner = make_denoiser_runner(denoiser, req.mode, req.device)
            step = timer.measure(lambda: runner(**inputs, return_dict=False), req.warmup, req.repeats,
                                 req.max_seconds_per_model, req.min_repeats)
            if energy is not None:
                energy.measure(("denoiser", spec.name), lambda: runner(**inputs, return_dict=False), step.median_ms,
                               timer)
        base = replace(base, denoiser_step=step)
        if req.device.startswith("cuda"):
            base.peak_memory_bytes = int(torch.cuda.max_memory_allocated(req.device))
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        base = replace(base, status="does_not_fit", denoiser_step=None, error=" ".join(str(exc).split())[:200])
    finally:
        del denoiser, runner
        free_memory(req.device)
    return base


def encoder_stack(spec: ModelSpec, lengths: dict[str, int] | None = None) -> list[TextEncoder]:
    """The model's text encoders, each at the length its pipeline was seen to feed it (``lengths``, from its own
    call) where that is known, else at the adapter's stated length."""
    return [replace(e, seq_len=(lengths or {}).get(e.component, e.seq_len)) for e in spec.adapter.text_encoders(spec)]


def stack_label(encoders: list[TextEncoder], seen: bool = False) -> str:
    how = ", as its pipeline encoded the profile's prompt" if seen else ""
    return " + ".join(f"{e.label} ({e.seq_len} tokens{how})" for e in encoders)


def measure_text_encoders(spec: ModelSpec, req: ProfileRequest, factory: ModuleFactory,
                          timer: Timer, energy: EnergyLog | None = None, key: str = "",
                          lengths: dict[str, int] | None = None) -> LatencyStats | str:
    """The model's whole text-encoder stack as its pipeline runs it (each encoder at its own sequence length, or at
    ``lengths`` seen in its own call; the prompt and, with CFG, the negative prompt), one encoder resident at a time.
    A string says why it did not fit."""
    torch = factory.torch
    calls = spec.adapter.encoder_calls(spec, req.cfg)
    total: list[float] | None = None
    stack_joules: list[float | None] = []
    for enc in encoder_stack(spec, lengths):
        reason = _too_big(text_encoder_params(enc), req.dtype, req.device, f"text encoder {enc.label}")
        if reason:
            return reason
        te = None
        try:
            te = factory.text_encoder(enc)
            ids = torch.randint(0, enc.vocab_size, (req.batch, enc.seq_len), device=req.device)

            def encode() -> None:
                for _ in range(calls):
                    spec.adapter.encode(spec, enc, te, ids)

            with torch.no_grad():
                stats = timer.measure(encode, req.warmup, req.repeats, req.max_seconds_per_model * FIXED_PART_SHARE,
                                      min(3, req.min_repeats))
                if energy is not None and energy.meter is not None:  # the stack's joules: each encoder's
                    part = EnergyLog(energy.meter)
                    part.measure(("fixed", key), encode, stats.median_ms, timer)
                    stack_joules.append(part.joules.get(("fixed", key)))
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            return f"text encoder {enc.label}: {' '.join(str(exc).split())[:160]}"
        finally:
            del te
            free_memory(req.device)
        # the stack's cost: encoders run one after the other, so their sample series add up position by position
        samples = stats.samples_ms
        total = list(samples) if total is None else [a + b for a, b in zip(total, _resample(samples, len(total)))]
    if energy is not None and stack_joules and all(j is not None for j in stack_joules):
        energy.joules[("fixed", key)] = sum(j for j in stack_joules if j is not None)
    return LatencyStats.from_samples(total or [0.0])


def _resample(xs: list[float], n: int) -> list[float]:
    """``xs`` stretched or cut to ``n`` items (encoders of a stack may stop after different repeat counts)."""
    return [xs[i * len(xs) // n] for i in range(n)]


def measure_vae_decode(spec: ModelSpec, req: ProfileRequest, factory: ModuleFactory,
                       timer: Timer, energy: EnergyLog | None = None, key: str = "") -> LatencyStats | str:
    """The model's VAE decode as its pipeline runs it (scaling, shift, Flux unpacking, SDXL's fp32 upcast)."""
    torch = factory.torch
    adapter = spec.adapter
    dtype = adapter.vae_decode_dtype(spec, req.dtype)
    reason = _too_big(vae_params(spec), dtype, req.device, "VAE")
    if reason:
        return reason
    vae = None
    try:
        vae = factory.vae(spec, dtype)
        z = adapter.decode_latents(spec, req.batch, req.resolution, req.device, getattr(torch, DTYPES[dtype]))
        with torch.no_grad():
            stats = timer.measure(lambda: adapter.decode(vae, z), max(1, req.warmup), max(3, req.repeats // 2),
                                  req.max_seconds_per_model * FIXED_PART_SHARE, min(3, req.min_repeats))
            if energy is not None:
                energy.measure(("fixed", key), lambda: adapter.decode(vae, z), stats.median_ms, timer)
            return stats
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        return f"VAE decode: {' '.join(str(exc).split())[:160]}"
    finally:
        del vae
        free_memory(req.device)


def measure_sampler(name: str, spec: ModelSpec, req: ProfileRequest, factory: ModuleFactory, timer: Timer,
                    energy: EnergyLog | None = None) -> SamplerOverhead:
    """Per sampling step: ``scale_model_input`` + guidance combine + ``scheduler.step``, over a full loop, on the
    latents of ``spec`` (the first profiled model this sampler fits)."""
    torch = factory.torch
    sampler = get_sampler(name)
    adapter = spec.adapter
    latents = adapter.decode_latents(spec, req.batch, req.resolution, req.device, factory.dtype)
    cfg = adapter.uses_cfg(spec, req.cfg)
    gen = torch.Generator(device=req.device).manual_seed(0)
    x0 = torch.randn(latents.shape, generator=gen, device=req.device, dtype=factory.dtype)
    pred = torch.randn((latents.shape[0] * (2 if cfg else 1),) + tuple(latents.shape[1:]), generator=gen,
                       device=req.device, dtype=factory.dtype)

    steps = 2 if name == "scm" else SAMPLER_STEPS  # SCM's default schedule (as SANA-Sprint runs it) is 2 steps

    def loop() -> None:
        scheduler = make_scheduler(name, spec.scheduler_config)
        scheduler.set_timesteps(steps, device=req.device,
                                **adapter.timestep_kwargs(spec, scheduler, req.resolution))
        x = x0
        # every call a run of `steps` makes (Heun: 2 x steps - 1; SCM lists the end point too: steps + 1)
        for t in scheduler.timesteps[:sampler.evaluations(steps)]:
            if hasattr(scheduler, "scale_model_input"):
                scheduler.scale_model_input(x, t)
            if cfg:
                uncond, cond = pred.chunk(2)
                eps = uncond + 7.5 * (cond - uncond)
            else:
                eps = pred
            x = scheduler.step(eps, t, x, return_dict=False)[0]

    with torch.no_grad():
        loops = timer.measure(loop, 1, max(3, req.repeats // 2), req.max_seconds_per_model * SAMPLER_SHARE, 3)
        if energy is not None:
            energy.measure(("sampler", name), loop, loops.median_ms, timer)
            if ("sampler", name) in energy.joules:  # per step, as the overhead is
                energy.joules[("sampler", name)] /= steps
    per_step = [s / steps for s in loops.samples_ms]
    return SamplerOverhead(name=name, evals_per_step=sampler.evals_per_step,
                           step_overhead=LatencyStats.from_samples(per_step))


def call_request(spec: ModelSpec, req: ProfileRequest) -> Any:  # -> pipeline_call.CallRequest
    """How ``spec``'s pipeline call is measured: with its own scheduler's sampler when the run costs it (else the
    first sampler that fits), guided as the profile's setting says, at the request's two step counts (moved up to
    the model's fewest steps)."""
    from ldmpick.measurement.pipeline_call import CallRequest
    from ldmpick.models.samplers import sampler_for_scheduler

    fitting = req.samplers_for(spec)
    own = sampler_for_scheduler(spec.component_classes.get("scheduler") or "", spec.scheduler_config)
    sampler = own if own in fitting else fitting[0]
    low, high = req.call_steps
    shift = max(0, spec.adapter.min_steps(spec) - low)
    guided = spec.adapter.uses_cfg(spec, req.cfg) or spec.adapter.guidance_distilled(spec)
    return CallRequest(device=req.device, dtype=req.dtype, mode=req.mode, resolution=req.resolution, batch=req.batch,
                       guidance=spec.guidance if guided else 1.0, sampler=sampler, steps=(low + shift, high + shift),
                       repeats=max(3, req.repeats // 2), max_seconds=req.max_seconds_per_model,
                       fresh_processes=req.fresh_processes, threads=req.threads)


def measure_call(spec: ModelSpec, req: ProfileRequest, tick: ProgressFn) -> tuple[Any, str | None, dict[str, int]]:
    """``spec``'s pipeline call as a profile block (``PipelineCall``), or None and why it was not measured; and the
    tokens its pipeline fed each text encoder."""
    from ldmpick.files.errors import LdmpickError
    from ldmpick.measurement.pipeline_call import measure_pipeline_call
    from ldmpick.profiles.call_block import pipeline_call_of

    creq = call_request(spec, req)
    try:
        measured = measure_pipeline_call(spec, creq, progress=tick)
    except LdmpickError as exc:
        for _ in range(1 + req.fresh_processes):
            tick(f"{spec.name} pipeline call (not measured)")
        return None, f"{spec.name}: its pipeline call was not measured ({' '.join(str(exc).split())[:300]})", {}
    for _ in range(req.fresh_processes - len(measured.first)):  # failed fresh processes are units done too
        tick(f"{spec.name} pipeline call (fresh process failed)")
    return pipeline_call_of(measured), None, measured.encoder_lengths


def _pool(rounds: list[ModelLatency]) -> ModelLatency:
    """One model's rounds as one measurement: all samples pooled; a round that did not fit decides."""
    bad = next((m for m in rounds if not m.ok), None)
    if bad is not None:
        return bad
    first = rounds[0]
    samples = [x for m in rounds for x in (m.denoiser_step.samples_ms if m.denoiser_step else [])]
    peaks = [m.peak_memory_bytes for m in rounds if m.peak_memory_bytes is not None]
    return replace(first, denoiser_step=LatencyStats.from_samples(samples), peak_memory_bytes=max(peaks) if peaks else None)


class FixedParts:
    """Each model's text-encoder stack and VAE decode, measured once per distinct configuration in a run (the
    paper's family shares SD's; SD3 and Flux share T5-XXL but not the rest of the stack)."""

    def __init__(self, req: ProfileRequest, factory: ModuleFactory, timer: Timer, energy: EnergyLog | None = None):
        self.req, self.factory, self.timer, self.energy = req, factory, timer, energy
        self.cache: dict[str, LatencyStats | str] = {}
        self.keys: dict[str, tuple[str, str]] = {}  # model -> its (text-encoder, VAE) configuration keys

    def _key(self, *parts: Any) -> str:
        return json.dumps(parts, sort_keys=True, default=str)

    def measure(self, spec: ModelSpec, base: ModelLatency) -> ModelLatency:
        adapter = spec.adapter
        encoders = adapter.text_encoders(spec)
        te_key = self._key("te", [(e.class_name, e.config, e.seq_len) for e in encoders],
                           adapter.encoder_calls(spec, self.req.cfg))
        vae_key = self._key("vae", adapter.vae_class(spec), adapter.vae_config(spec), adapter.name,
                            adapter.vae_decode_dtype(spec, self.req.dtype))
        self.keys[spec.name] = (te_key, vae_key)
        if te_key not in self.cache:
            self.cache[te_key] = measure_text_encoders(spec, self.req, self.factory, self.timer, self.energy, te_key)
        if vae_key not in self.cache:
            self.cache[vae_key] = measure_vae_decode(spec, self.req, self.factory, self.timer, self.energy, vae_key)
        te, vae = self.cache[te_key], self.cache[vae_key]
        model = replace(base, text_encoders=stack_label(encoders))
        problems = [x for x in (te, vae) if isinstance(x, str)]
        if problems:
            return replace(model, status="does_not_fit", denoiser_step=None, error="; ".join(problems))
        return replace(model, text_encoder=te, vae_decode=vae)


def check_resumable(partial: Profile, fingerprint: dict[str, Any], models: list[str], samplers: set[str]) -> None:
    """A partial profile is resumed only by the run it belongs to: the same device (its timings would otherwise be
    stamped with this machine's fingerprint) and no models or samplers this run does not ask for (they would be
    merged into a profile of another request)."""
    from ldmpick.profiles.device_block import device_key

    if device_key(partial.device) != device_key(fingerprint):
        raise UsageError(f"cannot resume: the partial profile was measured on another device "
                         f"({partial.device_name}); its timings are not this machine's: start afresh with --restart")
    extra = [m.name for m in partial.models if m.name not in models]
    if extra:
        raise UsageError(f"cannot resume: the partial profile holds model(s) this run does not ask for "
                         f"({', '.join(extra)}); rerun with the same --models, or start afresh with --restart")
    extra = [s.name for s in partial.samplers if s.name not in samplers]
    if extra:
        raise UsageError(f"cannot resume: the partial profile holds sampler(s) this run does not ask for "
                         f"({', '.join(extra)}); rerun with the same --samplers, or start afresh with --restart")


def run_profile(
    req: ProfileRequest,
    progress: ProgressFn | None = None,
    checkpoint: Callable[[Profile], None] | None = None,
    resume_from: Profile | None = None,
    factory: ModuleFactory | None = None,
) -> Profile:
    """Measure everything ``req`` asks for and return the profile.

    ``checkpoint`` receives the partial profile after each completed unit, so that an interrupted run keeps its
    measurements; ``resume_from`` (a partial profile with the same settings) skips what it already holds.
    """
    import torch

    from ldmpick.hardware.fingerprint import full_fingerprint

    from ldmpick.hardware.execution import apply_threads

    specs = validate_request(req)
    # the same thread policy as generate (so the profile predicts its runs); a resumed run keeps the partial's count
    apply_threads(req.threads or (resume_from.settings.threads if resume_from is not None else None))
    settings = req.settings()
    settings.threads = torch.get_num_threads()
    if resume_from is not None and resume_from.settings.key() != settings.key():
        raise UsageError(
            f"cannot resume: the partial profile was measured with {resume_from.settings.describe()}, "
            f"not {settings.describe()}"
        )
    fingerprint = full_fingerprint(req.device)
    if resume_from is not None:
        check_resumable(resume_from, fingerprint, [spec.name for spec in specs],
                        {name for spec in specs for name in req.samplers_for(spec)})
    factory = factory or ModuleFactory(req.device, req.dtype)
    timer = Timer(req.device)
    tick = progress or (lambda label: None)
    started = time.perf_counter()
    profile = Profile(
        settings=settings,
        device=fingerprint,
        models=list(resume_from.models) if resume_from else [],
        samplers=list(resume_from.samplers) if resume_from else [],
        created=resume_from.created if resume_from else datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        command=req.command,
        complete=False,
        run=resume_from.run if resume_from else secrets.token_hex(3),
        notes="each model with its own text-encoder stack and VAE decode; sampler overheads measured on the "
              "latents of the first model each sampler fits",
    )
    # a resumed run's wall time covers every session of it: the partial file carries the time spent so far
    earlier = (resume_from.wall_seconds or 0.0) if resume_from is not None else 0.0

    def save(p: Profile) -> None:
        p.wall_seconds = round(earlier + time.perf_counter() - started, 3)
        if checkpoint is not None:
            checkpoint(p)

    from ldmpick.hardware.energy import EnergyMeter

    energy = EnergyLog(EnergyMeter.open(req.device))  # None off NVIDIA GPUs: no energy measured or written
    fixed = FixedParts(req, factory, timer, energy)
    done_models = {m.name for m in profile.models}
    todo = [spec for spec in specs if spec.name not in done_models]
    with torch.inference_mode(False):
        for spec in specs:  # a model without an adapter: what its own call feeds each part, before any is measured
            if spec.family == "generic":
                from ldmpick.measurement.pipeline_call import capture_generic

                capture_generic(spec, req.device, req.dtype, req.resolution, req.batch, req.cfg)
        done_samplers = {s.name for s in profile.samplers}
        for spec in specs:
            for name in req.samplers_for(spec):
                if name not in done_samplers:
                    profile.samplers.append(measure_sampler(name, spec, req, factory, timer, energy))
                    done_samplers.add(name)
                    save(profile)
                    tick(f"sampler {name}")
        # fixed parts first (one unit per model), then the denoiser steps, round-robin when rounds > 1, so that a
        # slow drift of the machine hits every model alike; rounds are pooled at the end
        bases: dict[str, ModelLatency] = {}
        for spec in todo:
            bases[spec.name] = fixed.measure(spec, model_entry(spec, req))
            tick(f"{spec.name} text encoder and VAE")
        per_round = req if req.rounds <= 1 else replace(
            req, repeats=max(1, -(-req.repeats // req.rounds)), min_repeats=max(1, -(-req.min_repeats // req.rounds)),
            max_seconds_per_model=req.max_seconds_per_model / req.rounds)
        pooled: dict[str, list[ModelLatency]] = {}
        for r in range(req.rounds):
            for spec in todo:
                base = bases[spec.name]
                if base.status == "ok" and all(m.ok for m in pooled.get(spec.name, [])):
                    pooled.setdefault(spec.name, []).append(measure_denoiser(spec, per_round, factory, timer, base,
                                                                             energy))
                label = spec.name if req.rounds <= 1 else f"{spec.name} (round {r + 1}/{req.rounds})"
                if req.rounds <= 1:
                    profile.models.append(pooled[spec.name][0] if spec.name in pooled else base)
                    save(profile)
                tick(label)
        if req.rounds > 1:
            for spec in todo:
                profile.models.append(_pool(pooled[spec.name]) if spec.name in pooled else bases[spec.name])
            save(profile)
        # each model's knob variants (profile --knobs), on the denoiser its plain step was measured on
        if req.knob_sets:
            from ldmpick.measurement.knob_steps import measure_knob_variants

            for spec in todo:
                entry = next((m for m in profile.models if m.name == spec.name), None)
                if entry is not None and entry.ok and not entry.knobs:
                    entry.knobs, skipped = measure_knob_variants(spec, req, factory, timer, is_out_of_memory,
                                                                   free_memory)
                    for why in skipped:
                        profile.notes = f"{profile.notes}; {why}" if profile.notes else why
                    save(profile)
                tick(f"{spec.name} knobs")
        # each model's own pipeline call, end to end (what generate runs), once its parts are measured
        for spec in specs:
            entry = next((m for m in profile.models if m.name == spec.name), None)
            if entry is None or not entry.ok or entry.pipeline_call is not None or not req.measures_call(spec):
                continue
            entry.pipeline_call, why, lengths = measure_call(spec, req, tick)
            if why:
                profile.notes = f"{profile.notes}; {why}" if profile.notes else why
            stated = spec.adapter.text_encoders(spec)
            if any(lengths.get(e.component, e.seq_len) != e.seq_len for e in stated):
                # its pipeline encodes more (or fewer) tokens than the adapter states (SANA's instruction prefix, a
                # chat template): the stack again, at what the pipeline really fed it
                te = measure_text_encoders(spec, req, factory, timer, lengths=lengths)
                if not isinstance(te, str):
                    entry.text_encoder = te
                    entry.text_encoders = stack_label(encoder_stack(spec, lengths), seen=True)
            save(profile)
    for spec in todo:  # each model's energy block, where all four parts were read (NVIDIA GPUs only)
        entry = next((m for m in profile.models if m.name == spec.name), None)
        if entry is not None and entry.ok and spec.name in fixed.keys:
            samplers = req.samplers_for(spec)
            entry.energy = energy.block(spec.name, *fixed.keys[spec.name], samplers[0] if samplers else None)
    if energy.meter is not None:
        energy.meter.close()
    profile.models.sort(key=lambda m: m.denoiser_params)
    profile.complete = True
    profile.wall_seconds = round(earlier + time.perf_counter() - started, 3)
    return profile
