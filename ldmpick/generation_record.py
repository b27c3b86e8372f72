"""The record of one ``generate`` run: the sidecar JSON next to the images (settings, selection, prediction, and
per prompt its seeds, files and measured times) and the metadata written into each PNG. The sidecar is rewritten
after each prompt, so an interrupted run keeps its record. No printing."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any


class GenerationRecord:
    """Builds the sidecar document of a run prepared by ``generation_setup`` and saves images as they come."""

    def __init__(self, setup: Any, command: str) -> None:  # setup: generation_setup.GenerationSetup
        from ldmpick import __version__
        from ldmpick.generation import scheduler_class_name

        self.folder: Path = setup.folder
        self.settings = setup.settings
        self.prediction = setup.prediction
        self.scheduler = scheduler_class_name(setup.settings.sampler)
        self.sidecar: Path | None = None  # named after the first image
        self.doc: dict[str, Any] = {
            "ldmpick_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": command,
            "settings": setup.settings.to_json(),
            "selection": setup.selection,
            "prediction": setup.prediction.to_json() if setup.prediction else None,
            "prompts": [],
            "images": [],
        }

    def image_metadata(self, prompt: str, seed: int, measured_ms: float) -> dict[str, Any]:
        """The fields written into one PNG: enough to redo the image and to compare predicted with measured."""
        from ldmpick import __version__

        s, prediction = self.settings, self.prediction
        return {
            "prompt": prompt, "negative_prompt": s.negative_prompt, "model": s.model,
            "model_source": s.source, "sampler": s.sampler, "scheduler": self.scheduler,
            "steps": s.steps, "guidance": s.guidance, "seed": seed,
            "resolution": f"{s.resolution}x{s.resolution}", "batch": s.n,
            "device": s.device, "dtype": s.dtype, "mode": s.mode,
            "predicted_fid": prediction.fid if prediction else None,
            "predicted_latency_ms": round(prediction.total_ms, 3) if prediction else None,
            "measured_latency_ms": round(measured_ms, 3), "ldmpick_version": __version__,
        }

    def add_prompt(self, pr: Any) -> None:  # pr: generation.PromptResult
        """Save one prompt's images (with their metadata) and rewrite the sidecar."""
        from ldmpick.outputs import create_sidecar, metadata_text, save_image, sidecar_number

        first = None
        if self.sidecar is None:  # the record exists before any image: no image is ever without it
            self.sidecar = create_sidecar(self.folder, self.doc)
            first = sidecar_number(self.sidecar)
        names = []
        for image, seed in zip(pr.images, pr.seeds):
            path = save_image(self.folder, image, pr.prompt, seed,
                              metadata_text(self.image_metadata(pr.prompt, seed, pr.times.total_ms)), first)
            first = None
            names.append(path.name)
            self.doc["images"].append({"file": path.name, "prompt_index": pr.index, "seed": seed})
            self.write()
        self.doc["prompts"].append({"prompt": pr.prompt, "seeds": pr.seeds, "files": names,
                                    "measured": pr.times.to_json()})
        self.write()

    def finish(self, result: Any) -> None:  # result: generation.GenerationResult
        """Add what is known once the run is over (scheduler, timesteps, load and setup times, notes)."""
        self.doc.update(scheduler_class=result.scheduler_class, unet_evals=result.unet_evals,
                        timesteps=result.timesteps, load_ms=round(result.load_ms, 3),
                        setup_ms=round(result.setup_ms, 3), notes=result.notes)
        self.write()

    def write(self) -> None:
        from ldmpick.outputs import write_sidecar

        assert self.sidecar is not None, "no image saved yet"
        write_sidecar(self.sidecar, self.doc)
