"""Calibration: measure image quality for real over a grid of (model, sampler, steps), then refit the law on it.

For each configuration the model generates ``samples`` images from a fixed prompt set with fixed seeds (the same
initial noise for every configuration, so that differences between configurations are not sampling noise), and
ldmpick measures:

- **FID**: the Fréchet distance between the generated images' features and a reference set's, computed the standard
  way (``image_quality.frechet_distance``). Demo world: the shipped world judge's features against 2,048 real world
  images. Real models: Inception-v3 features (``--inception-weights``, a local safetensors file) against a
  reference image folder the user gives.
- **prompt accuracy** (demo world only, the CLIP-score analogue): the fraction of each caption's attributes that
  the world judge sees in the image.
- **a reference-free scorer** (``--scorer``, ``calibration.scorers``: CLIP score, a PickScore-class preference
  model, or self-agreement with the model's own image at the reference step count), over a small prompt set (the
  shipped PartiPrompts subset or the user's file): no reference images, one image per prompt is enough for a step
  response. Each configuration's per-image features are kept (``ShardStore``, one shard per configuration), so an
  interrupted run resumes configuration by configuration; each row holds the mean, its standard deviation over
  images and the sample count, on the scorer's own scale (``quality.scorer_scales``).

Results go to a partial file after every configuration (``--resume`` continues it); at the end they are appended,
under a file lock, to the user's quality table (series ``calibrated:<dataset>``, source ``calibrated:<profile
id>``), and the law is refitted (``quality_fit.fit_calibrated_family``). No printing here.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ldmpick.files.errors import LdmpickError, UsageError
from ldmpick.models.samplers import steps_text

PARTIAL_SCHEMA = "ldmpick.calibration-partial/1"
DEMO_DATASET = "demo-world-32px"
REFERENCE_IMAGES = 2048
# world seeds offset from the training seed (0) and the judge's (1, 1001): what is measured was never trained on
REFERENCE_SEED_OFFSET = 10_000
MAX_SAMPLES = 100_000
DEMO_GUIDANCE = 4.0  # the demo family: FID improves with steps up to 16-32 at 4; at 2 it is flat after 2-4 (docs/demo.md)
REFERENCE_GUIDANCE = 7.5  # real (Stable-Diffusion-like) models
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

ProgressFn = Callable[[int, int, str], None]


@dataclass
class CalibrationRequest:
    models: list[str]
    samplers: list[str]
    steps: list[int]
    samples: int = 256
    seed: int = 0
    guidance: float = DEMO_GUIDANCE  # SD models: 7.5 (REFERENCE_GUIDANCE)
    device: str = "cpu"
    dtype: str = "fp32"
    batch: int = 256  # images generated at once
    reference: Path | None = None  # folder of reference images (real models); None: the demo world
    prompts_file: Path | None = None  # one prompt per line (real models)
    inception_weights: Path | None = None
    judge_weights: Path | None = None  # another world judge (tests)
    # '--samplers all': per model, the samplers that fit it (the grid leaves out the others); None: every model
    # runs every sampler in ``samplers``
    per_model_samplers: dict[str, list[str]] | None = None
    scorer: str | None = None  # a reference-free scorer (calibration.scorers.SCORERS); None: FID
    scorer_model: str | None = None  # the scorer's CLIP checkpoint: a folder or a cached hub id
    reference_steps: int | None = None  # self-agreement: the step count compared with (default: the most of steps)
    prompt_set_name: str | None = None  # a shipped prompt set (scorers.prompt_sets; default parti-48)

    def samplers_of(self, model: str) -> list[str]:
        return (self.per_model_samplers or {}).get(model, self.samplers)

    @property
    def dataset(self) -> str:
        if self.scorer is not None:
            return self.prompt_set().name
        if self.reference is None:
            return DEMO_DATASET
        return f"folder:{self.reference.name}"

    def prompt_set(self) -> Any:  # -> scorers.prompt_sets.PromptSet
        """The prompts of a scorer calibration: ``prompts_file``, else the shipped PartiPrompts subset."""
        cached = self.__dict__.get("_prompt_set")
        if cached is None:
            from ldmpick.calibration.scorers.prompt_sets import (DEFAULT_PROMPT_SET, load_prompt_set,
                                                                 prompt_set_from_file)

            cached = self.__dict__["_prompt_set"] = (prompt_set_from_file(self.prompts_file) if self.prompts_file
                                                     else load_prompt_set(self.prompt_set_name or DEFAULT_PROMPT_SET))
        return cached

    @property
    def agreement_steps(self) -> int | None:
        """The step count a reference-needing scorer compares every configuration with; None for other scorers."""
        from ldmpick.calibration.scorers import needs_reference

        if self.scorer is None or not needs_reference(self.scorer):
            return None
        return self.reference_steps if self.reference_steps is not None else max(self.steps)

    def scorer_identity(self) -> tuple[str, str]:
        """(checkpoint slug, sha256 of its weights) of the scorer, computed once (it hashes the weights)."""
        cached = self.__dict__.get("_scorer_identity")
        if cached is None:
            from ldmpick.calibration.scorers import checkpoint_identity

            cached = self.__dict__["_scorer_identity"] = checkpoint_identity(str(self.scorer_model))
        return cached

    def scale_key(self, spec: Any) -> str:
        """The scorer scale the rows of model ``spec`` are measured on (its resolution is part of it)."""
        from ldmpick.calibration.scorers import scorer_prefix
        from ldmpick.quality.scorer_scales import scorer_key

        return scorer_key(scorer_prefix(str(self.scorer)), self.scorer_identity()[0], self.dataset,
                          spec.native_resolution, self.agreement_steps)

    def measured_configs(self, configs: list[tuple[str, str, int]] | None = None) -> list[tuple[str, str, int]]:
        """``configs`` (default: the grid) and, for a reference-needing scorer, each (model, sampler)'s reference
        step count before its other counts (measured even where the grid leaves it out)."""
        configs = self.configs() if configs is None else configs
        ref = self.agreement_steps
        if ref is None:
            return list(configs)
        out: list[tuple[str, str, int]] = []
        for m, s, _ in configs:
            if (m, s, ref) not in out:
                out += [(m, s, ref)] + [c for c in configs if c[:2] == (m, s) and c[2] != ref]
        return out

    def key(self) -> dict[str, Any]:
        """What a partial file must match to be resumed: the grid, the protocol, and the identity (sha256) of every
        weights file and input that the measurements depend on, so that retrained models are never mixed in.
        Computed once per request (it hashes the weights; a partial file is written after every configuration)."""
        cached = self.__dict__.get("_key")
        if cached is None:
            cached = self.__dict__["_key"] = self._compute_key()
        return cached

    def _compute_key(self) -> dict[str, Any]:
        from ldmpick.models.catalogue import resolve_model

        files: dict[str, str] = {}
        for m in self.models:
            spec = resolve_model(m)
            if spec.path is not None:
                for comp in ("unet", "vae", "text_encoder"):
                    for f in sorted((spec.path / comp).glob("*.safetensors")):
                        files[f"{m}/{comp}/{f.name}"] = _sha256(f)
        if self.scorer is not None:
            if self.prompts_file is not None:
                files["prompts"] = _sha256(self.prompts_file)
            files["scorer"] = self.scorer_identity()[1]
        elif self.reference is None:
            from ldmpick.calibration.image_quality import judge_weights_path

            files["judge"] = _sha256(self.judge_weights or judge_weights_path())
        else:
            for name, f in (("inception", self.inception_weights), ("prompts", self.prompts_file)):
                if f is not None:
                    files[name] = _sha256(f)
        key = {"models": self.models, "samplers": {m: self.samplers_of(m) for m in self.models}
               if self.per_model_samplers else self.samplers, "steps": self.steps, "samples": self.samples,
               "seed": self.seed, "guidance": self.guidance, "dataset": self.dataset, "dtype": self.dtype,
               "device": self.device.split(":")[0],
               "reference": str(self.reference.resolve()) if self.reference else None, "files": files}
        if self.scorer is not None:  # (only then: a partial of an FID calibration keeps its key)
            key.update(scorer=self.scorer, scorer_checkpoint=self.scorer_identity()[0],
                       reference_steps=self.agreement_steps)
        return key

    def configs(self) -> list[tuple[str, str, int]]:
        return [(m, s, k) for m in self.models for s in self.samplers_of(m) for k in self.steps]

    def named_configs(self) -> list[tuple[str, str, int]]:
        """``configs()`` under the names the results are stored with (a folder's model name, not its path)."""
        from ldmpick.models.catalogue import resolve_model

        names = {m: resolve_model(m).name for m in self.models}
        return [(names[m], s, k) for m, s, k in self.configs()]


@dataclass
class CalibrationResult:
    model: str
    unet_params: int
    sampler: str
    steps: int
    fid: float | None  # None: a scorer calibration
    prompt_acc: float | None  # mean attribute accuracy (demo world); None for real models
    prompt_all: float | None  # fraction of images with every attribute right
    samples: int
    resolution: int
    seconds: float  # wall time of generating and measuring this configuration
    scale: str | None = None  # a scorer calibration: the scorer scale key (quality.scorer_scales)
    score: float | None = None  # ... the mean of the per-image values
    score_sd: float | None = None  # ... their standard deviation over images (ddof 1)


@dataclass
class Calibration:
    request: CalibrationRequest
    results: list[CalibrationResult] = field(default_factory=list)
    profile_id: str = "unprofiled"
    notes: list[str] = field(default_factory=list)


def validate_request(req: CalibrationRequest) -> None:
    from ldmpick.models.catalogue import check_distinct_names, resolve_model
    from ldmpick.generation.runner import resolve_sampler
    from ldmpick.models.samplers import get_sampler

    if not req.models:
        raise UsageError("--models: give at least one model")
    if not req.samplers:
        raise UsageError("--samplers: give at least one sampler")
    for s in req.samplers:
        get_sampler(s)
    if not req.steps or min(req.steps) < 1 or max(req.steps) > 1000:
        raise UsageError("--steps needs integers between 1 and 1000")
    if len(set(req.steps)) != len(req.steps):
        raise UsageError("--steps has duplicates")
    if not 2 <= req.samples <= MAX_SAMPLES:
        raise UsageError(f"--samples must be between 2 and {MAX_SAMPLES} (got {req.samples})")
    if req.batch < 1:
        raise UsageError(f"--batch must be at least 1 (got {req.batch})")
    if not 0 <= req.seed < 2**31:
        raise UsageError(f"--seed must be between 0 and 2^31-1 (got {req.seed})")
    if not 0.0 <= req.guidance <= 100.0:
        raise UsageError(f"--guidance must be between 0 and 100 (got {req.guidance})")
    specs = [resolve_model(m) for m in req.models]
    check_distinct_names(req.models, specs)
    for m, spec in zip(req.models, specs):
        check_table_name(spec.name)
        if not spec.has_weights:
            raise UsageError(f"model '{m}' has no weights (the paper's family has none); calibrate a model that can "
                             "generate, e.g. the demo family: --models demo-c8,demo-c16,demo-c80")
        for sampler in req.samplers_of(m):
            resolve_sampler(sampler, spec)
    if req.scorer is not None:
        validate_scorer(req)
    elif req.reference_steps is not None or req.scorer_model is not None or req.prompt_set_name is not None:
        raise UsageError("--scorer-model, --prompt-set and --reference-steps go with --scorer (a reference-free "
                         "scorer)")
    elif req.reference is None:
        if req.prompts_file is not None or req.inception_weights is not None:
            raise UsageError("--prompts-file and --inception-weights go with --reference (a folder of real images); "
                             "without it the demo world is the reference")
    else:
        if not req.reference.is_dir():
            raise UsageError(f"--reference '{req.reference}' is not a folder of images")
        if req.inception_weights is None:
            raise UsageError("--reference needs --inception-weights (a local safetensors file of torchvision's "
                             "inception_v3): FID of real images is computed in Inception's feature space")
        if req.prompts_file is None:
            raise UsageError("--reference needs --prompts-file (one prompt per line)")


def validate_scorer(req: CalibrationRequest) -> None:
    """A scorer calibration's own settings: a known scorer, its checkpoint (a CLIP model with safetensors weights,
    hashed here once), no reference images, a reference step count only where the scorer compares with one."""
    from ldmpick.calibration.scorers import check_pairing, needs_reference, scorer_module

    scorer_module(str(req.scorer))
    if req.reference is not None or req.inception_weights is not None:
        raise UsageError("--scorer measures without reference images: leave out --reference and --inception-weights")
    if not req.scorer_model:
        raise UsageError(f"--scorer {req.scorer} needs --scorer-model: a folder or a cached hub id of a transformers "
                         "CLIPModel checkpoint with safetensors weights (e.g. openai/clip-vit-large-patch14)")
    if req.reference_steps is not None:
        if not needs_reference(str(req.scorer)):
            raise UsageError(f"--reference-steps goes with --scorer self-agreement (scorer '{req.scorer}' compares "
                             "each image with its prompt)")
        if not 1 <= req.reference_steps <= 1000:
            raise UsageError("--reference-steps needs an integer between 1 and 1000")
    check_pairing(str(req.scorer), req.scorer_model)
    if req.prompt_set_name is not None and req.prompts_file is not None:
        raise UsageError("give --prompt-set or --prompts-file, not both")
    if req.samples > 4096:
        raise UsageError(f"--samples {req.samples}: a scorer calibration keeps at most 4096 images per configuration")
    req.prompt_set()
    req.scorer_identity()


def read_reference_images(folder: Path, limit: int = 10_000) -> list[Any]:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if len(files) < 2:
        raise UsageError(f"--reference '{folder}' holds fewer than 2 images ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for p in files:  # Inception's input size, so that folders of mixed sizes stack and memory stays bounded
        try:
            with Image.open(p) as im:
                images.append(im.convert("RGB").resize((299, 299), Image.Resampling.BICUBIC))
        except (UnidentifiedImageError, OSError):
            raise UsageError(f"reference image '{p}' cannot be read") from None
    return images


# ---------------------------------------------------------------------------------------------- partial file


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise UsageError(f"cannot read '{path}' ({exc.__class__.__name__})") from None
    return h.hexdigest()


def partial_path(req: CalibrationRequest) -> Path:
    """One partial file per grid and inputs (so that two different calibrations never share one)."""
    from ldmpick.calibration.shards import request_digest
    from ldmpick.files.storage import data_dir

    return data_dir() / f"calibration.{request_digest(req)}.partial.json"


def shard_store(req: CalibrationRequest) -> Any:  # -> ShardStore
    """Where this request's finished shards are kept between runs: a folder beside its partial file."""
    from ldmpick.calibration.shards import ShardStore, request_digest

    path = partial_path(req)
    return ShardStore(path.with_name(path.name.replace(".partial.json", ".shards")), request_digest(req))


def write_partial(cal: Calibration, path: Path) -> None:
    from ldmpick.files.storage import atomic_write_json

    atomic_write_json(path, {"schema": PARTIAL_SCHEMA, "request": cal.request.key(), "profile": cal.profile_id,
                             "results": [asdict(r) for r in cal.results]})


def read_partial(path: Path, req: CalibrationRequest) -> list[CalibrationResult]:
    """The results of an interrupted calibration of ``req``'s grid, every field checked: a partial file that was
    edited or corrupted is refused in one line (and left where it is, for inspection) before anything reaches the
    quality table."""
    from ldmpick.files.reader import read_json_file

    if not path.exists() and not path.is_symlink():
        raise UsageError(f"--resume: no partial calibration at '{path}'")
    data = read_json_file(path, "--resume: partial calibration")
    if not isinstance(data, dict) or data.get("schema") != PARTIAL_SCHEMA:
        raise UsageError(f"--resume: '{path}' is not a partial calibration of schema '{PARTIAL_SCHEMA}'")
    if data.get("request") != json.loads(json.dumps(req.key())):
        # (the advice is --restart: a rerun without --resume finds the same partial and asks for --resume)
        raise UsageError("--resume: the partial calibration was made with other settings "
                         f"({json.dumps(data.get('request'))[:200]}); discard it with --restart to start over")
    raw = data.get("results")
    if not isinstance(raw, list) or len(raw) > len(req.configs()):
        raise UsageError(f"--resume: partial calibration '{path}' is malformed (results); it is kept for "
                         "inspection: fix it, or discard it with --restart")
    grid, seen, out = set(req.named_configs()), set(), []
    scales = expected_scales(req)
    for i, r in enumerate(raw):
        if isinstance(r, dict):  # (a partial written before scorer calibrations has no scorer fields)
            r = {"scale": None, "score": None, "score_sd": None, **r}
        problem = result_problem(r, req.samples)
        if problem is None:
            res = CalibrationResult(**r)
            key = (res.model, res.sampler, res.steps)
            problem = ("not in this grid" if key not in grid else "measured twice" if key in seen
                       else f"scale must be {scales.get(res.model)}" if res.scale != scales.get(res.model) else None)
        if problem is not None:
            raise UsageError(f"--resume: partial calibration '{path}' is malformed (result {i}: {problem}); it is "
                             "kept for inspection: fix it, or discard it with --restart")
        seen.add(key)
        out.append(res)
    return out


def expected_scales(req: CalibrationRequest) -> dict[str, str | None]:
    """Model name -> the scorer scale its results are on (None for every model of an FID calibration)."""
    from ldmpick.models.catalogue import resolve_model

    specs = [resolve_model(m) for m in req.models]
    return {spec.name: req.scale_key(spec) if req.scorer is not None else None for spec in specs}


def result_problem(r: Any, samples: int) -> str | None:
    """What is wrong with one stored result (a JSON object), or None: the fields of ``CalibrationResult``, no more,
    no less, each of its type and range."""
    from dataclasses import fields

    from ldmpick.quality.table import TABLE_METRICS, metric_bounds

    names = [f.name for f in fields(CalibrationResult)]
    if not isinstance(r, dict) or sorted(r) != sorted(names):
        return f"needs exactly the fields {', '.join(names)}"

    def count(v: Any, low: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and low <= v < 2**53

    def number(v: Any, high: float = math.inf) -> bool:
        return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= high)

    for key in ("model", "sampler"):
        if not isinstance(r[key], str) or not r[key] or len(r[key]) > 256:
            return f"{key} must be a name"
    if r["scale"] is not None:  # a scorer's result: a mean on its scale, no FID
        bounds = metric_bounds(r["scale"]) if isinstance(r["scale"], str) else None
        if bounds is None or r["scale"] in TABLE_METRICS:
            return "scale must be a scorer scale key or null"

        def within(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and bounds[0] <= v <= bounds[1]

        score_checks = [("score", within(r["score"]), f"a number between {bounds[0]:g} and {bounds[1]:g}"),
                        ("score_sd", number(r["score_sd"], bounds[1] - bounds[0]), "a finite number >= 0"),
                        ("fid", r["fid"] is None, "null in a scorer's result")]
        for key, ok, what in score_checks:
            if not ok:
                return f"{key} must be {what}"
    elif r["score"] is not None or r["score_sd"] is not None:
        return "score and score_sd must be null without a scale"
    checks = [("unet_params", count(r["unet_params"], 1), "a positive integer"),
              ("steps", count(r["steps"], 1), "a positive integer"),
              ("resolution", count(r["resolution"], 1), "a positive integer"),
              ("samples", r["samples"] == samples and count(r["samples"], 1), f"{samples}, as in this grid"),
              # as the quality table will take it: a partial of FID 1e308 was accepted, the grid measured, and the
              # table then refused on every --resume
              ("fid", r["scale"] is not None or number(r["fid"], TABLE_METRICS["fid"]) and r["fid"] > 0,
               f"a finite number above 0 and at most {TABLE_METRICS['fid']:g}"),
              ("seconds", number(r["seconds"]), "a finite number >= 0"),
              ("prompt_acc", r["prompt_acc"] is None or number(r["prompt_acc"], 1.0), "null or between 0 and 1"),
              ("prompt_all", r["prompt_all"] is None or number(r["prompt_all"], 1.0), "null or between 0 and 1")]
    for key, ok, what in checks:
        if not ok:
            return f"{key} must be {what}"
    return None


# ---------------------------------------------------------------------------------------------- measuring


def run_calibration(req: CalibrationRequest, progress: ProgressFn | None = None,
                    checkpoint: Callable[[Calibration], None] | None = None,
                    resume_from: list[CalibrationResult] | None = None,
                    shards: Any = None, runner: Any = None) -> Calibration:
    """Measure every configuration of the grid that ``resume_from`` does not already hold.

    The work is cut into shards (``calibration_shards``); ``runner`` runs them (default: here, one after another;
    ``cluster.RayShardRunner``: on a Ray cluster) and yields each finished shard. Finished shards go to ``shards``
    (a ``ShardStore``) if given, and shards already there are not run again. A configuration's FID and prompt
    accuracy are computed here, from its shards' features and counts, once all its shards are in. A scorer
    calibration (``req.scorer``) runs here (``run_scored_calibration``)."""
    from ldmpick.calibration.shards import LocalShardRunner, assemble, shard_tasks
    from ldmpick.models.catalogue import resolve_model
    from ldmpick.calibration.image_quality import frechet_distance

    if req.scorer is not None:
        if runner is not None:
            raise UsageError("--cluster runs FID calibrations; a scorer calibration runs here")
        return run_scored_calibration(req, progress, checkpoint, resume_from, shards)
    validate_request(req)
    cal = Calibration(req, results=list(resume_from or []))
    cal.profile_id = profile_id_for(req)
    specs = {m: resolve_model(m) for m in req.models}  # rows are stored under the model's name
    done = {(r.model, r.sampler, r.steps) for r in cal.results}
    todo = [c for c in req.configs() if (specs[c[0]].name, c[1], c[2]) not in done]
    total = len(req.configs())
    count = total - len(todo)
    tasks = shard_tasks(req, todo)
    finished = shards.load(tasks) if shards is not None else {}
    pending = {c: [t for t in tasks if t.config == c] for c in todo}
    runner = runner if runner is not None else LocalShardRunner(req)
    local = runner.measurer.feature_extractor() if isinstance(runner, LocalShardRunner) else None
    ref_features = reference_features(req, local)  # here: with the extractor the shards use, loaded once
    t_start, images_done = time.perf_counter(), 0

    def finish_ready() -> None:
        nonlocal count
        for c in [c for c, ts in pending.items() if all(t.key in finished for t in ts)]:
            parts = [finished[t.key] for t in pending.pop(c)]
            feats, acc = assemble(parts)
            fid = frechet_distance(feats, ref_features)
            spec = specs[c[0]]
            cal.results.append(CalibrationResult(
                model=spec.name, unet_params=spec.unet_params, sampler=c[1], steps=c[2], fid=round(fid, 4),
                prompt_acc=round(acc["mean"], 4) if acc else None, prompt_all=round(acc["all"], 4) if acc else None,
                samples=req.samples, resolution=spec.native_resolution, seconds=round(sum(p.seconds for p in parts), 2)))
            count += 1
            if checkpoint is not None:
                checkpoint(cal)
            if progress is not None:
                progress(count, total, f"{c[0]} {c[1]} {steps_text(c[2])}: FID {fid:.2f}")

    finish_ready()  # configurations whose shards all finished before an interruption
    for result in runner.run([t for t in tasks if t.key not in finished]):
        if shards is not None:
            shards.save(result)
        finished[result.task.key] = result
        images_done += result.task.images
        if progress is not None:
            rate = images_done / max(time.perf_counter() - t_start, 1e-9)
            progress(count, total, f"{result.task.model} {result.task.sampler} {steps_text(result.task.steps)}: "
                                   f"{rate:.1f} images/s{runner.describe()}")
        finish_ready()
    order = {(specs[c[0]].name, c[1], c[2]): i for i, c in enumerate(req.configs())}
    cal.results.sort(key=lambda r: order.get((r.model, r.sampler, r.steps), 0))
    return cal


def run_scored_calibration(req: CalibrationRequest, progress: ProgressFn | None = None,
                           checkpoint: Callable[[Calibration], None] | None = None,
                           resume_from: list[CalibrationResult] | None = None, shards: Any = None) -> Calibration:
    """Measure every configuration of a scorer calibration that ``resume_from`` does not already hold: image ``i``
    of every configuration has prompt ``i`` (mod the set's size) and seed ``req.seed + i``, so configurations differ
    only in what they are. Each configuration's per-image features go to ``shards`` (a ``ShardStore``) as one
    shard; a configuration already there is not generated again (a self-agreement reference included)."""
    import numpy as np

    from ldmpick.calibration.images import generate_images
    from ldmpick.calibration.scorers import load_scorer, scorer_values
    from ldmpick.calibration.shards import ShardResult, ShardTask, worker_name
    from ldmpick.generation.runner import load_pipeline
    from ldmpick.models.catalogue import resolve_model

    validate_request(req)
    cal = Calibration(req, results=list(resume_from or []))
    cal.profile_id = profile_id_for(req)
    specs = {m: resolve_model(m) for m in req.models}
    done = {(r.model, r.sampler, r.steps) for r in cal.results}
    todo = [c for c in req.configs() if (specs[c[0]].name, c[1], c[2]) not in done]
    measure = req.measured_configs(todo)
    tasks = {c: ShardTask(c[0], c[1], c[2], 0, req.samples) for c in measure}
    kept = shards.load(list(tasks.values())) if shards is not None else {}
    finished = {t.config: kept[t.key] for t in tasks.values() if t.key in kept}
    prompts = req.prompt_set().for_samples(req.samples)
    total, count = len(req.configs()), len(req.configs()) - len(todo)
    scorer = load_scorer(str(req.scorer), str(req.scorer_model), req.device) if len(finished) < len(measure) else None
    loaded: tuple[str, Any] | None = None

    def finish_ready() -> None:
        nonlocal count
        for c in [c for c in todo if c in finished and (req.agreement_steps is None
                                                          or (c[0], c[1], req.agreement_steps) in finished)]:
            todo.remove(c)
            ref = finished[(c[0], c[1], req.agreement_steps)].features if req.agreement_steps else None
            values = np.asarray(scorer_values(str(req.scorer), finished[c].features, ref), dtype=np.float64)
            spec = specs[c[0]]
            cal.results.append(CalibrationResult(
                model=spec.name, unet_params=spec.unet_params, sampler=c[1], steps=c[2], fid=None, prompt_acc=None,
                prompt_all=None, samples=req.samples, resolution=spec.native_resolution,
                seconds=round(finished[c].seconds, 2), scale=req.scale_key(spec), score=round(float(values.mean()), 6),
                score_sd=round(float(values.std(ddof=1)), 6)))
            count += 1
            if checkpoint is not None:
                checkpoint(cal)
            if progress is not None:
                progress(count, total, f"{c[0]} {c[1]} {steps_text(c[2])}: {req.scorer} {values.mean():.4g}")

    finish_ready()  # configurations whose features were all kept before an interruption
    for c in [c for c in measure if c not in finished]:
        if loaded is None or loaded[0] != c[0]:
            loaded = None  # free the previous model first
            loaded = (c[0], load_pipeline(specs[c[0]].path, req.device, req.dtype, specs[c[0]]))
        pipe, spec, t0, parts = loaded[1], specs[c[0]], time.perf_counter(), []
        extra = {**spec.adapter.call_kwargs(spec, req.guidance, 1), **spec.adapter.steps_kwargs(spec, c[2])}
        for start in range(0, req.samples, req.batch):
            chunk = prompts[start:start + req.batch]
            images = generate_images(pipe, chunk, c[1], c[2], req.guidance, req.seed + start, req.batch,
                                     spec.native_resolution, extra=extra)
            parts.append(np.asarray(scorer.features(images, chunk), dtype=np.float64))  # type: ignore[union-attr]
            if progress is not None:
                done_images = start + len(chunk)
                rate = done_images / max(time.perf_counter() - t0, 1e-9)
                progress(count, total, f"{c[0]} {c[1]} {steps_text(c[2])}: image {done_images}/{req.samples}, "
                                       f"{rate:.2f} images/s")
        result = ShardResult(tasks[c], np.concatenate(parts), None, None, round(time.perf_counter() - t0, 3),
                             worker_name())
        if shards is not None:
            shards.save(result)
        finished[c] = result
        finish_ready()
    order = {(specs[c[0]].name, c[1], c[2]): i for i, c in enumerate(req.configs())}
    cal.results.sort(key=lambda r: order.get((r.model, r.sampler, r.steps), 0))
    return cal


def reference_features(req: CalibrationRequest, features: Callable[[Any], Any] | None = None) -> Any:
    """The reference side of FID, once per run: the world judge's features of real demo-world images, or
    Inception's of the user's reference folder. ``features``: an extractor already loaded (the local shard
    measurer's), else one is loaded here."""
    if features is None:
        from ldmpick.calibration.shards import ShardMeasurer

        features = ShardMeasurer(req).feature_extractor()
    if req.reference is None:
        from ldmpick.demo.world import dataset

        ref_images, _, _ = dataset(req.seed + REFERENCE_SEED_OFFSET, REFERENCE_IMAGES)
        return features(ref_images)
    return features(read_reference_images(req.reference))


@dataclass
class CalibrationEstimate:
    """How long a calibration's image generation will take on this device, from the latency profile that measures
    its models here (generation only: loading the models and scoring the images are not in it)."""

    seconds: float | None  # None: no configuration could be predicted
    profile_id: str | None
    images: int  # images still to generate (a self-agreement reference included)
    configs: int  # configurations still to generate
    per_config: list[tuple[str, str, int, float]] = field(default_factory=list)  # (model, sampler, steps, seconds)
    missing: list[str] = field(default_factory=list)  # what could not be predicted, and why
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: the time (or why there is none) and what it rests on."""
        what = f"{self.images} image(s) in {self.configs} configuration(s)"
        if self.seconds is None:
            why = "; ".join(self.missing[:2]) or "nothing to generate"
            return f"no time estimate for {what}: {why}"
        part = f" (the rest not predicted: {'; '.join(self.missing[:2])})" if self.missing else ""
        return (f"estimated {duration_text(self.seconds)} to generate {what} on this device, from profile "
                f"{self.profile_id}{part}; model loading and scoring not included" +
                "".join(f"; {n}" for n in self.notes))


def duration_text(seconds: float) -> str:
    """'42 s', '23.4 min', '2.1 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min" if seconds < 2 * 3600 else f"{seconds / 3600:.1f} h"


def estimate_duration(req: CalibrationRequest, done: list[CalibrationResult] | None = None,
                      profile: Any = None, shards: Any = None) -> CalibrationEstimate:
    """The generation time of what ``req`` still has to measure (the grid less ``done``, less a scorer
    calibration's configurations kept in ``shards``), from ``profile`` (default: the profile chosen for these
    models, if it was measured on this device): per configuration, ``samples`` images in calls of the profile's
    batch, each call costing what the profile predicts for that model, sampler and step count. A model the profile
    does not measure, or measures at another resolution than it runs at, is not predicted (and said so)."""
    import math as _math

    from ldmpick.costs.latency import predict
    from ldmpick.models.catalogue import resolve_model

    specs = {m: resolve_model(m) for m in req.models}
    finished = {(r.model, r.sampler, r.steps) for r in (done or [])}
    todo = [c for c in req.configs() if (specs[c[0]].name, c[1], c[2]) not in finished]
    measure = req.measured_configs(todo) if req.scorer is not None else todo
    if req.scorer is not None and shards is not None:
        from ldmpick.calibration.shards import ShardTask

        kept = shards.load([ShardTask(*c, 0, req.samples) for c in measure])
        measure = [c for c in measure if ShardTask(*c, 0, req.samples).key not in kept]
    missing = []
    if profile is None:
        from ldmpick.generation.runner import load_profile_for

        try:
            choice = load_profile_for(None, req.device, models=req.models)
        except LdmpickError:
            choice = None
        if choice is not None and not choice.this_device:
            missing.append(f"profile {choice.profile.id} was measured on another device")
            choice = None
        profile = choice.profile if choice is not None else None
    est = CalibrationEstimate(None, profile.id if profile is not None else None, len(measure) * req.samples,
                              len(measure), missing=missing)
    if profile is None:
        est.missing.append(f"no profile measures {', '.join(s.name for s in specs.values())} on this device "
                           f"(measure one: ldmpick profile --models {','.join(req.models)})")
        return est
    batch = profile.settings.batch
    if batch != req.batch:
        est.notes.append(f"the profile measured batch {batch}, this run generates {req.batch} at once: counted as "
                         f"calls of {batch}")
    total = 0.0
    for m, sampler, steps in measure:
        spec = specs[m]
        if profile.settings.resolution != spec.native_resolution:
            why = f"{spec.name}: the profile measured {profile.settings.resolution} px, it runs at " \
                  f"{spec.native_resolution} px"
        else:
            pred = predict(profile, [spec.name], sampler, steps)
            why = f"{spec.name} {sampler}: not in profile {profile.id}" if pred is None else ""
        if why:
            if why not in est.missing:
                est.missing.append(why)
            continue
        seconds = _math.ceil(req.samples / batch) * pred.total_ms / 1e3
        est.per_config.append((spec.name, sampler, steps, seconds))
        total += seconds
    if est.per_config:
        est.seconds = total
    return est


def profile_id_for(req: CalibrationRequest) -> str:
    """The profile these models' latencies come from on this device (for the points' provenance)."""
    from ldmpick.generation.runner import load_profile_for

    try:
        choice = load_profile_for(None, req.device, models=req.models)
    except LdmpickError:
        return "unprofiled"
    return choice.profile.id if choice is not None else "unprofiled"


# ---------------------------------------------------------------------------------------------- the quality table


def points_of(cal: Calibration) -> list[Any]:
    """The calibration as quality-table rows: one ``fid`` and (demo world) one ``prompt_acc`` row per config; a
    scorer calibration, one row on its scorer scale (the scale key in the ``metric`` column) per config."""
    from ldmpick.quality.table import QualityPoint

    req = cal.request
    rows = []
    for r in cal.results:
        common = dict(model=r.model, unet_params=r.unet_params, sampler=r.sampler, steps=r.steps,
                      guidance=req.guidance, resolution=r.resolution, num_samples=r.samples, dataset=req.dataset,
                      series=f"calibrated:{req.dataset}", source=f"calibrated:{cal.profile_id}")
        if r.scale is not None:
            rows.append(QualityPoint(metric=r.scale, value=r.score, **common))  # type: ignore[arg-type]
            continue
        rows.append(QualityPoint(metric="fid", value=r.fid, **common))  # type: ignore[arg-type]
        if r.prompt_acc is not None:
            rows.append(QualityPoint(metric="prompt_acc", value=r.prompt_acc, **common))
    return rows


def _row_key(p: Any) -> tuple:
    return (p.model, p.sampler, p.steps, p.metric, p.dataset, p.guidance, p.resolution)


def check_table_name(model: str) -> None:
    """A model name the quality table can hold as it is: one a spreadsheet would run as a formula is refused (a
    changed name would no longer match the model)."""
    from ldmpick.files.storage import csv_cell

    if csv_cell(model) != model:
        raise UsageError(f"model name '{model}' starts with '{model[0]}', which spreadsheets run as a formula; "
                         "register the model under a plain name ('ldmpick models add NAME FOLDER') and use that name")


def append_points(points: list[Any], path: Path) -> int:
    """Add ``points`` to the quality table at ``path`` (created if missing), replacing rows of the same model,
    sampler, steps, metric, data set, guidance and resolution. Atomic, under a file lock. Returns the row count.

    The new table is read back with the same reader ``fit``, ``plot`` and ``calibrate`` use before it replaces the
    old one: rows that reader would refuse are refused here, and the table stays as it was."""
    from ldmpick.quality.table import read_table, read_table_file, table_text
    from ldmpick.files.storage import atomic_write_text, file_lock

    for p in points:
        check_table_name(p.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        old = read_table_file(path) if path.exists() else []
        new_keys = {_row_key(p) for p in points}
        rows = [p for p in old if _row_key(p) not in new_keys] + list(points)
        text = table_text(rows, "Your measured quality points (ldmpick calibrate).")
        try:
            read_table(text, "the new rows")
        except UsageError as exc:
            raise UsageError(f"refusing to write bad rows to the quality table '{path}' (left as it was): {exc}") \
                from None
        atomic_write_text(path, text)
    return len(rows)


