"""The unit of calibration work: one shard = one configuration (model, sampler, steps) and one range of its images.

A shard generates its images with the seeds the whole run would give them (image ``i`` of every configuration is
seeded ``seed + i``), and returns only what the measurements need: the images' feature vectors and, in the demo
world, per-attribute counts of prompts followed. Never the images. The single-machine run and the cluster run
(``ldmpick.transport.ray_cluster``) execute the same shards with this same code, and assemble each configuration's statistics the
same way, so the same seeds give the same FID whichever ran them.

Shard boundaries are multiples of the request's ``batch`` (the images generated in one pipeline call), so a shard is
generated exactly as the single-machine run generates that batch.

Finished shards are kept in a ``ShardStore`` (a folder beside the partial file: one safetensors file of features and
one JSON file of counts per shard, each written atomically), so an interrupted run, or one that lost a worker, loses
only the shards that had not finished. No printing here.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldmpick.files.errors import UsageError

SHARD_SCHEMA = "ldmpick.calibration-shard/1"
MAX_SHARD_FILE_BYTES = 512 * 1024 * 1024  # 30k Inception features are 240 MB; a shard holds far fewer


@dataclass(frozen=True)
class ShardTask:
    """Images ``start`` to ``stop`` (exclusive) of configuration (``model``, ``sampler``, ``steps``)."""

    model: str  # as the request names it (a registered name, folder or hub id)
    sampler: str
    steps: int
    start: int
    stop: int

    @property
    def config(self) -> tuple[str, str, int]:
        return (self.model, self.sampler, self.steps)

    @property
    def images(self) -> int:
        return self.stop - self.start

    @property
    def key(self) -> str:
        """A file-name-safe identity of the shard within its request."""
        model = re.sub(r"[^A-Za-z0-9._-]+", "_", self.model)[-60:]
        return f"{model}.{self.sampler}.{self.steps}.{self.start}-{self.stop}"


@dataclass
class ShardResult:
    task: ShardTask
    features: Any  # numpy (images, d), as the feature extractor returned them
    attribute_hits: dict[str, int] | None  # demo world: images whose attribute matched its caption, per attribute
    all_hits: int | None  # demo world: images with every attribute right
    seconds: float  # wall time of generating and measuring the shard
    worker: str = ""  # where it ran (host:pid), for the run's account


def shard_tasks(req: Any, configs: list[tuple[str, str, int]] | None = None) -> list[ShardTask]:
    """The shards of ``configs`` (default: the whole grid), in the grid's order, ``req.batch`` images each (the last
    one shorter)."""
    out = []
    for model, sampler, steps in req.configs() if configs is None else configs:
        for start in range(0, req.samples, req.batch):
            out.append(ShardTask(model, sampler, steps, start, min(start + req.batch, req.samples)))
    return out


@dataclass
class ShardMeasurer:
    """Everything a worker needs to measure shards of one request: the prompts (and demo scenes), the feature
    extractor and judge, and one loaded pipeline at a time (tasks come grouped by model)."""

    req: Any  # CalibrationRequest
    _prompts: list[str] = field(default_factory=list)
    _scenes: list[Any] = field(default_factory=list)
    _judge: Any = None
    _features: Any = None
    _pipe: tuple[str, Any, int] | None = None

    def _prepare(self) -> None:
        if self._features is not None:
            return
        from ldmpick.calibration.images import PROMPT_SEED_OFFSET

        req = self.req
        if req.reference is None:
            from ldmpick.demo.world import dataset
            from ldmpick.calibration.image_quality import load_judge

            self._judge = load_judge(req.judge_weights)
            _, self._prompts, self._scenes = dataset(req.seed + PROMPT_SEED_OFFSET, req.samples)
            self._features = self._judge.features
        else:
            from ldmpick.generation.runner import read_prompts_file
            from ldmpick.calibration.image_quality import InceptionFeatures

            self._features = InceptionFeatures(req.inception_weights, req.device).features
            base = read_prompts_file(req.prompts_file)
            self._prompts = [base[i % len(base)] for i in range(req.samples)]

    def feature_extractor(self) -> Any:
        """The function from uint8 images to feature vectors (the world judge's, or Inception's), loaded once."""
        self._prepare()
        return self._features

    def _pipeline(self, model: str) -> tuple[Any, int, Any]:  # (pipeline, resolution, ModelSpec)
        if self._pipe is None or self._pipe[0] != model:
            from ldmpick.models.catalogue import resolve_model
            from ldmpick.generation.runner import load_pipeline

            self._pipe = None  # free the previous model first
            spec = resolve_model(model)
            self._pipe = (model, load_pipeline(spec.path, self.req.device, self.req.dtype), spec.native_resolution,
                          spec)
        return self._pipe[1], self._pipe[2], self._pipe[3]

    def measure(self, task: ShardTask) -> ShardResult:
        from ldmpick.calibration.images import generate_images

        self._prepare()
        t0 = time.perf_counter()
        pipe, resolution, spec = self._pipeline(task.model)
        req = self.req
        images = generate_images(pipe, self._prompts[task.start:task.stop], task.sampler, task.steps, req.guidance,
                                 req.seed + task.start, req.batch, resolution,
                                 extra=spec.adapter.steps_kwargs(spec, task.steps))
        feats = self._features(images)
        hits = every = None
        if self._judge is not None:
            hits, every = self._judge.attribute_hits(images, self._scenes[task.start:task.stop])
        return ShardResult(task, feats, hits, every, round(time.perf_counter() - t0, 3), worker_name())


def worker_name() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def assemble(task_results: list[ShardResult]) -> tuple[Any, dict[str, float] | None]:
    """One configuration's feature matrix (images in seed order) and, in the demo world, its prompt accuracy
    (``{attribute: fraction, "mean": ..., "all": ...}``, as ``Judge.prompt_accuracy`` gives it)."""
    import numpy as np

    from ldmpick.calibration.image_quality import accuracy_from_hits

    parts = sorted(task_results, key=lambda r: r.task.start)
    n = sum(r.task.images for r in parts)
    feats = np.concatenate([np.asarray(r.features) for r in parts])
    if parts[0].attribute_hits is None:
        return feats, None
    hits = {a: sum(r.attribute_hits[a] for r in parts) for a in parts[0].attribute_hits}  # type: ignore[index]
    return feats, accuracy_from_hits(hits, sum(r.all_hits for r in parts), n)  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------- finished shards


class ShardStore:
    """Finished shards of one request, kept in a folder so that an interrupted run resumes shard by shard.

    Per shard: ``<key>.safetensors`` (the features) and ``<key>.json`` (the counts, the worker, the time, and the
    request's digest); the JSON is written last, so a shard counts as finished only once both files are complete.
    """

    def __init__(self, folder: Path, request_digest: str):
        self.folder = Path(folder)
        self.digest = request_digest

    def save(self, result: ShardResult) -> None:
        import numpy as np
        from safetensors.numpy import save

        from ldmpick.files.storage import atomic_write_bytes, atomic_write_json

        self.check_not_linked()
        self.folder.mkdir(parents=True, exist_ok=True)
        key = result.task.key
        feats = np.ascontiguousarray(result.features)
        atomic_write_bytes(self.folder / f"{key}.safetensors", save({"features": feats}))
        atomic_write_json(self.folder / f"{key}.json", {
            "schema": SHARD_SCHEMA, "request": self.digest, "task": result.task.__dict__,
            "attribute_hits": result.attribute_hits, "all_hits": result.all_hits, "seconds": result.seconds,
            "worker": result.worker})

    def load(self, tasks: list[ShardTask]) -> dict[str, ShardResult]:
        """The finished shards among ``tasks``; anything else in the folder is ignored, anything malformed refused."""
        import numpy as np
        from safetensors import SafetensorError
        from safetensors.numpy import load

        from ldmpick.files.reader import read_capped_bytes, read_json_file

        out: dict[str, ShardResult] = {}
        self.check_not_linked()
        if not self.folder.is_dir():
            return out
        for task in tasks:
            meta_path = self.folder / f"{task.key}.json"
            if not meta_path.exists():
                continue
            meta = read_json_file(meta_path, "finished calibration shard", max_bytes=1024 * 1024)
            where = f"finished calibration shard '{meta_path}'"
            if (not isinstance(meta, dict) or meta.get("schema") != SHARD_SCHEMA or meta.get("request") != self.digest
                    or meta.get("task") != task.__dict__):
                raise UsageError(f"{where} belongs to another calibration; rerun with --restart to discard it")
            try:
                feats = load(read_capped_bytes(self.folder / f"{task.key}.safetensors", "calibration shard",
                                               MAX_SHARD_FILE_BYTES))["features"]
            except (SafetensorError, KeyError, ValueError):
                raise UsageError(f"{where}: its features file is unreadable; rerun with --restart") from None
            hits, every = meta.get("attribute_hits"), meta.get("all_hits")
            seconds = meta.get("seconds", 0.0)
            if (feats.ndim != 2 or feats.shape[0] != task.images or feats.dtype.kind != "f"
                    or not np.isfinite(feats).all() or not _counts_ok(hits, every, task.images)
                    or not _number_ok(seconds) or not isinstance(meta.get("worker", ""), str)):
                # (features of another dtype or count, or true as a hit count, gave FID 883.9 instead of 378.3)
                raise UsageError(f"{where} is malformed; rerun with --restart to discard it")
            out[task.key] = ShardResult(task, feats.astype(np.float64, copy=False), hits, every, float(seconds),
                                        meta.get("worker", ""))
        return out

    def check_not_linked(self) -> None:
        """The shard folder is ldmpick's own: a link there would be written through and never cleared."""
        if self.folder.is_symlink():
            raise UsageError(f"the calibration shard folder '{self.folder}' is a link; ldmpick never writes through "
                             "a link: remove it (its finished shards are elsewhere) and rerun")

    def clear(self) -> None:
        if self.folder.is_dir() and not self.folder.is_symlink():
            shutil.rmtree(self.folder)


def _count(v: Any, n: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= n


def _counts_ok(hits: Any, every: Any, n: int) -> bool:
    if hits is None and every is None:
        return True
    return (isinstance(hits, dict) and len(hits) <= 64 and all(isinstance(k, str) and _count(v, n)
                                                               for k, v in hits.items()) and _count(every, n))


def _number_ok(v: Any) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def request_digest(req: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(req.key(), sort_keys=True).encode()).hexdigest()[:12]


class LocalShardRunner:
    """Runs shards here, in order, one pipeline loaded at a time."""

    def __init__(self, req: Any):
        self.measurer = ShardMeasurer(req)

    def run(self, tasks: list[ShardTask]) -> Any:  # -> Iterator[ShardResult]
        for task in tasks:
            yield self.measurer.measure(task)

    def describe(self) -> str:
        return ""
