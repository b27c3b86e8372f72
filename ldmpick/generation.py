"""Generation: run one configuration (model, sampler, steps) with a real diffusers pipeline, timing each part.

The pipeline is loaded with ``StableDiffusionPipeline.from_pretrained`` (safetensors only, never remote code, never
the network for a folder or a cached hub snapshot). The denoising loop is driven here rather than by
``pipe(...)`` so that the UNet runs in the execution mode the profile measured (``ldmpick.execution``: eager,
CUDA-graph replay, or ``torch.compile``) and so that each part is timed on its own: the text encoder, the
denoising loop, the VAE decode. In eager mode the loop gives the same images as ``pipe(...)`` for the same seed and
scheduler (``tests/test_generate.py`` checks it).

Each image ``k`` of a prompt is seeded with ``seed + k`` through its own ``torch.Generator``, so any image can be
regenerated alone from the seed stored in its metadata.

No printing here: progress goes to a callback, notes are returned in the result.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldmpick.catalogue import ModelSpec, check_safetensors_weights, resolve_model
from ldmpick.errors import LdmpickError, ModelError, RuntimeFailure, UsageError, unknown_name
from ldmpick.execution import DTYPES, MODES, check_mode
from ldmpick.samplers import get_sampler

MAX_STEPS = 1000
MAX_IMAGES_PER_PROMPT = 64
MAX_RESOLUTION = 4096
WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder")

# progress(done, total): one unit is one UNet evaluation of one prompt's batch (all its images at once)
ProgressFn = Callable[[int, int], None]


@dataclass
class GenerateRequest:
    """What to generate. ``None`` fields are resolved from the device (see ``resolve_settings``)."""

    model: str
    prompts: list[str]
    sampler: str
    steps: int
    seed: int = 0
    n: int = 1  # images per prompt, generated as one batch
    negative_prompt: str = ""
    guidance: float = 7.5
    resolution: int | None = None  # image side in pixels; default: the model's native size
    device: str | None = None  # cpu, cuda, cuda:N; default: the GPU if there is one
    dtype: str | None = None  # fp16, bf16, fp32; default: fp16 on GPU, fp32 on CPU
    mode: str | None = None  # eager, cudagraph, compile; default: cudagraph on GPU, eager on CPU


@dataclass
class Settings:
    """A request after validation, with every default filled in."""

    model: str
    source: str
    path: Path
    sampler: str
    steps: int
    seed: int
    n: int
    negative_prompt: str
    guidance: float
    resolution: int
    device: str
    dtype: str
    mode: str

    @property
    def cfg(self) -> bool:
        return self.guidance > 1.0

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


@dataclass
class GenerationResult:
    settings: Settings
    scheduler_class: str
    timesteps: list[float]  # the scheduler's timesteps: one UNet evaluation each
    load_ms: float  # loading the pipeline from disk and moving it to the device
    setup_ms: float  # building the UNet runner (CUDA-graph capture, compilation) and warming it up
    prompts: list[PromptResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # things the caller should tell the user

    @property
    def unet_evals(self) -> int:
        return len(self.timesteps)


# ---------------------------------------------------------------------------------------------- prediction


@dataclass
class Prediction:
    """What a profile predicts for one prompt's batch, per part (ms), and the predicted FID when the selector chose."""

    profile_id: str
    text_encoder_ms: float
    denoise_ms: float
    vae_decode_ms: float
    fid: float | None = None
    budget_ms: float | None = None

    @property
    def total_ms(self) -> float:
        return self.text_encoder_ms + self.denoise_ms + self.vae_decode_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile_id,
            "text_encoder_ms": round(self.text_encoder_ms, 3),
            "denoise_ms": round(self.denoise_ms, 3),
            "vae_decode_ms": round(self.vae_decode_ms, 3),
            "total_ms": round(self.total_ms, 3),
            "fid": self.fid,
            "budget_ms": self.budget_ms,
        }


def read_prompts_file(path: Path) -> list[str]:
    """Prompts from a UTF-8 text file, one per line (blank lines skipped); one-line errors for bad files."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"--prompts-file '{path}' does not exist") from None
    except OSError as exc:
        raise UsageError(f"--prompts-file '{path}' cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"--prompts-file '{path}' is not UTF-8 text (bad byte at offset {exc.start})") from None
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise UsageError(f"--prompts-file '{path}' has no prompts (one per line)")
    return prompts


def predict_latency(profile: Any, model_names: list[str], sampler: str, steps: int,
                    percentile: float = 50) -> Prediction | None:
    """``text_encoder + steps x (evals_per_step x unet_step + sampler overhead) + vae_decode`` from ``profile``
    (docs/profiling.md); ``None`` when the profile lacks the model (under any of ``model_names``) or the sampler."""
    model = next((m for m in profile.models if m.name in model_names and m.ok), None)
    overhead = next((s for s in profile.samplers if s.name == sampler), None)
    if model is None or overhead is None:
        return None
    te = profile.text_encoder.at(percentile) if profile.text_encoder else 0.0
    vae = profile.vae_decode.at(percentile) if profile.vae_decode else 0.0
    per_step = overhead.evals_per_step * model.unet_step.at(percentile) + overhead.step_overhead.at(percentile)
    return Prediction(profile_id=profile.id, text_encoder_ms=te, denoise_ms=steps * per_step, vae_decode_ms=vae)


def profile_mismatches(profile: Any, settings: Settings) -> list[str]:
    """How the run differs from what the profile measured (each difference makes the prediction less exact)."""
    ps = profile.settings
    wanted = {"resolution": settings.resolution, "batch": settings.n, "cfg": settings.cfg, "mode": settings.mode,
              "dtype": settings.dtype}
    out = [f"{k} {getattr(ps, k)} (this run: {v})" for k, v in wanted.items() if getattr(ps, k) != v]
    if ps.device.split(":")[0] != settings.device.split(":")[0]:
        out.append(f"device {ps.device} (this run: {settings.device})")
    return out


def load_profile_for(ref: str | None, device: str, models: list[str] | None = None) -> Any:
    """The profile named by ``ref``; else the newest complete profile of this device (local or shipped) that
    measures ``models`` (all of them), or, with no ``models``, at least one model that has weights (so the shipped
    demo family's profile serves ``generate --budget`` on a fresh machine); else such a shipped profile of another
    device (the caller warns); else None."""
    from ldmpick.errors import LdmpickError
    from ldmpick.fingerprint import light_fingerprint
    from ldmpick.profile_file import device_key, find_profile, list_profile_files, load_profile, shipped_profiles_dir
    from ldmpick.storage import profiles_dir

    if ref is not None:
        return load_profile(find_profile(ref))
    key = device_key(light_fingerprint(device))
    found = []
    for folder in (profiles_dir(), shipped_profiles_dir()):
        for path in list_profile_files(folder):
            try:
                prof = load_profile(path)
            except LdmpickError:
                continue
            if prof.complete and prof.device_key == key:
                found.append(prof)
    def usable(p: Any) -> bool:
        if models:
            return all(m in p.model_names() for m in models)
        return any(_has_weights(m.name) for m in p.models if m.ok)

    found = [p for p in found if usable(p)]
    if not found:  # a fresh machine of another kind: the shipped profile of the demo family, measured elsewhere
        for path in list_profile_files(shipped_profiles_dir()):
            try:
                prof = load_profile(path)
            except LdmpickError:
                continue
            if prof.complete and usable(prof):
                found.append(prof)
    return max(found, key=lambda p: p.created) if found else None


def _has_weights(name: str) -> bool:
    """Whether a profile's model name is one of this installation's models with weights (never opened as a path)."""
    from ldmpick.catalogue import resolve_trusted_name

    try:
        spec = resolve_trusted_name(name)
    except LdmpickError:
        return False
    return spec is not None and spec.has_weights


def scheduler_class_name(sampler: str) -> str:
    return get_sampler(sampler).scheduler_class


@dataclass
class Choice:
    """The configuration ``generate`` runs when the selector filled in what the user left open."""

    model: str
    sampler: str
    steps: int
    predicted_fid: float | None = None
    predicted_ms: float | None = None
    notes: list[str] = field(default_factory=list)
    guidance: float | None = None  # the guidance scale the chosen model's quality was calibrated at, if it was

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "sampler": self.sampler, "steps": self.steps,
                "predicted_fid": self.predicted_fid, "predicted_ms": self.predicted_ms, "guidance": self.guidance}


def select_for_generation(profile: Any, budget_ms: float, model: str | None = None, sampler: str | None = None,
                          steps: int | None = None, resolution: int | None = None) -> Choice:
    """Ask the selector for the best configuration within ``budget_ms`` among the profile's models that have
    weights (what ``--model``/``--sampler``/``--steps`` fix is kept). If the best size overall has no weights (the
    paper's family has none), a note says so."""
    from ldmpick.catalogue import resolve_model, resolve_trusted_name
    from ldmpick.scaling_law import load_law
    from ldmpick.selector import check_settings, cost_rows_measured, select_config

    if model is not None:
        resolve_model(model)  # an unknown name is a one-line error that suggests the closest one
    if profile is None:
        raise UsageError("--budget needs a profile of this device; measure one with "
                         "'ldmpick profile --models <your model>' (or give --model, --sampler and --steps)")
    if resolution is not None:
        check_settings(profile, resolution, None, None)
    law, _ = load_law()
    samplers = [sampler] if sampler else [s.name for s in profile.samplers]
    with_weights: list[str] = []
    for m in profile.models:
        if not m.ok:
            continue
        if model is not None:
            # the user named the model: resolve what they typed (a folder is fine); the profile's labels are compared
            if not (model in (m.name, m.source) or m.name == Path(model).name):
                continue
            ref, resolve = model, resolve_model
        else:
            # names in a profile, which may be someone else's, are labels: never opened as paths
            ref, resolve = m.name, resolve_trusted_name
        try:
            spec = resolve(ref)
        except LdmpickError:
            continue
        if spec is not None and spec.has_weights:
            with_weights.append(m.name)
    if model is not None:
        if not with_weights:
            raise UsageError(f"profile '{profile.id}' has no measurement of model '{model}' with weights; measure it "
                             f"with 'ldmpick profile --models {model}'")
    if not with_weights:
        raise UsageError(f"profile '{profile.id}' measures no model that has weights (the paper's family has none); "
                         "register one with 'ldmpick models add' and profile it, or give --model, --sampler, --steps")
    budget_s = budget_ms / 1e3
    notes: list[str] = []
    rows = cost_rows_measured(profile, with_weights, samplers, 50, [])
    if steps is not None:
        best = None
        for r in rows:
            if (law.is_distilled_sampler(r.sampler) or law.uncalibrated_sampler(r.model, r.sampler)) and not sampler:
                continue
            lat = r.fixed + steps * r.per_step
            q = law.predict_fid(r.unet_params, r.sampler, steps, model=r.model).value
            if lat <= budget_s and (best is None or (q, lat) < (best[0], best[1])):
                best = (q, lat, r)
        if best is None:
            raise UsageError(f"no model with weights runs {steps} steps within {budget_ms:.0f} ms on this profile")
        q, lat, r = best
        chosen = Choice(model or r.model, r.sampler, steps, predicted_fid=q, predicted_ms=lat * 1e3)
    else:
        sel = select_config(rows, law, budget_s)
        chosen = Choice(model or sel.best.model, sel.best.sampler, sel.best.steps, predicted_fid=sel.best.quality,
                        predicted_ms=sel.best.latency * 1e3)
    try:
        everyone = select_config(cost_rows_measured(profile, None, samplers, 50, []), law, budget_s).best
        if everyone.model not in with_weights and everyone.quality < (chosen.predicted_fid or 0) - 1e-9:
            notes.append(f"note: the best size for this budget is {everyone.model} ({everyone.sampler}, "
                         f"{everyone.steps} steps, predicted FID {everyone.quality:.1f}), which has no weights; "
                         f"using {chosen.model}, the best model that has")
    except LdmpickError:
        pass
    fam = law.calibrated_for(chosen.model, chosen.sampler, "fid")
    scale = f"calibrated on {fam.dataset}" if fam else "on the paper's scale"
    chosen.guidance = fam.guidance if fam else None
    notes.append(f"selected {chosen.model}, {chosen.sampler}, {chosen.steps} steps within {budget_ms:.0f} ms "
                 f"(predicted {chosen.predicted_ms:.0f} ms, FID {chosen.predicted_fid:.1f} {scale})")
    chosen.notes = notes
    return chosen


# ---------------------------------------------------------------------------------------------- validation


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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
    """Image sides must be multiples of this: the VAE factor times the UNet's total downsampling."""
    levels = len(spec.unet_config.get("block_out_channels") or [0])
    return spec.vae_scale_factor * 2 ** (levels - 1)


def native_resolution(spec: ModelSpec) -> int:
    return int(spec.unet_config.get("sample_size") or 64) * spec.vae_scale_factor


def check_resolution(resolution: int, spec: ModelSpec) -> None:
    multiple = resolution_multiple(spec)
    if resolution < multiple or resolution > MAX_RESOLUTION:
        raise UsageError(f"--resolution {resolution} is out of range ({multiple}..{MAX_RESOLUTION} pixels)")
    if resolution % multiple:
        lower = resolution // multiple * multiple
        raise UsageError(
            f"--resolution {resolution} is not a multiple of {multiple} (model '{spec.name}': VAE factor "
            f"{spec.vae_scale_factor} x UNet downsampling {multiple // spec.vae_scale_factor}); try {lower or multiple} "
            f"or {lower + multiple}"
        )


def weights_spec(model: str) -> ModelSpec:
    """Resolve ``model`` and check that it has safetensors weights that diffusers can load."""
    spec = resolve_model(model)
    if not spec.has_weights:
        raise ModelError(
            f"model '{spec.name}' has no weights (the paper's family is configs only, for profiling); register a "
            "checkpoint with 'ldmpick models add NAME FOLDER_OR_HUB_ID' or pass --model FOLDER"
        )
    assert spec.path is not None
    if not (spec.path / "model_index.json").exists():
        raise ModelError(f"model folder '{spec.path}' has no model_index.json (not a diffusers pipeline folder)")
    for component in WEIGHT_COMPONENTS:
        check_safetensors_weights(spec.path, component)
    if not (spec.path / "tokenizer").is_dir():
        raise ModelError(f"model folder '{spec.path}' has no tokenizer/ folder")
    return spec


def resolve_settings(req: GenerateRequest) -> tuple[Settings, ModelSpec]:
    """Validate everything that can be checked before loading a model; fill in the defaults."""
    if not req.prompts:
        raise UsageError("no prompt given; pass PROMPT or --prompts-file")
    for i, p in enumerate(req.prompts):
        if not p.strip():
            raise UsageError(f"prompt {i + 1} is empty")
    get_sampler(req.sampler)
    if not 1 <= req.steps <= MAX_STEPS:
        raise UsageError(f"--steps must be between 1 and {MAX_STEPS} (got {req.steps})")
    if not 1 <= req.n <= MAX_IMAGES_PER_PROMPT:
        raise UsageError(f"--n must be between 1 and {MAX_IMAGES_PER_PROMPT} (got {req.n})")
    if not 0 <= req.seed < 2**63 - MAX_IMAGES_PER_PROMPT:
        raise UsageError(f"--seed must be between 0 and {2**63 - MAX_IMAGES_PER_PROMPT - 1}")
    if not (req.guidance >= 0 and req.guidance < 100):  # also rejects NaN
        raise UsageError(f"--guidance must be between 0 and 100 (got {req.guidance})")
    device = req.device or default_device()
    check_device(device)
    dtype = req.dtype or ("fp16" if device.startswith("cuda") else "fp32")
    if dtype not in DTYPES:
        raise unknown_name("dtype", dtype, DTYPES)
    if device == "cpu" and dtype == "fp16":
        raise UsageError("fp16 on the CPU is not supported (very slow or unimplemented); use --dtype fp32 or bf16")
    mode = req.mode or ("cudagraph" if device.startswith("cuda") else "eager")
    if mode not in MODES:
        raise unknown_name("execution mode", mode, MODES)
    check_mode(mode, device)
    spec = weights_spec(req.model)
    resolution = req.resolution if req.resolution is not None else native_resolution(spec)
    check_resolution(resolution, spec)
    assert spec.path is not None
    settings = Settings(
        model=spec.name, source=spec.source, path=spec.path, sampler=req.sampler, steps=req.steps, seed=req.seed,
        n=req.n, negative_prompt=req.negative_prompt, guidance=float(req.guidance), resolution=resolution,
        device=device, dtype=dtype, mode=mode,
    )
    return settings, spec


# ---------------------------------------------------------------------------------------------- loading


def load_pipeline(path: Path, device: str, dtype: str):  # -> diffusers.StableDiffusionPipeline
    """Load a Stable-Diffusion-style pipeline folder: safetensors only, local files only, no safety checker."""
    import torch

    try:  # before diffusers imports transformers' image processors, which log notices we have no use for
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - cosmetic only
        pass
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():  # torch_dtype's deprecation notice in newer diffusers
            warnings.simplefilter("ignore", FutureWarning)
            pipe = StableDiffusionPipeline.from_pretrained(
                str(path),
                torch_dtype=getattr(torch, DTYPES[dtype]),  # 'dtype' in newer diffusers; this spelling works in all
                use_safetensors=True,
                local_files_only=True,  # a folder or a cached hub snapshot: never the network
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(
            f"cannot load '{path}' as a Stable Diffusion pipeline ({exc.__class__.__name__}: {first[:200]})"
        ) from None
    try:
        pipe = pipe.to(device)
    except Exception as exc:
        raise RuntimeFailure(f"cannot move the model to {device}: {' '.join(str(exc).split())[:200]}") from None
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.eval().requires_grad_(False)
    return pipe


# ---------------------------------------------------------------------------------------------- generation


def _timed(timer: Any, fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and its milliseconds, the device synchronized around it (CUDA events on GPU), as the profiler does."""
    box: list[Any] = []
    ms = timer.once(lambda: box.append(fn()))
    return box[0], ms


def _generators(device: str, seeds: list[int]) -> list[Any]:
    import torch

    return [torch.Generator(device).manual_seed(s) for s in seeds]


def generate(
    req: GenerateRequest,
    progress: ProgressFn | None = None,
    on_prompt: Callable[[PromptResult], None] | None = None,
    pipeline: Any = None,
) -> GenerationResult:
    """Load the model, then for each prompt encode, denoise and decode ``n`` images; time each part.

    ``on_prompt`` is called after each prompt's images are ready (so a caller can save them before the next prompt).
    ``pipeline`` may be an already loaded pipeline of ``req.model`` (tests and benchmarks reuse one).
    """
    import torch

    settings, spec = resolve_settings(req)
    sampler = get_sampler(settings.sampler)
    t0 = time.perf_counter()
    pipe = pipeline if pipeline is not None else load_pipeline(settings.path, settings.device, settings.dtype)
    load_ms = (time.perf_counter() - t0) * 1e3

    from ldmpick.samplers import make_scheduler

    pipe.scheduler = make_scheduler(settings.sampler, dict(pipe.scheduler.config))
    notes: list[str] = []
    if sampler.distilled_only and pipe.unet.config.get("time_cond_proj_dim") is None:
        notes.append(f"sampler '{sampler.name}' is meant for consistency-distilled (LCM) models; "
                     f"'{settings.model}' does not look distilled, so expect poor images")
    uses_timestep_cond = pipe.unet.config.get("time_cond_proj_dim") is not None
    if uses_timestep_cond and settings.mode != "eager":
        raise UsageError(f"model '{settings.model}' needs a guidance embedding (LCM-distilled UNet); "
                         "only --mode eager supports it")
    cfg = settings.cfg and not uses_timestep_cond  # as diffusers: distilled models embed the guidance instead

    device = torch.device(settings.device)
    h = w = settings.resolution
    scheduler = pipe.scheduler
    scheduler.set_timesteps(settings.steps, device=device)
    timesteps = [float(t) for t in scheduler.timesteps]
    total_units = len(timesteps) * len(req.prompts)
    result = GenerationResult(settings=settings, scheduler_class=type(scheduler).__name__, timesteps=timesteps,
                              load_ms=load_ms, setup_ms=0.0, notes=notes)

    from ldmpick.profiling import Timer

    timer = Timer(settings.device)
    runner = None
    done = 0
    try:
        with torch.no_grad():
            for p_index, prompt in enumerate(req.prompts):
                seeds = [settings.seed + k for k in range(settings.n)]
                generators = _generators(settings.device, seeds)

                def encode() -> Any:
                    pos, neg = pipe.encode_prompt(prompt, device, settings.n, cfg, settings.negative_prompt or None)
                    return torch.cat([neg, pos]) if cfg else pos

                prompt_embeds, te_ms = _timed(timer, encode)

                scheduler.set_timesteps(settings.steps, device=device)
                latents = pipe.prepare_latents(
                    settings.n, pipe.unet.config.in_channels, h, w, prompt_embeds.dtype, device, generators
                )
                extra = pipe.prepare_extra_step_kwargs(generators, 0.0)
                timestep_cond = None
                if uses_timestep_cond:
                    g = torch.tensor(settings.guidance - 1).repeat(settings.n)
                    timestep_cond = pipe.get_guidance_scale_embedding(
                        g, embedding_dim=pipe.unet.config.time_cond_proj_dim
                    ).to(device=device, dtype=latents.dtype)

                if runner is None:
                    t_setup = time.perf_counter()
                    runner = _make_runner(pipe.unet, settings.mode, latents, scheduler.timesteps[0], prompt_embeds, cfg,
                                          timestep_cond)
                    result.setup_ms = (time.perf_counter() - t_setup) * 1e3

                def denoise(x: Any) -> Any:
                    nonlocal done
                    for t in scheduler.timesteps:
                        model_input = scheduler.scale_model_input(torch.cat([x] * 2) if cfg else x, t)
                        noise_pred = runner(model_input, t, prompt_embeds)
                        if cfg:
                            uncond, text = noise_pred.chunk(2)
                            noise_pred = uncond + settings.guidance * (text - uncond)
                        x = scheduler.step(noise_pred, t, x, **extra, return_dict=False)[0]
                        done += 1
                        if progress is not None:
                            progress(done, total_units)
                    return x

                latents, loop_ms = _timed(timer, lambda: denoise(latents))
                decoded, vae_ms = _timed(timer, lambda: pipe.vae.decode(
                    latents / pipe.vae.config.scaling_factor, return_dict=False, generator=generators)[0])
                t_post = time.perf_counter()
                images = pipe.image_processor.postprocess(decoded, output_type="pil",
                                                          do_denormalize=[True] * decoded.shape[0])
                post_ms = (time.perf_counter() - t_post) * 1e3
                pr = PromptResult(index=p_index, prompt=prompt, seeds=seeds, images=images,
                                  times=PartTimes(te_ms, loop_ms, vae_ms, post_ms))
                result.prompts.append(pr)
                if on_prompt is not None:
                    on_prompt(pr)
    except Exception as exc:
        from ldmpick.profiling import is_out_of_memory

        if not is_out_of_memory(exc):
            raise
        raise RuntimeFailure(
            f"out of memory on {settings.device} generating {settings.n} image(s) at {settings.resolution} px with "
            f"'{settings.model}' ({settings.dtype}); lower --n or --resolution, or use --dtype fp16/bf16"
        ) from None
    return result


def _make_runner(unet: Any, mode: str, latents: Any, t: Any, prompt_embeds: Any, cfg: bool, timestep_cond: Any):
    """The UNet step for this shape in ``mode``, built and warmed up once (capture or compilation happen here)."""
    import torch

    if timestep_cond is not None:  # LCM-distilled UNets: eager only (checked by the caller)
        def with_cond(s: Any, tt: Any, ehs: Any) -> Any:
            return unet(s, tt, encoder_hidden_states=ehs, timestep_cond=timestep_cond, return_dict=False)[0]

        return with_cond
    from ldmpick.execution import make_unet_runner

    sample = torch.cat([latents] * 2) if cfg else latents
    t = t if isinstance(t, torch.Tensor) else torch.tensor(t)
    runner = make_unet_runner(unet, mode, sample, t.to(latents.device), prompt_embeds)
    if mode != "eager" or latents.device.type == "cuda":  # compilation, first replay, CUDA warm-up: not timed
        runner(sample, t.to(latents.device), prompt_embeds)
    return runner
