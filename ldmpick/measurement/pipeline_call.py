"""The pipeline's own call, loaded and measured: what ``generate`` runs, timed as ``generate`` runs it.

One module for the three things that look inside a diffusers pipeline's ``__call__``:

- ``load_pipeline``: a model folder with the pipeline class its ``model_index.json`` names (safetensors only,
  local files only, never remote code);
- ``PartTimer``: hooks that time the parts of one call (text-encoder forwards, the denoising loop from the first
  denoiser evaluation to the VAE decode, the VAE decode) with the device synchronized at each boundary, and count
  the denoiser evaluations; ``EncoderLengths`` sees what the pipeline feeds each text encoder, and
  ``capture_generic`` keeps every part's real inputs of a call, so that a model without an adapter can be profiled
  on them;
- ``measure_pipeline_call``: the profile's end-to-end measurement of a model with weights (issue 26's budget
  promise): warm calls at two step counts in this process, and the first and second image of fresh ``ldmpick
  generate`` processes (the command a user runs), so that the cost model can predict the steady state and the first image of
  a run, and state an over-budget chance from the run-to-run spread of the calls themselves.

No printing here: progress goes to a callback.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldmpick.files.errors import ModelError, RuntimeFailure, clipped_message
from ldmpick.hardware.execution import DTYPES
from ldmpick.measurement.timer import Timer
from ldmpick.models.catalogue import ModelSpec

# the prompt every profile's pipeline calls encode (its length is what a tokenizer that follows the prompt sees)
DEFAULT_PROMPT = "a red cube on a blue sphere, studio photograph, soft light, high detail"
FRESH_TIMEOUT_S = 600.0  # one fresh process: import, load, two calls
MIN_WARM_CALLS = 3  # per step count, whatever the time budget


def load_pipeline(path: Path, device: str, dtype: str, spec: ModelSpec | None = None):  # -> a DiffusionPipeline
    """Load a pipeline folder with the pipeline class its ``model_index.json`` names: safetensors only, local files
    only, no safety checker, never remote code."""
    import diffusers
    import torch

    try:  # before diffusers imports transformers' image processors, which log notices we have no use for
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - cosmetic only
        pass
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    if spec is None:
        from ldmpick.models.catalogue import load_local_spec

        spec = load_local_spec(Path(path))
    cls = getattr(diffusers, spec.pipeline_class)
    # components model_index.json lists as [null, null] that the family may run without (SD3's T5) load as None
    absent = {comp: None for comp in spec.null_components if comp in spec.adapter.optional_components}
    try:
        with warnings.catch_warnings():  # torch_dtype's deprecation notice in newer diffusers
            warnings.simplefilter("ignore", FutureWarning)
            pipe = cls.from_pretrained(
                str(path),
                torch_dtype=getattr(torch, DTYPES[dtype]),  # 'dtype' in newer diffusers; this spelling works in all
                use_safetensors=True,
                local_files_only=True,  # a folder or a cached hub snapshot: never the network
                **absent,
                **spec.adapter.pipeline_load_kwargs(),
            )
    except Exception as exc:
        raise ModelError(f"cannot load '{path}' as a {spec.pipeline_class} ({exc.__class__.__name__}: "
                         f"{clipped_message(exc)})") from None
    try:
        pipe = pipe.to(device)
    except Exception as exc:
        raise RuntimeFailure(f"cannot move the model to {device}: {clipped_message(exc, 200)}") from None
    pipe.set_progress_bar_config(disable=True)
    for name in spec.weight_components():
        module = getattr(pipe, name, None)
        if module is not None and hasattr(module, "eval"):
            module.eval().requires_grad_(False)
    return pipe


def call_kwargs(pipe: Any, spec: ModelSpec, *, prompt: str, steps: int, resolution: int, guidance: float, n: int,
                generators: list[Any], negative_prompt: str = "", notes: list[str] | None = None) -> dict[str, Any]:
    """The arguments of ``pipe(...)`` for this family, leaving out what its ``__call__`` does not take."""
    wanted: dict[str, Any] = dict(prompt=prompt, num_inference_steps=steps, height=resolution, width=resolution,
                                  generator=generators, num_images_per_prompt=n, output_type="pil")
    wanted.update(spec.adapter.call_kwargs(spec, guidance, n))
    wanted.update(spec.adapter.steps_kwargs(spec, steps))
    if negative_prompt:
        wanted["negative_prompt"] = negative_prompt
    accepted = inspect.signature(pipe.__call__).parameters
    dropped = [k for k in wanted if k not in accepted]
    if "negative_prompt" in dropped and notes is not None:
        note = f"{type(pipe).__name__} takes no negative prompt; --negative-prompt is ignored"
        if note not in notes:
            notes.append(note)
    return {k: v for k, v in wanted.items() if k in accepted}


def generators(device: str, seeds: list[int]) -> list[Any]:
    import torch

    return [torch.Generator(device).manual_seed(s) for s in seeds]


# ---------------------------------------------------------------------------------------------- hooks


class PartTimer:
    """Times the parts of one ``pipe(...)`` call through hooks: the text encoders' forward passes, the denoising
    loop (first denoiser evaluation to the start of the VAE decode) and the VAE decode; the device is synchronized
    at each boundary (so the parts are what the profiler measures). Counts the denoiser evaluations."""

    def __init__(self, pipe: Any, spec: ModelSpec, device: str):
        self.timer = Timer(device)
        self.pipe, self.spec = pipe, spec
        self.handles: list[Any] = []
        self.reset()

    def reset(self) -> None:
        self.text_encoder_ms = 0.0
        self.loop_start: float | None = None
        self.loop_end: float | None = None
        self.vae_ms = 0.0
        self.evals = 0
        self.decode_end: float | None = None

    def now(self) -> float:
        self.timer.sync()
        return time.perf_counter()

    def __enter__(self) -> PartTimer:
        starts: dict[int, float] = {}

        def te_pre(module: Any, args: Any) -> None:
            starts[id(module)] = self.now()

        def te_post(module: Any, args: Any, out: Any) -> None:
            self.text_encoder_ms += (self.now() - starts.pop(id(module))) * 1e3

        for enc in self.spec.adapter.text_encoders(self.spec):
            module = getattr(self.pipe, enc.component, None)
            if module is not None:
                self.handles += [module.register_forward_pre_hook(te_pre), module.register_forward_hook(te_post)]

        def denoiser_pre(module: Any, args: Any) -> None:
            if self.loop_start is None:
                self.loop_start = self.now()
            self.evals += 1

        denoiser = getattr(self.pipe, self.spec.adapter.denoiser_component)
        self.handles.append(denoiser.register_forward_pre_hook(denoiser_pre))
        vae = self.pipe.vae
        self.original_decode = vae.decode

        def decode(*args: Any, **kwargs: Any) -> Any:
            t0 = self.now()
            if self.loop_end is None:
                self.loop_end = t0
            out = self.original_decode(*args, **kwargs)
            t1 = self.now()
            self.vae_ms += (t1 - t0) * 1e3
            self.decode_end = t1
            return out

        vae.decode = decode
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()
        self.pipe.vae.decode = self.original_decode

    @property
    def denoise_ms(self) -> float:
        if self.loop_start is None or self.loop_end is None:
            return 0.0
        return (self.loop_end - self.loop_start) * 1e3


def _cloned(x: Any) -> Any:
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, tuple):
        return tuple(_cloned(v) for v in x)
    if isinstance(x, list):
        return [_cloned(v) for v in x]
    if isinstance(x, dict):
        return {k: _cloned(v) for k, v in x.items()}
    return x


# ---------------------------------------------------------------------------------------------- one timed call


@dataclass
class CallSample:
    """One ``pipe(...)`` call, in milliseconds: from the call to the returned images (``wall_ms``), and its parts."""

    steps: int
    wall_ms: float
    text_encoder_ms: float
    denoise_ms: float
    vae_decode_ms: float
    evals: int

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CallSample:
        return cls(steps=int(d["steps"]), wall_ms=float(d["wall_ms"]), text_encoder_ms=float(d["text_encoder_ms"]),
                   denoise_ms=float(d["denoise_ms"]), vae_decode_ms=float(d["vae_decode_ms"]), evals=int(d["evals"]))


def timed_call(pipe: Any, spec: ModelSpec, device: str, kwargs: dict[str, Any], steps: int,
               write_dir: Path | None = None) -> CallSample:
    """Run ``pipe(**kwargs)`` once under a ``PartTimer`` and write its images as ``generate`` writes them (into
    ``write_dir``; without one, encoded in memory only): the wall time runs from the call to the written images, the
    latency a budget counts."""
    import torch

    with torch.no_grad(), PartTimer(pipe, spec, device) as parts:
        start = parts.now()
        images = pipe(**kwargs).images
        write_images(images, write_dir)
        end = time.perf_counter()
    return CallSample(steps, (end - start) * 1e3, parts.text_encoder_ms, parts.denoise_ms, parts.vae_ms, parts.evals)


SIDECAR_BYTES = 4096  # about the size of a run record, rewritten after every image


def write_images(images: list[Any], folder: Path | None) -> int:
    """Encode each PIL image as PNG and, into ``folder``, write it and rewrite a run record of a typical size after
    it, each atomically and durably (temp file, fsync, rename, fsync the folder), as ``generate`` does; the bytes
    made. Without a folder the images are only encoded."""
    import io

    from ldmpick.files.storage import atomic_write_bytes

    size = 0
    for k, image in enumerate(images):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        size += buf.tell()
        if folder is not None:
            atomic_write_bytes(folder / f"{k:04d}.png", buf.getvalue())
            atomic_write_bytes(folder / "run.json", b" " * SIDECAR_BYTES)
    if folder is not None:
        atomic_write_bytes(folder / "run.json", b" " * SIDECAR_BYTES)  # the record once the prompt is done
    return size


# ---------------------------------------------------------------------------------------------- the profile's measurement


@dataclass
class CallRequest:
    """How a profile measures a model's pipeline call: the profile's settings, the sampler the calls run and the
    two step counts (the slope between them is the per-step cost of the pipeline's own loop)."""

    device: str
    dtype: str
    mode: str
    resolution: int
    batch: int
    guidance: float
    sampler: str
    steps: tuple[int, int]
    repeats: int = 10  # warm calls per step count
    max_seconds: float = 20.0  # for the warm calls of one model, both step counts
    fresh_processes: int = 5  # first and second call of this many fresh processes; 0: not measured
    threads: int | None = None
    prompt: str = DEFAULT_PROMPT
    seed: int = 0
    write_dir: str | None = None  # where the calls write their images (a temp folder on the user data disk)

    def to_child(self, model: str) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["steps"] = list(self.steps)
        d["model"] = model
        return d


@dataclass
class CallMeasurement:
    """What ``measure_pipeline_call`` measured: warm calls in this process, and the first and second call of each
    fresh process."""

    request: CallRequest
    warm: list[CallSample] = field(default_factory=list)
    first: list[CallSample] = field(default_factory=list)
    second: list[CallSample] = field(default_factory=list)
    fresh_errors: list[str] = field(default_factory=list)
    encoder_lengths: dict[str, int] = field(default_factory=dict)  # text encoder -> tokens its pipeline fed it


class EncoderLengths:
    """What each text encoder of a pipeline is fed during a call: the token ids of its first call (``ids``), their
    number (``lengths``: chat templates, instruction prefixes and all, which an adapter's stated length may miss)
    and how many times it runs (``calls``)."""

    def __init__(self, pipe: Any, spec: ModelSpec):
        self.pipe, self.spec = pipe, spec
        self.ids: dict[str, Any] = {}
        self.calls: dict[str, int] = {}
        self.handles: list[Any] = []

    @property
    def lengths(self) -> dict[str, int]:
        return {comp: int(ids.shape[-1]) for comp, ids in self.ids.items()}

    def __enter__(self) -> EncoderLengths:
        import torch

        for comp in (k for k in self.spec.components if k.startswith("text_encoder")):
            module = getattr(self.pipe, comp, None)
            if module is None:
                continue

            def keep(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], comp: str = comp) -> None:
                self.calls[comp] = self.calls.get(comp, 0) + 1
                ids = kwargs.get("input_ids", args[0] if args else None)
                if isinstance(ids, torch.Tensor) and ids.dim() >= 1 and comp not in self.ids:
                    self.ids[comp] = ids.detach().clone()

            self.handles.append(module.register_forward_pre_hook(keep, with_kwargs=True))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()


def prepare(pipe: Any, spec: ModelSpec, req: CallRequest) -> None:
    """Set the pipeline up as ``generate`` does: the sampler's scheduler and the execution mode's runner."""
    from ldmpick.hardware.execution import install_runner
    from ldmpick.models.samplers import make_scheduler

    if not req.sampler.startswith("own:"):
        pipe.scheduler = make_scheduler(req.sampler, dict(pipe.scheduler.config))
    install_runner(getattr(pipe, spec.adapter.denoiser_component), req.mode, req.device)


def timed(pipe: Any, spec: ModelSpec, req: CallRequest, steps: int) -> CallSample:
    """One measured call of ``req`` at ``steps``."""
    return timed_call(pipe, spec, req.device, call_args(pipe, spec, req, steps), steps,
                      Path(req.write_dir) if req.write_dir else None)


def call_args(pipe: Any, spec: ModelSpec, req: CallRequest, steps: int) -> dict[str, Any]:
    return call_kwargs(pipe, spec, prompt=req.prompt, steps=steps, resolution=req.resolution, guidance=req.guidance,
                       n=req.batch, generators=generators(req.device, [req.seed + k for k in range(req.batch)]))


def measure_pipeline_call(spec: ModelSpec, req: CallRequest, pipe: Any = None,
                          progress: Callable[[str], None] | None = None,
                          spawn: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> CallMeasurement:
    """Warm calls of ``spec``'s pipeline at both step counts, alternating (a drift of the machine hits both alike),
    after one warm-up call; then ``fresh_processes`` fresh processes, each timing its first and second call.
    ``pipe``: an already loaded pipeline; ``spawn``: runs one fresh process (tests may substitute it)."""
    import shutil
    import tempfile
    from dataclasses import replace

    from ldmpick.files.storage import data_dir

    import torch

    assert spec.path is not None
    if req.threads is None or req.write_dir is None:
        # the fresh processes run at this process's thread count, not one of their own choosing; the writes go to
        # the disk the user's data is on, into a folder removed afterwards
        data_dir().mkdir(parents=True, exist_ok=True)
        folder = tempfile.mkdtemp(prefix=".pipeline-call-", dir=data_dir()) if req.write_dir is None else None
        try:
            return measure_pipeline_call(spec, replace(req, threads=req.threads or torch.get_num_threads(),
                                                       write_dir=req.write_dir or folder), pipe, progress, spawn)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
    out = CallMeasurement(req)
    pipe = pipe if pipe is not None else load_pipeline(spec.path, req.device, req.dtype, spec)
    prepare(pipe, spec, req)
    low, high = req.steps
    with EncoderLengths(pipe, spec) as lengths:
        timed(pipe, spec, req, high)  # warm-up, not kept
    out.encoder_lengths = lengths.lengths
    started = time.perf_counter()
    for i in range(req.repeats):
        for k in (low, high):
            out.warm.append(timed(pipe, spec, req, k))
        if i + 1 >= MIN_WARM_CALLS and time.perf_counter() - started > req.max_seconds:
            break
    if progress is not None:
        progress(f"{spec.name} pipeline call (warm)")
    run = spawn or spawn_fresh_process
    model = spec.source if spec.kind in ("demo", "registered", "catalogue") else str(spec.path)
    for _ in range(req.fresh_processes):
        try:
            got = run(req.to_child(model))
        except RuntimeFailure as exc:
            out.fresh_errors.append(str(exc))
            continue
        out.first.append(CallSample.from_json(got["first"]))
        out.second.append(CallSample.from_json(got["second"]))
        if progress is not None:
            progress(f"{spec.name} pipeline call (fresh process {len(out.first)}/{req.fresh_processes})")
    return out


def spawn_fresh_process(child: dict[str, Any]) -> dict[str, Any]:
    """One fresh ``ldmpick generate`` process — the command a user runs — of two prompts with no warm-up call, in
    the request's settings, writing into a folder of its own under ``write_dir``: its first image is the first call
    of a process, its second a warm one. The two images' latencies (prompt to written image) as ``CallSample``
    JSON, ``{"first": ..., "second": ...}``."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="fresh-", dir=child.get("write_dir")))
    prompts = folder / "prompts.txt"
    prompts.write_text(f"{child['prompt']}\n{child['prompt']}\n", encoding="utf-8")
    high = int(child["steps"][1])
    args = [sys.executable, "-m", "ldmpick.cli", "generate", "--prompts-file", str(prompts), "--model", child["model"],
            "--steps", str(high), "--no-warmup", "--json", "--out", str(folder / "images"), "--device", child["device"],
            "--dtype", child["dtype"], "--mode", child["mode"], "--resolution", str(child["resolution"]),
            "--n", str(child["batch"]), "--seed", str(child["seed"]), "--guidance", f"{child['guidance']:g}"]
    if not str(child["sampler"]).startswith("own:"):
        args += ["--sampler", child["sampler"]]
    if child.get("threads"):
        args += ["--threads", str(child["threads"])]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=FRESH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeFailure(f"a fresh process measuring '{child['model']}' took more than {FRESH_TIMEOUT_S:.0f} s")
    try:
        doc = json.loads(done.stdout)
        runs = [p["measured"] for p in doc["prompts"][:2]]
        evals = int(doc.get("unet_evals") or 0)
    except (ValueError, KeyError, TypeError):
        tail = " ".join(done.stderr.split())[-300:]
        raise RuntimeFailure(f"a fresh process measuring '{child['model']}' failed (exit {done.returncode}): "
                             f"{tail}") from None
    if len(runs) < 2 or "latency_ms" not in runs[0]:
        raise RuntimeFailure(f"a fresh process measuring '{child['model']}' wrote no latency of two images")

    def sample(m: dict[str, Any]) -> dict[str, Any]:
        return CallSample(high, float(m["latency_ms"]), float(m["text_encoder_ms"]), float(m["denoise_ms"]),
                          float(m["vae_decode_ms"]), evals).to_json()

    return {"first": sample(runs[0]), "second": sample(runs[1])}


def fresh_first_calls(child: dict[str, Any]) -> dict[str, Any]:
    """The first and second call of a pipeline loaded here, as ``spawn_fresh_process`` answers (the tests' stand-in
    for a fresh process: the same measurement in this process, without its start-up)."""
    from ldmpick.hardware.execution import apply_threads
    from ldmpick.models.catalogue import resolve_model

    req = CallRequest(**{k: (tuple(v) if k == "steps" else v) for k, v in child.items() if k != "model"})
    apply_threads(req.threads)
    spec = resolve_model(child["model"])
    assert spec.path is not None
    pipe = load_pipeline(spec.path, req.device, req.dtype, spec)
    prepare(pipe, spec, req)
    high = req.steps[1]
    first = timed(pipe, spec, req, high)
    second = timed(pipe, spec, req, high)
    return {"first": first.to_json(), "second": second.to_json()}


# ---------------------------------------------------------------------------------------------- the generic capture

CAPTURE_STEPS = 2  # the capture call's step count (its evaluations per step are counted over it)


def capture_generic(spec: ModelSpec, device: str, dtype: str, resolution: int, batch: int, cfg: bool,
                    pipe: Any = None) -> Any:  # -> families.generic.Captured
    """Run a generic model's own pipeline once (its weights, its own scheduler) and keep what it fed each part, for
    its adapter (``ldmpick.models.families.generic``) to answer the profiler from; stored in ``CAPTURES``."""
    import torch

    from ldmpick.models.families import generic

    assert spec.path is not None
    pipe = pipe if pipe is not None else load_pipeline(spec.path, device, dtype, spec)
    denoiser = getattr(pipe, spec.adapter.denoiser_component)
    signature = inspect.signature(denoiser.forward)
    seen: dict[str, Any] = {"evals": 0, "timesteps": {}}
    handles = []

    def keep_denoiser(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen["evals"] += 1
        if "denoiser" not in seen:
            bound = signature.bind_partial(*args, **kwargs).arguments
            bound.pop("return_dict", None)
            seen["denoiser"] = _cloned(dict(bound))

    handles.append(denoiser.register_forward_pre_hook(keep_denoiser, with_kwargs=True))
    encoders = EncoderLengths(pipe, spec)
    original_decode, original_set = pipe.vae.decode, pipe.scheduler.set_timesteps

    def decode(latents: Any, *args: Any, **kwargs: Any) -> Any:
        seen.setdefault("latents", latents.detach().clone())
        return original_decode(latents, *args, **kwargs)

    def set_timesteps(*args: Any, **kwargs: Any) -> Any:
        # the resolution's shift ('mu') and the like; a step count's own sigmas or timesteps are not kept
        seen["timesteps"] = {k: v for k, v in kwargs.items()
                             if k not in ("num_inference_steps", "device", "sigmas", "timesteps")}
        return original_set(*args, **kwargs)

    pipe.vae.decode, pipe.scheduler.set_timesteps = decode, set_timesteps
    guidance = spec.guidance if cfg else 1.0
    try:
        with torch.no_grad(), encoders:
            pipe(**call_kwargs(pipe, spec, prompt=DEFAULT_PROMPT, steps=CAPTURE_STEPS, resolution=resolution,
                               guidance=guidance, n=batch, generators=generators(device, list(range(batch)))))
    except Exception as exc:
        raise ModelError(f"'{spec.name}' ({spec.pipeline_class}, generic): its own call failed "
                         f"({exc.__class__.__name__}: {clipped_message(exc)}); see docs/families.md") from None
    finally:
        for h in handles:
            h.remove()
        pipe.vae.decode, pipe.scheduler.set_timesteps = original_decode, original_set
    if "denoiser" not in seen or "latents" not in seen:
        raise ModelError(f"'{spec.name}' ({spec.pipeline_class}, generic): its call never ran its "
                         f"{'denoiser' if 'denoiser' not in seen else 'VAE decode'}, so it cannot be measured")
    first = next((v for v in seen["denoiser"].values() if isinstance(v, torch.Tensor) and v.dim() >= 2), None)
    captured = generic.Captured(
        denoiser_kwargs=seen["denoiser"], batch=batch,
        denoiser_batch=int(first.shape[0]) if first is not None else batch,
        evals_per_step=max(1, round(seen["evals"] / CAPTURE_STEPS)), decode_latents=seen["latents"],
        encoder_ids=encoders.ids, encoder_calls=encoders.calls, timestep_kwargs=seen["timesteps"])
    generic.CAPTURES[generic.capture_key(spec, resolution, cfg)] = captured
    return captured
