"""Generation: run one configuration (model, sampler, steps) with the model's own diffusers pipeline, timing each part.

The pipeline class is the one ``model_index.json`` names (SD, LCM, SDXL, PixArt, SD3, Flux, Sana, SANA-Sprint:
``ldmpick.models.families``), loaded with ``from_pretrained`` (safetensors only, never remote code, never the network for a
folder or a cached hub snapshot). The pipeline's own ``__call__`` runs, so each family encodes its prompt, prepares
its latents and conditioning and decodes as it does itself; ldmpick times the parts through hooks on the
components: the text-encoder stack, the denoising loop (from the first denoiser evaluation to the VAE decode) and
the VAE decode, the device synchronized at each boundary. The denoiser runs in the execution mode the profile
measured (``ldmpick.hardware.execution``: eager, CUDA-graph replay, or ``torch.compile``), by the same runner the profiler
uses.

Each image ``k`` of a prompt is seeded with ``seed + k`` through its own ``torch.Generator``, so any image can be
regenerated alone from the seed stored in its metadata.

No printing here: progress goes to a callback, notes are returned in the result.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldmpick.models.catalogue import ModelSpec, check_safetensors_weights, resolve_model
from ldmpick.files.errors import LdmpickError, ModelError, RuntimeFailure, UsageError, unknown_name
from ldmpick.files.errors import clipped_message  # noqa: F401 (where callers have found it)
from ldmpick.measurement.pipeline_call import PartTimer, call_kwargs, generators, load_pipeline
from ldmpick.hardware.execution import DTYPES, MODES, check_dtype, check_mode, default_device, default_dtype, default_mode
from ldmpick.models.samplers import get_sampler
from ldmpick.knobs import format_knobs

MAX_STEPS = 1000
MAX_IMAGES_PER_PROMPT = 64
MAX_RESOLUTION = 4096

# progress(done, total): one unit is one UNet evaluation of one prompt's batch (all its images at once)
ProgressFn = Callable[[int, int], None]


@dataclass
class GenerateRequest:
    """What to generate. ``None`` fields are resolved from the device (see ``resolve_settings``)."""

    model: str
    prompts: list[str]
    sampler: str | None  # None: the model's own saved scheduler
    steps: int
    seed: int = 0
    n: int = 1  # images per prompt, generated as one batch
    negative_prompt: str = ""
    guidance: float | None = None  # None: the model's default (its card's, else its family's)
    resolution: int | None = None  # image side in pixels; default: the model's native size
    device: str | None = None  # cpu, cuda, cuda:N; default: the GPU if there is one
    dtype: str | None = None  # fp16, bf16, fp32; default: fp16 on GPU, fp32 on CPU
    mode: str | None = None  # eager, cudagraph, compile; default: cudagraph on GPU, eager on CPU
    warmup: bool = True  # one throwaway call before the timed images (capture and compilation always run one)
    knobs: str = "none"  # one knob list (ldmpick.knobs text form); its precision and compile are --dtype and --mode


@dataclass
class RunSettings:
    """A request after validation, with every default filled in."""

    model: str
    source: str
    path: Path
    sampler: str  # an ldmpick sampler name, or "own:<SchedulerClass>" for the model's saved scheduler
    steps: int
    seed: int
    n: int
    negative_prompt: str
    guidance: float
    resolution: int
    device: str
    dtype: str
    mode: str
    family: str = "sd"
    guidance_distilled: bool = False  # guidance is an input of the denoiser: no doubled batch
    knobs: str = "none"  # the knob list the run applies (canonical text; its precision is dtype, its compile mode)

    @property
    def cfg(self) -> bool:
        """Whether classifier-free guidance doubles the denoiser batch in this run."""
        return self.guidance > 1.0 and not self.guidance_distilled

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["path"] = str(self.path)
        d["cfg"] = self.cfg
        return d


@dataclass
class PartTimes:
    """Measured milliseconds of one prompt's batch. ``total_ms`` is what the profile predicts (the three parts)."""

    text_encoder_ms: float
    denoise_ms: float
    vae_decode_ms: float
    postprocess_ms: float  # latents -> PIL images; not part of the prediction

    @property
    def total_ms(self) -> float:
        return self.text_encoder_ms + self.denoise_ms + self.vae_decode_ms

    def to_json(self) -> dict[str, float]:
        return {
            "text_encoder_ms": round(self.text_encoder_ms, 3),
            "denoise_ms": round(self.denoise_ms, 3),
            "vae_decode_ms": round(self.vae_decode_ms, 3),
            "postprocess_ms": round(self.postprocess_ms, 3),
            "total_ms": round(self.total_ms, 3),
        }


@dataclass
class PromptResult:
    index: int
    prompt: str
    seeds: list[int]
    images: list[Any]  # PIL.Image.Image, one per seed
    times: PartTimes
    wall_ms: float | None = None  # the whole pipeline call, post-processing included
    write_ms: float = 0.0  # writing its images (PNG encoding and the file), after the call

    @property
    def latency_ms(self) -> float:
        """What a budget counts: from the prompt to the written images (the call, then the write)."""
        return (self.wall_ms if self.wall_ms is not None else self.times.total_ms) + self.write_ms


@dataclass
class GenerationResult:
    settings: RunSettings
    scheduler_class: str
    timesteps: list[float]  # the scheduler's timesteps: one UNet evaluation each
    load_ms: float  # loading the pipeline from disk and moving it to the device
    setup_ms: float  # building the UNet runner (CUDA-graph capture, compilation) and warming it up
    prompts: list[PromptResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # things the caller should tell the user

    evals_per_prompt: int = 0  # denoiser evaluations counted in the first prompt's run

    @property
    def unet_evals(self) -> int:
        """Denoiser evaluations per prompt, as counted (a 2nd-order sampler such as Heun takes two per step)."""
        return self.evals_per_prompt or len(self.timesteps)


MAX_PROMPTS_FILE_BYTES = 16 * 1024 * 1024
MAX_PROMPTS = 100_000
MAX_PROMPT_CHARS = 10_000  # far beyond any text encoder's window (CLIP 77 tokens, T5 512): a 15 MB line took 49 s


def check_prompts(prompts: list[str]) -> None:
    """Every prompt is at most ``MAX_PROMPT_CHARS`` characters (it is written into each PNG and the sidecar)."""
    for i, p in enumerate(prompts):
        if len(p) > MAX_PROMPT_CHARS:
            which = "the prompt" if len(prompts) == 1 else f"prompt {i + 1}"
            raise UsageError(f"{which} is {len(p):,} characters long; at most {MAX_PROMPT_CHARS:,} are allowed "
                             "(a text encoder reads a few hundred tokens)")


def read_prompts_file(path: Path) -> list[str]:
    """Prompts from a UTF-8 text file, one per line (blank lines skipped); read through ``file_input`` (a regular
    file under 16 MB: never a FIFO or ``/dev/zero``); one-line errors for bad files."""
    from ldmpick.files.reader import read_text_file

    text = read_text_file(path, "--prompts-file", MAX_PROMPTS_FILE_BYTES)
    # lines end at a newline only: str.splitlines would also split at \f, \x85 and U+2028 inside a prompt
    prompts = [line.strip() for line in text.split("\n") if line.strip()]
    if not prompts:
        raise UsageError(f"--prompts-file '{path}' has no prompts (one per line)")
    if len(prompts) > MAX_PROMPTS:
        raise UsageError(f"--prompts-file '{path}' has {len(prompts)} prompts; at most {MAX_PROMPTS} per run")
    return prompts


def load_profile_for(ref: str | None, device: str, models: list[str] | None = None, required: bool = False,
                     cfg: bool | None = None) -> Any:
    """The profile choice (``profile_choice.choose_profile``) for running ``models`` on ``device``: with
    ``models`` (names or folders), the same choice as recommend and plot make for them; with none, among profiles
    that measure at least one model with weights here (so the shipped demo family's profile serves
    ``generate --budget`` on a fresh machine). None when there is none, unless ``required``: then the
    ``NoProfileError`` saying which profile measures what. ``cfg``: the run's guidance doubles the batch (a
    profile measured so is preferred)."""
    from ldmpick.profiles.choice import NoProfileError, choose_profile

    def usable(p: Any) -> bool:
        return any(_has_weights(m.name) for m in p.models if m.ok)

    try:
        return choose_profile(ref, device=device, models=models, cfg=cfg, usable=None if models else usable)
    except NoProfileError:
        if required:
            raise
        return None


def _has_weights(name: str) -> bool:
    """Whether a profile's model name is one of this installation's models with weights (never opened as a path)."""
    from ldmpick.models.catalogue import resolve_trusted_name

    try:
        spec = resolve_trusted_name(name)
    except LdmpickError:
        return False
    return spec is not None and spec.has_weights


def scheduler_class_name(sampler: str) -> str:
    if sampler.startswith("own:"):
        return sampler[4:]
    return get_sampler(sampler).scheduler_class


# ---------------------------------------------------------------------------------------------- validation


def check_device(device: str) -> None:
    import torch

    if re.fullmatch(r"cuda(:\d+)?", device):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
        idx = int(device.split(":")[1]) if ":" in device else 0
        if idx >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device != "cpu":
        raise UsageError(f"unknown device '{device}'; use cpu, cuda or cuda:N")


def resolution_multiple(spec: ModelSpec) -> int:
    """Image sides must be multiples of this: the VAE factor times the denoiser's downsampling or patch size."""
    return spec.resolution_multiple


def check_resolution(resolution: int, spec: ModelSpec) -> None:
    from ldmpick.measurement.profiler import check_resolution as check

    check(resolution, spec)


def weights_spec(model: str) -> ModelSpec:
    """Resolve ``model`` and check that every component ``model_index.json`` lists has safetensors weights (or,
    for tokenizers, its folder) that diffusers can load."""
    spec = resolve_model(model)
    if spec.path is None:
        hub = f" (its weights: '{spec.source}' on the Hugging Face hub)" if spec.kind == "catalogue" else ""
        raise ModelError(
            f"model '{spec.name}' has no weights: it is configs only, for profiling{hub}; register a checkpoint "
            "with 'ldmpick models add NAME FOLDER_OR_HUB_ID' or pass --model FOLDER"
        )
    if not (spec.path / "model_index.json").exists():
        raise ModelError(f"model folder '{spec.path}' has no model_index.json (not a diffusers pipeline folder)")
    for component in spec.weight_components():
        check_safetensors_weights(spec.path, component)
    for comp in spec.component_classes:  # (model_index.json was read and checked when the spec was made)
        if comp.startswith("tokenizer") and not (spec.path / comp).is_dir():
            raise ModelError(f"model folder '{spec.path}' has no {comp}/ folder")
    return spec


def resolve_sampler(name: str | None, spec: ModelSpec) -> str:
    """Check that sampler ``name`` fits ``spec`` (flow-matching families take flow samplers only, lcm/scm only
    distilled models); ``None`` is the model's own saved scheduler, named ``own:<SchedulerClass>``, or the ldmpick
    sampler it is."""
    from ldmpick.models.samplers import sampler_for_scheduler

    if name is None:
        cls = spec.component_classes.get("scheduler") or "PNDMScheduler"
        return sampler_for_scheduler(cls, spec.scheduler_config) or f"own:{cls}"
    misfit = spec.adapter.sampler_misfit(spec, name)  # (an unknown name: the registry's error, closest names)
    if misfit:
        raise UsageError(misfit)
    return name


def resolve_settings(req: GenerateRequest) -> tuple[RunSettings, ModelSpec]:
    """Validate everything that can be checked before loading a model; fill in the defaults."""
    if not req.prompts:
        raise UsageError("no prompt given; pass PROMPT or --prompts-file")
    for i, p in enumerate(req.prompts):
        if not p.strip():
            raise UsageError(f"prompt {i + 1} is empty")
    if req.sampler is not None:
        get_sampler(req.sampler)
    if not 1 <= req.steps <= MAX_STEPS:
        raise UsageError(f"--steps must be between 1 and {MAX_STEPS} (got {req.steps})")
    if not 1 <= req.n <= MAX_IMAGES_PER_PROMPT:
        raise UsageError(f"--n must be between 1 and {MAX_IMAGES_PER_PROMPT} (got {req.n})")
    if not 0 <= req.seed < 2**63 - MAX_IMAGES_PER_PROMPT:
        raise UsageError(f"--seed must be between 0 and {2**63 - MAX_IMAGES_PER_PROMPT - 1}")
    if req.guidance is not None and not (req.guidance >= 0 and req.guidance < 100):  # also rejects NaN
        raise UsageError(f"--guidance must be between 0 and 100 (got {req.guidance})")
    device = req.device or default_device()
    check_device(device)
    knobs, dtype_knob, mode_knob = knob_run_settings(req.knobs, req.dtype, req.mode)
    dtype = check_dtype(req.dtype or dtype_knob or default_dtype(device), device)
    mode = req.mode or mode_knob or default_mode(device)
    if mode not in MODES:
        raise unknown_name("execution mode", mode, MODES)
    check_mode(mode, device)
    spec = weights_spec(req.model)
    sampler = resolve_sampler(req.sampler, spec)
    if mode not in spec.adapter.fast_modes:
        raise UsageError(f"mode '{mode}' is not supported for the {spec.family} family")
    if knobs:
        from ldmpick.knobs import DeviceFacts
        from ldmpick.knobs.application import check_settings

        check_settings(knobs, DeviceFacts.of(device), spec.adapter.denoiser_class(spec))
    resolution = req.resolution if req.resolution is not None else spec.native_resolution
    check_resolution(resolution, spec)
    if req.steps < spec.adapter.min_steps(spec):
        raise UsageError(f"--steps {req.steps}: '{spec.name}' runs at least {spec.adapter.min_steps(spec)} steps (its "
                         "scheduler's terminal shift has no one-step schedule)")
    assert spec.path is not None
    guidance = float(req.guidance) if req.guidance is not None else spec.guidance
    settings = RunSettings(
        model=spec.name, source=spec.source, path=spec.path, sampler=sampler, steps=req.steps, seed=req.seed,
        n=req.n, negative_prompt=req.negative_prompt, guidance=guidance, resolution=resolution,
        device=device, dtype=dtype, mode=mode, family=spec.family,
        guidance_distilled=spec.adapter.guidance_distilled(spec), knobs=format_knobs(knobs),
    )
    return settings, spec


def knob_run_settings(text: str | None, dtype: str | None, mode: str | None) -> tuple[tuple[Any, ...], str | None, str | None]:
    """A run's knob list: its settings, the dtype its float precision sets and the execution mode its compile knob
    sets (today's --dtype / --mode are those knobs: ``precision.from_dtype``, ``compile.from_mode``; naming both
    differently is a one-line error)."""
    from ldmpick.knobs import parse_knobs
    from ldmpick.knobs.compile import RUNNER_MODE, from_mode
    from ldmpick.knobs.precision import from_dtype

    knobs = parse_knobs(text)
    dtype_knob = mode_knob = None
    for s in knobs:
        if s.kind == "precision" and s.name in DTYPES:
            dtype_knob = s.name
            if dtype is not None and from_dtype(dtype) != s:
                raise UsageError(f"--dtype {dtype} and --knobs {s.text} name two precisions; give one")
        if s.kind == "compile" and s.name != "repeated-blocks":
            mode_knob = RUNNER_MODE[s.name]
            if mode is not None and from_mode(mode) != s:
                raise UsageError(f"--mode {mode} and --knobs {s.text} name two execution modes; give one")
    return knobs, dtype_knob, mode_knob


def applied_knobs(settings: RunSettings) -> tuple[Any, ...]:
    """The knobs ``generate`` applies to the loaded pipeline itself: all but a float precision (the pipeline is
    loaded in that dtype) and the compile modes the shared runner installs (``settings.mode``)."""
    from ldmpick.knobs import parse_knobs

    return tuple(s for s in parse_knobs(settings.knobs)
                 if not (s.kind == "precision" and s.name in DTYPES)
                 and not (s.kind == "compile" and s.name != "repeated-blocks"))


# ---------------------------------------------------------------------------------------------- loading


def _call_kwargs(pipe: Any, spec: ModelSpec, settings: RunSettings, prompt: str, steps: int, generators: list[Any],
                 notes: list[str]) -> dict[str, Any]:
    """The arguments of ``pipe(...)`` for this family and run, leaving out what its ``__call__`` does not take."""
    return call_kwargs(pipe, spec, prompt=prompt, steps=steps, resolution=settings.resolution,
                       guidance=settings.guidance, n=settings.n, generators=generators,
                       negative_prompt=settings.negative_prompt, notes=notes)


def run_plan(plan: Any, progress: ProgressFn | None = None,
             on_prompt: Callable[[PromptResult], None] | None = None) -> GenerationResult:
    """Run a ``planning.GenerationPlan``: its request, with the settings it already resolved and checked."""
    return generate(plan.request, progress=progress, on_prompt=on_prompt, resolved=(plan.settings, plan.spec))


def generate(
    req: GenerateRequest,
    progress: ProgressFn | None = None,
    on_prompt: Callable[[PromptResult], None] | None = None,
    pipeline: Any = None,
    resolved: tuple[RunSettings, ModelSpec] | None = None,
) -> GenerationResult:
    """Load the model, then for each prompt run its pipeline for ``n`` images; time each part.

    ``on_prompt`` is called after each prompt's images are ready (so a caller can save them before the next prompt).
    ``pipeline`` may be an already loaded pipeline of ``req.model`` (tests and benchmarks reuse one); ``resolved``
    the request's settings and model as ``resolve_settings`` gave them (a plan's).
    """
    import torch

    from ldmpick.hardware.execution import install_runner

    settings, spec = resolved if resolved is not None else resolve_settings(req)
    t0 = time.perf_counter()
    pipe = pipeline if pipeline is not None else load_pipeline(settings.path, settings.device, settings.dtype, spec)
    load_ms = (time.perf_counter() - t0) * 1e3

    from ldmpick.models.samplers import make_scheduler

    if not settings.sampler.startswith("own:"):
        pipe.scheduler = make_scheduler(settings.sampler, dict(pipe.scheduler.config))
    notes: list[str] = []
    if settings.sampler.startswith("own:"):
        notes.append(f"sampler: the model's own scheduler, {settings.sampler[4:]}")
    denoiser = getattr(pipe, spec.adapter.denoiser_component)
    original_forward = denoiser.__dict__.get("forward")
    knobs = applied_knobs(settings)
    if knobs:
        from ldmpick.knobs.application import apply_knobs

        notes.extend(f"knob {a.setting.text}: {a.note}" for a in apply_knobs(knobs, pipe, settings.device,
                                                                            settings.steps))
    install_runner(denoiser, settings.mode, settings.device)
    result = GenerationResult(settings=settings, scheduler_class=type(pipe.scheduler).__name__, timesteps=[],
                              load_ms=load_ms, setup_ms=0.0, notes=notes)
    try:  # the loop's length per prompt (a 2nd-order sampler such as Heun runs more iterations than steps)
        pipe.scheduler.set_timesteps(settings.steps, device=settings.device,
                                     **spec.adapter.timestep_kwargs(spec, pipe.scheduler, settings.resolution))
        per_prompt = len(pipe.scheduler.timesteps)
    except Exception:  # a scheduler that needs the pipeline's own arguments: count steps
        per_prompt = settings.steps
    total_units = per_prompt * len(req.prompts)
    done = 0

    def on_step(p: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done, total_units), total_units)
        return {}

    try:
        with torch.no_grad():
            # One throwaway call at this shape before anything is timed: in cudagraph and compile modes it captures
            # or compiles; in every mode it pays the first call of a process (allocator growth, kernel choice, lazy
            # set-up), which the profile measures away and which made a single-image run 1.2-2x its prediction
            # (issue 26). Reported as set-up, apart from the images' times, like the model load.
            # (A pipeline handed in, already used by the caller, is warm: only capture or compilation runs then.)
            if (pipeline is None and req.warmup) or settings.mode != "eager":
                t_setup = time.perf_counter()
                gens = generators(settings.device, [settings.seed + k for k in range(settings.n)])
                pipe(**_call_kwargs(pipe, spec, settings, req.prompts[0], min(2, settings.steps), gens, notes))
                result.setup_ms = (time.perf_counter() - t_setup) * 1e3
                notes.append(f"a warm-up call ran before the timed images ({result.setup_ms:.0f} ms of set-up, not in "
                             "the totals): the times below are warm, as the profile measures")
            for p_index, prompt in enumerate(req.prompts):
                seeds = [settings.seed + k for k in range(settings.n)]
                kwargs = _call_kwargs(pipe, spec, settings, prompt, settings.steps, generators(settings.device, seeds),
                                      notes)
                if "callback_on_step_end" in inspect.signature(pipe.__call__).parameters:
                    kwargs["callback_on_step_end"] = on_step
                with PartTimer(pipe, spec, settings.device) as parts:
                    start = parts.now()
                    images = pipe(**kwargs).images
                    end = parts.now()
                post_ms = (end - (parts.decode_end or end)) * 1e3
                if not result.timesteps:
                    result.timesteps = [float(t) for t in pipe.scheduler.timesteps][: parts.evals or None]
                    result.evals_per_prompt = parts.evals
                pr = PromptResult(index=p_index, prompt=prompt, seeds=seeds, images=list(images),
                                  times=PartTimes(parts.text_encoder_ms, parts.denoise_ms, parts.vae_ms, post_ms))
                pr.wall_ms = (end - start) * 1e3
                result.prompts.append(pr)
                if on_prompt is not None:
                    t_write = time.perf_counter()
                    on_prompt(pr)
                    pr.write_ms = (time.perf_counter() - t_write) * 1e3
    except Exception as exc:
        from ldmpick.measurement.profiler import is_out_of_memory

        if not is_out_of_memory(exc):
            raise
        raise RuntimeFailure(
            f"out of memory on {settings.device} generating {settings.n} image(s) at {settings.resolution} px with "
            f"'{settings.model}' ({settings.dtype}); lower --n or --resolution, or use --dtype fp16/bf16"
        ) from None
    finally:
        if getattr(denoiser, "is_cache_enabled", False) and any(k.kind == "cache" for k in knobs):
            denoiser.disable_cache()  # the pipeline may be reused without its cache
        if original_forward is None:
            denoiser.__dict__.pop("forward", None)  # the pipeline may be reused in another mode
        else:
            denoiser.forward = original_forward
    return result
