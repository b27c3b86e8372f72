"""The record of one ``generate`` run: a typed ``RunRecord`` (settings, selection, prediction, and per prompt its
seeds, files and measured times), written as the sidecar JSON next to the images (schema
``ldmpick.generation/1``, docs/generate.md), and the metadata written into each PNG. The sidecar is rewritten after
each prompt, so an interrupted run keeps its record. No printing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


@dataclass
class ImageEntry:
    file: str
    prompt_index: int
    seed: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "prompt_index": self.prompt_index, "seed": self.seed}


@dataclass
class PromptEntry:
    prompt: str
    seeds: list[int]
    files: list[str]
    measured: Any  # generation.PartTimes
    call_ms: float | None = None  # the whole pipeline call (prompt to decoded images)
    write_ms: float | None = None  # writing its images, known once they are written (``finish``)

    def to_json(self) -> dict[str, Any]:
        measured = self.measured.to_json()
        if self.call_ms is not None:  # what a budget counts: from the prompt to the written images
            measured["call_ms"] = round(self.call_ms, 3)
            if self.write_ms is not None:
                measured["write_ms"] = round(self.write_ms, 3)
                measured["latency_ms"] = round(self.call_ms + self.write_ms, 3)
        return {"prompt": self.prompt, "seeds": self.seeds, "files": self.files, "measured": measured}


@dataclass
class RunOutcome:
    """What is known once the run is over."""

    scheduler_class: str
    unet_evals: int
    timesteps: list[float]
    load_ms: float
    setup_ms: float
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"scheduler_class": self.scheduler_class, "unet_evals": self.unet_evals, "timesteps": self.timesteps,
                "load_ms": round(self.load_ms, 3), "setup_ms": round(self.setup_ms, 3), "notes": self.notes}


@dataclass
class RunRecord:
    """One run of ``generate``: what was planned and what happened."""

    ldmpick_version: str
    created: str
    command: str
    settings: Any  # generation.RunSettings
    selection: dict[str, Any] | None  # planning.GenerationPlan.choice_json()
    prediction: Any | None  # costs.latency.LatencyPrediction
    quality: Any | None  # planning.QualityPrediction
    guidance_source: str  # why the run used its guidance scale
    prompts: list[PromptEntry] = field(default_factory=list)
    images: list[ImageEntry] = field(default_factory=list)
    outcome: RunOutcome | None = None

    def to_json(self) -> dict[str, Any]:
        doc = {
            "ldmpick_version": self.ldmpick_version,
            "created": self.created,
            "command": self.command,
            "settings": self.settings.to_json(),
            "guidance_source": self.guidance_source,
            "selection": self.selection,
            "prediction": self.prediction.to_json() if self.prediction else None,
            "quality": self.quality.to_json() if self.quality else None,
            "prompts": [p.to_json() for p in self.prompts],
            "images": [i.to_json() for i in self.images],
            # false until the run is over: an interrupted run's record says so (and has no outcome fields)
            "complete": self.outcome is not None,
        }
        if self.outcome is not None:
            doc.update(self.outcome.to_json())
        return doc


class GenerationRecord:
    """Keeps the ``RunRecord`` of a run planned by ``planning.plan_generation`` and saves images as they come."""

    def __init__(self, plan: Any, command: str) -> None:  # plan: planning.GenerationPlan
        from ldmpick import __version__
        from ldmpick.generation.runner import scheduler_class_name

        self.folder: Path = plan.folder
        self.scheduler = scheduler_class_name(plan.settings.sampler)
        self.sidecar: Path | None = None  # named after the first image
        self.run = RunRecord(
            ldmpick_version=__version__,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            command=command,
            settings=plan.settings,
            selection=plan.choice_json(),
            prediction=plan.latency,
            quality=plan.quality,
            guidance_source=plan.guidance.why,
        )

    @property
    def doc(self) -> dict[str, Any]:
        return self.run.to_json()

    def image_metadata(self, prompt: str, seed: int, measured_ms: float) -> dict[str, Any]:
        """The fields written into one PNG: enough to redo the image and to compare predicted with measured."""
        s, prediction, quality = self.run.settings, self.run.prediction, self.run.quality
        return {
            "prompt": prompt, "negative_prompt": s.negative_prompt, "model": s.model,
            "model_source": s.source, "sampler": s.sampler, "scheduler": self.scheduler,
            "steps": s.steps, "guidance": s.guidance, "seed": seed,
            "resolution": f"{s.resolution}x{s.resolution}", "batch": s.n,
            "device": s.device, "dtype": s.dtype, "mode": s.mode, "knobs": getattr(s, "knobs", "none"),
            "predicted_fid": round(quality.value, 3) if quality is not None and quality.metric == "fid" else None,
            "predicted_latency_ms": round(prediction.total_ms, 3) if prediction else None,
            "measured_latency_ms": round(measured_ms, 3), "ldmpick_version": self.run.ldmpick_version,
        }

    def add_prompt(self, pr: Any) -> None:  # pr: generation.PromptResult
        """Save one prompt's images (with their metadata) and rewrite the sidecar."""
        from ldmpick.generation.outputs import create_sidecar, metadata_text, save_image, sidecar_number

        first = None
        if self.sidecar is None:  # the record exists before any image: no image is ever without it
            self.sidecar = create_sidecar(self.folder, self.doc)
            first = sidecar_number(self.sidecar)
        names = []
        for image, seed in zip(pr.images, pr.seeds):
            path = save_image(self.folder, image, pr.prompt, seed,
                              metadata_text(self.image_metadata(pr.prompt, seed, pr.wall_ms if pr.wall_ms is not None
                                                                else pr.times.total_ms)), first)
            first = None
            names.append(path.name)
            self.run.images.append(ImageEntry(path.name, pr.index, seed))
            self.write()  # after every image: an image is never left without its entry
        self.run.prompts.append(PromptEntry(pr.prompt, pr.seeds, names, pr.times, pr.wall_ms))
        self.write()

    def finish(self, result: Any) -> None:  # result: generation.GenerationResult
        """Add what is known once the run is over (scheduler, timesteps, load and setup times, notes)."""
        self.run.outcome = RunOutcome(result.scheduler_class, result.unet_evals, result.timesteps, result.load_ms,
                                      result.setup_ms, list(result.notes))
        for entry, pr in zip(self.run.prompts, result.prompts):  # each image's write, now that it is done
            entry.write_ms = pr.write_ms
        self.write()

    def write(self) -> None:
        from ldmpick.generation.outputs import write_sidecar

        assert self.sidecar is not None, "no image saved yet"
        write_sidecar(self.sidecar, self.run.to_json())
