"""The latency profiler: what one denoising step, the text encoder, the VAE decode and each sampler cost here.

Models are built from their configs with random weights directly on the target device (weights do not change
latency). Timing follows torch.utils.benchmark and hyperfine: warm up, synchronize, repeat until a repeat count or
a per-model time cap, keep raw samples, report median / p10 / p90 / IQR. On CUDA, CUDA events time each call.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from ldmpick.catalogue import ModelSpec, _constructor_args, resolve_model
from ldmpick.errors import UsageError
from ldmpick.execution import DTYPES, check_mode, make_unet_runner
from ldmpick.profile_file import (
    LatencyStats,
    ModelLatency,
    Profile,
    SamplerOverhead,
    Settings,
)
from ldmpick.samplers import SAMPLERS, get_sampler, make_scheduler

SAMPLER_STEPS = 20  # steps of the loop timed per sampler repetition
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
    samplers: list[str] = field(default_factory=lambda: list(SAMPLERS))
    warmup: int = 3
    repeats: int = 20
    min_repeats: int = 5
    max_seconds_per_model: float = 20.0
    threads: int | None = None
    command: str = ""
    rounds: int = 1  # >1: measure the models round-robin, repeats/rounds samples each time, and pool the samples

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

    def work_units(self) -> int:
        """Units reported to the progress callback: fixed parts (2) + samplers + models x rounds."""
        return 2 + len(self.samplers) + len(self.models) * self.rounds


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def validate_request(req: ProfileRequest) -> list[ModelSpec]:
    """Check everything before any model is built; resolve the model names."""
    import torch

    if req.dtype not in DTYPES:
        from ldmpick.errors import unknown_name

        raise unknown_name("dtype", req.dtype, DTYPES)
    if req.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {req.device}: no CUDA GPU is available here; use --device cpu")
        idx = int(req.device.split(":")[1]) if ":" in req.device else 0
        if idx >= torch.cuda.device_count():
            raise UsageError(f"--device {req.device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif req.device != "cpu":
        raise UsageError(f"unknown device '{req.device}'; use cpu, cuda or cuda:N")
    if req.device == "cpu" and req.dtype == "fp16":
        raise UsageError("fp16 on the CPU is not a realistic deployment (and very slow); use --dtype fp32 or bf16")
    check_mode(req.mode, req.device)
    if req.batch < 1 or req.batch > 64:
        raise UsageError(f"--batch must be between 1 and 64 (got {req.batch})")
    if req.warmup < 0 or req.repeats < 1:
        raise UsageError("--warmup must be >= 0 and --repeats >= 1")
    if not req.models:
        raise UsageError("no models to profile")
    if not req.samplers:
        raise UsageError("no samplers to profile")
    for s in req.samplers:
        get_sampler(s)
    specs = [resolve_model(m) for m in req.models]
    for spec in specs:
        check_resolution(req.resolution, spec)
    return specs


def check_resolution(resolution: int, spec: ModelSpec) -> None:
    factor = spec.vae_scale_factor
    if resolution < factor * 4 or resolution > 4096:
        raise UsageError(f"--resolution {resolution} is out of range ({factor * 4}..4096 pixels)")
    if resolution % factor:
        raise UsageError(
            f"--resolution {resolution} is not a multiple of {factor} (the VAE of '{spec.name}' downsamples by {factor})"
        )


# ---------------------------------------------------------------------------------------------- timing


class Timer:
    """Times a callable on a device: CUDA events on GPU, perf_counter on CPU, synchronizing around each call."""

    def __init__(self, device: str):
        import torch

        self.torch = torch
        self.cuda = device.startswith("cuda")
        self.device = device

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def once(self, fn: Callable[[], Any]) -> float:
        """Milliseconds for one call of ``fn``."""
        if self.cuda:
            start = self.torch.cuda.Event(enable_timing=True)
            end = self.torch.cuda.Event(enable_timing=True)
            self.sync()
            start.record()
            fn()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    def measure(
        self, fn: Callable[[], Any], warmup: int, repeats: int, max_seconds: float, min_repeats: int = 3
    ) -> LatencyStats:
        """Warm up, then time ``fn`` until ``repeats`` samples or ``max_seconds`` (but at least ``min_repeats``)."""
        for _ in range(warmup):
            fn()
        self.sync()
        samples: list[float] = []
        started = time.perf_counter()
        min_repeats = min(min_repeats, repeats)
        while len(samples) < repeats:
            samples.append(self.once(fn))
            if len(samples) >= min_repeats and time.perf_counter() - started > max_seconds:
                break
        return LatencyStats.from_samples(samples)


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


def available_memory_bytes(device: str) -> int | None:
    import torch

    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return None


BYTES_PER = {"fp16": 2, "bf16": 2, "fp32": 4}


# ---------------------------------------------------------------------------------------------- builders


class ModuleFactory:
    """Builds the modules of a model on the target device with random weights. Tests may substitute it."""

    def __init__(self, device: str, dtype: str):
        import torch
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()  # random-weight builds trigger harmless casting notices
        self.torch = torch
        self.device = device
        self.dtype = getattr(torch, DTYPES[dtype])

    def _place(self, module: Any) -> Any:
        return module.to(dtype=self.dtype).eval().requires_grad_(False)

    def unet(self, spec: ModelSpec) -> Any:
        from diffusers import UNet2DConditionModel

        with self.torch.device(self.device):
            return self._place(UNet2DConditionModel(**_constructor_args(spec.unet_config)))

    def text_encoder(self, spec: ModelSpec) -> Any:
        from transformers import CLIPTextConfig, CLIPTextModel

        with self.torch.device(self.device):
            return self._place(CLIPTextModel(CLIPTextConfig(**_constructor_args(spec.text_encoder_config))))

    def vae(self, spec: ModelSpec) -> Any:
        from diffusers import AutoencoderKL

        with self.torch.device(self.device):
            return self._place(AutoencoderKL(**_constructor_args(spec.vae_config)))


# ---------------------------------------------------------------------------------------------- profiling


def measure_unet(spec: ModelSpec, req: ProfileRequest, factory: ModuleFactory, timer: Timer) -> ModelLatency:
    """One model's UNet step (one evaluation at batch x (2 if cfg)), or ``does_not_fit``."""
    torch = factory.torch
    params = spec.unet_params
    weight_bytes = params * BYTES_PER[req.dtype]
    free = available_memory_bytes(req.device)
    base = ModelLatency(name=spec.name, status="ok", unet_params=params, weight_bytes=weight_bytes, source=spec.source)
    if free is not None and weight_bytes * ACTIVATION_OVERHEAD + WORKSPACE_BYTES > free:
        base.status = "does_not_fit"
        base.error = f"weights need {weight_bytes / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"
        return base
    unet = runner = None
    try:
        if req.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(req.device)
        unet = factory.unet(spec)
        if req.device.startswith("cuda"):  # the peak of generation: weights in the target dtype + activations, not
            torch.cuda.synchronize(req.device)  # the transient fp32 copy the random-weight build makes
            torch.cuda.reset_peak_memory_stats(req.device)
        latent = req.resolution // spec.vae_scale_factor
        b = req.batch * (2 if req.cfg else 1)
        sample = torch.randn(b, spec.latent_channels, latent, latent, device=req.device, dtype=factory.dtype)
        tokens = int(spec.text_encoder_config.get("max_position_embeddings", 77))  # the text encoder's length
        ehs = torch.randn(b, tokens, spec.cross_attention_dim, device=req.device, dtype=factory.dtype)
        t = torch.tensor(500.0, device=req.device)
        with torch.no_grad():
            runner = make_unet_runner(unet, req.mode, sample, t, ehs)
            base.unet_step = timer.measure(
                lambda: runner(sample, t, ehs), req.warmup, req.repeats, req.max_seconds_per_model, req.min_repeats
            )
        if req.device.startswith("cuda"):
            base.peak_memory_bytes = int(torch.cuda.max_memory_allocated(req.device))
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        base.status = "does_not_fit"
        base.unet_step = None
        base.error = " ".join(str(exc).split())[:200]
    finally:
        del unet, runner
        free_memory(req.device)
    return base


def measure_text_encoder(spec: ModelSpec, req: ProfileRequest, factory: ModuleFactory, timer: Timer) -> LatencyStats:
    torch = factory.torch
    te = factory.text_encoder(spec)
    vocab = int(spec.text_encoder_config.get("vocab_size", 49408))
    length = int(spec.text_encoder_config.get("max_position_embeddings", 77))
    ids = torch.randint(0, vocab, (req.batch, length), device=req.device)
    # as diffusers' encode_prompt runs it: one forward for the prompt and, with guidance, another for the negative
    calls = 2 if req.cfg else 1

    def encode() -> None:
        for _ in range(calls):
            te(ids)

    with torch.no_grad():
        stats = timer.measure(encode, req.warmup, req.repeats, req.max_seconds_per_model, req.min_repeats)
    del te
    free_memory(req.device)
    return stats


def measure_vae_decode(spec: ModelSpec, req: ProfileRequest, factory: ModuleFactory, timer: Timer) -> LatencyStats:
    torch = factory.torch
    vae = factory.vae(spec)
    latent = req.resolution // spec.vae_scale_factor
    z = torch.randn(req.batch, int(spec.vae_config.get("latent_channels", 4)), latent, latent,
                    device=req.device, dtype=factory.dtype)
    with torch.no_grad():
        stats = timer.measure(lambda: vae.decode(z), max(1, req.warmup // 2 + 1), max(3, req.repeats // 2),
                              req.max_seconds_per_model, min(3, req.min_repeats))
    del vae
    free_memory(req.device)
    return stats


def measure_sampler(name: str, spec: ModelSpec, req: ProfileRequest, factory: ModuleFactory, timer: Timer) -> SamplerOverhead:
    """Per sampling step: ``scale_model_input`` + guidance combine + ``scheduler.step``, over a full loop."""
    torch = factory.torch
    sampler = get_sampler(name)
    latent = req.resolution // spec.vae_scale_factor
    shape = (req.batch, spec.latent_channels, latent, latent)
    gen = torch.Generator(device=req.device).manual_seed(0)
    x0 = torch.randn(shape, generator=gen, device=req.device, dtype=factory.dtype)
    pred = torch.randn((shape[0] * (2 if req.cfg else 1),) + shape[1:], generator=gen, device=req.device,
                       dtype=factory.dtype)

    def loop() -> None:
        scheduler = make_scheduler(name, spec.scheduler_config)
        scheduler.set_timesteps(SAMPLER_STEPS, device=req.device)
        x = x0
        for t in scheduler.timesteps:
            scheduler.scale_model_input(x, t)
            if req.cfg:
                uncond, cond = pred.chunk(2)
                eps = uncond + 7.5 * (cond - uncond)
            else:
                eps = pred
            x = scheduler.step(eps, t, x, return_dict=False)[0]

    with torch.no_grad():
        loops = timer.measure(loop, 1, max(3, req.repeats // 2), req.max_seconds_per_model, 3)
    per_step = [s / SAMPLER_STEPS for s in loops.samples_ms]
    return SamplerOverhead(name=name, evals_per_step=sampler.evals_per_step,
                           step_overhead=LatencyStats.from_samples(per_step))


def _pool(rounds: list[ModelLatency]) -> ModelLatency:
    """One model's rounds as one measurement: all samples pooled; a round that did not fit decides."""
    bad = next((m for m in rounds if not m.ok), None)
    if bad is not None:
        return bad
    first = rounds[0]
    samples = [x for m in rounds for x in (m.unet_step.samples_ms if m.unet_step else [])]
    peaks = [m.peak_memory_bytes for m in rounds if m.peak_memory_bytes is not None]
    return replace(first, unet_step=LatencyStats.from_samples(samples), peak_memory_bytes=max(peaks) if peaks else None)


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

    from ldmpick.fingerprint import full_fingerprint

    specs = validate_request(req)
    if req.threads:
        torch.set_num_threads(req.threads)
    settings = req.settings()
    settings.threads = torch.get_num_threads()
    if resume_from is not None and resume_from.settings.key() != settings.key():
        raise UsageError(
            f"cannot resume: the partial profile was measured with {resume_from.settings.describe()}, "
            f"not {settings.describe()}"
        )
    factory = factory or ModuleFactory(req.device, req.dtype)
    timer = Timer(req.device)
    tick = progress or (lambda label: None)
    started = time.perf_counter()
    profile = Profile(
        settings=settings,
        device=full_fingerprint(req.device),
        models=list(resume_from.models) if resume_from else [],
        samplers=[s for s in (resume_from.samplers if resume_from else []) if s.name in req.samplers],
        text_encoder=resume_from.text_encoder if resume_from else None,
        vae_decode=resume_from.vae_decode if resume_from else None,
        created=resume_from.created if resume_from else datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        command=req.command,
        complete=False,
        notes=f"fixed parts (text encoder, VAE) measured with the configs of '{specs[0].name}'",
    )
    save = checkpoint or (lambda p: None)
    with torch.inference_mode(False):
        if profile.text_encoder is None:
            profile.text_encoder = measure_text_encoder(specs[0], req, factory, timer)
            save(profile)
        tick("text encoder")
        if profile.vae_decode is None:
            profile.vae_decode = measure_vae_decode(specs[0], req, factory, timer)
            save(profile)
        tick("VAE decode")
        done_samplers = {s.name for s in profile.samplers}
        for name in req.samplers:
            if name not in done_samplers:
                profile.samplers.append(measure_sampler(name, specs[0], req, factory, timer))
                save(profile)
            tick(f"sampler {name}")
        done_models = {m.name for m in profile.models}
        if req.rounds <= 1:
            for spec in specs:
                if spec.name not in done_models:
                    profile.models.append(measure_unet(spec, req, factory, timer))
                    save(profile)
                tick(spec.name)
        else:  # round-robin, so that a slow drift of the machine hits every model alike; pooled at the end
            per_round = replace(req, repeats=max(1, -(-req.repeats // req.rounds)),
                                min_repeats=max(1, -(-req.min_repeats // req.rounds)),
                                max_seconds_per_model=req.max_seconds_per_model / req.rounds)
            pooled: dict[str, list[ModelLatency]] = {}
            todo = [spec for spec in specs if spec.name not in done_models]
            for r in range(req.rounds):
                for spec in todo:
                    if all(m.ok for m in pooled.get(spec.name, [])):
                        pooled.setdefault(spec.name, []).append(measure_unet(spec, per_round, factory, timer))
                    tick(f"{spec.name} (round {r + 1}/{req.rounds})")
            for spec in todo:
                profile.models.append(_pool(pooled[spec.name]))
            save(profile)
    profile.models.sort(key=lambda m: m.unet_params)
    profile.complete = True
    profile.wall_seconds = round(time.perf_counter() - started, 3)
    return profile
