"""The end-to-end path every family test takes through the command line, once: ``models add`` -> ``profile`` on the
CPU -> ``recommend`` (no quality data on the paper's scale for a model outside its family: listed with the command
that measures it) -> ``generate`` two steps. The checks every family shares are made here; the caller checks what is
its family's own on what this returns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.profiles.schema import load_profile

runner = CliRunner()


@dataclass
class EndToEnd:
    profile: Any  # the loaded profile
    model: Any  # its entry of the model
    raw: dict  # the profile file as JSON
    record: dict  # generate --json's record
    png: Path  # the one image generate wrote


def add_profile_recommend_generate(name: str, folder: Path, resolution: int, tmp_path: Path,
                                   prompt: str = "a red cat") -> EndToEnd:
    from PIL import Image

    res = str(resolution)
    r = runner.invoke(app, ["models", "add", name, str(folder)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "p.json"
    r = runner.invoke(app, ["profile", "--models", name, "--device", "cpu", "--resolution", res, "--warmup", "1",
                            "--repeats", "3", "--max-seconds", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    prof = load_profile(out)
    m = prof.model(name)
    assert m.ok and m.text_encoder is not None and m.vae_decode is not None  # its own fixed parts
    raw = json.loads(out.read_text())
    assert raw["schema"] == "ldmpick.profile/4" and "denoiser_step" in raw["models"][0]

    r = runner.invoke(app, ["recommend", "--profile", str(out), "--budget", "100s"])
    assert r.exit_code == 2
    assert "no quality data" in r.stderr and f"ldmpick calibrate --models {name}" in r.stderr

    gen_out = tmp_path / "images"
    r = runner.invoke(app, ["generate", prompt, "--model", name, "--steps", "2", "--resolution", res, "--device",
                            "cpu", "--seed", "1", "--out", str(gen_out), "--json"])
    assert r.exit_code == 0, r.output
    pngs = sorted(gen_out.glob("*.png"))
    assert len(pngs) == 1
    assert Image.open(pngs[0]).size == (resolution, resolution)
    return EndToEnd(prof, m, raw, json.loads(r.stdout), pngs[0])
