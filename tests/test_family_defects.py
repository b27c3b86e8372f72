"""Issue 25, the defects found with tiny pipelines: SD3 without its T5 loads and generates; a text encoder the
pipeline needs that is null or missing is refused when the model is added; a library's error is never cut
mid-word."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from family_pipelines import FAMILIES, build_family_pipeline, tiny_resolution
from typer.testing import CliRunner

from ldmpick.cli import app

runner = CliRunner()


def _drop(folder: Path, *components: str, null: bool = True) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    for comp in components:
        if null:
            index[comp] = [None, None]
        else:
            index.pop(comp, None)
        shutil.rmtree(folder / comp, ignore_errors=True)
    (folder / "model_index.json").write_text(json.dumps(index))


@pytest.mark.skipif("sd3" not in FAMILIES, reason="this diffusers has no SD3 pipeline")
def test_sd3_without_its_t5_is_added_profiled_and_generates(tmp_path):
    folder = build_family_pipeline("sd3", tmp_path / "sd3-no-t5")
    _drop(folder, "text_encoder_3", "tokenizer_3")
    assert runner.invoke(app, ["models", "add", "sd3-no-t5", str(folder)]).exit_code == 0
    res = str(tiny_resolution("sd3"))
    out = tmp_path / "p.json"
    r = runner.invoke(app, ["profile", "--models", "sd3-no-t5", "--device", "cpu", "--resolution", res, "--warmup",
                            "1", "--repeats", "3", "--max-seconds", "2", "--samplers", "flow-euler", "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["generate", "a cat", "--model", "sd3-no-t5", "--steps", "2", "--resolution", res,
                            "--device", "cpu", "--seed", "1", "--out", str(tmp_path / "img"), "--json"])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "img").glob("*.png"))) == 1


@pytest.mark.parametrize("family, component, null", [("sdxl", "text_encoder_2", True), ("sdxl", "text_encoder_2", False),
                                                     ("sd3", "text_encoder", True), ("flux", "text_encoder_2", True)])
def test_a_needed_text_encoder_that_is_null_or_missing_is_refused(tmp_path, family, component, null):
    if family not in FAMILIES:
        pytest.skip(f"this diffusers has no {family} pipeline")
    folder = build_family_pipeline(family, tmp_path / family)
    _drop(folder, component, component.replace("text_encoder", "tokenizer"), null=null)
    r = runner.invoke(app, ["models", "add", "m", str(folder)])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert f"its {component} is" in r.stderr, r.stderr
    assert "the pipeline needs it" in r.stderr or "no way to run without it" in r.stderr, r.stderr


def test_a_library_error_is_cut_at_a_word_never_inside_one():
    from ldmpick.generation.runner import clipped_message

    exc = ValueError("Pipeline expected " + ", ".join(f"'component_{i}'" for i in range(60)))
    text = clipped_message(exc)
    assert len(text) <= 304 and text.endswith(" ...")
    prefix = text[:-4]
    assert str(exc).startswith(prefix) and str(exc)[len(prefix)] in " ,;:", text  # the cut falls between words
    assert clipped_message(ValueError("short\nand two lines")) == "short and two lines"


@pytest.mark.skipif("sdxl" not in FAMILIES, reason="this diffusers has no SDXL pipeline")
def test_a_model_with_an_edm_schedule_keeps_it(tmp_path):
    """Playground v2.5 ships an EDM scheduler: --sampler ddim ran diffusers' default linear betas (broken images)."""
    from diffusers import EDMDPMSolverMultistepScheduler

    folder = build_family_pipeline("sdxl", tmp_path / "edm")
    EDMDPMSolverMultistepScheduler().save_pretrained(folder / "scheduler")
    index = json.loads((folder / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "EDMDPMSolverMultistepScheduler"]
    (folder / "model_index.json").write_text(json.dumps(index))
    assert runner.invoke(app, ["models", "add", "edm", str(folder)]).exit_code == 0
    res = str(tiny_resolution("sdxl"))
    base = ["generate", "a cat", "--model", "edm", "--steps", "2", "--resolution", res, "--device", "cpu", "--seed",
            "1"]
    r = runner.invoke(app, [*base, "--sampler", "ddim", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert "EDMDPMSolverMultistepScheduler schedule" in r.stderr and "only its own scheduler" in r.stderr
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["settings"]["sampler"] == "own:EDMDPMSolverMultistepScheduler"


def test_a_terminal_shift_schedule_refuses_one_step(tmp_path):
    """Qwen-Image's scheduler stretches its sigmas to a terminal shift: at one step diffusers divides by zero (NaN
    timesteps). Refused in one line before anything loads."""
    from pipelines_qwen_z import build_qwen_z_pipeline

    folder = build_qwen_z_pipeline("qwen-image", tmp_path / "qwen")
    r = runner.invoke(app, ["generate", "a cat", "--model", str(folder), "--steps", "1", "--resolution", "32",
                            "--device", "cpu", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert "runs at least 2 steps" in r.stderr


def test_hidream_is_run_and_profiled_only_at_the_size_it_really_makes(tmp_path):
    """HiDreamImagePipeline rescales every request to its native area: --resolution 512 wrote a 1024 px image that
    the record and the prediction called 512 px."""
    from pipelines_chroma_hidream import build_pipeline
    from pipelines_chroma_hidream import tiny_resolution as hidream_side

    folder = build_pipeline("hidream", tmp_path / "hidream")
    native = hidream_side("hidream")  # the tiny model's native side (1024 px for the released ones)
    for args in (["generate", "a cat", "--model", str(folder), "--steps", "2", "--out", str(tmp_path / "o")],
                 ["profile", "--models", str(folder), "--out", str(tmp_path / "p.json")]):
        r = runner.invoke(app, [*args, "--resolution", str(native // 2), "--device", "cpu"])
        assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
        assert f"generates {native} px whatever size is asked" in r.stderr and f"--resolution {native}" in r.stderr
    from ldmpick.models.catalogue import resolve_model

    spec = resolve_model("hidream-i1-full")
    assert spec.adapter.generated_resolution(spec, 512) == 1024 == spec.native_resolution


def test_a_checkpoint_distilled_to_run_unguided_says_so_at_models_add_and_runs_and_profiles_so(tmp_path):
    """SDXL-Lightning-style checkpoints (issue 25): their configs cannot say they run without classifier-free
    guidance; 'models add --guidance 0' records it, and generate and profile then run and measure it so."""
    import json

    from typer.testing import CliRunner

    from family_pipelines import build_family_pipeline
    from ldmpick.cli import app
    from ldmpick.models.catalogue import resolve_model
    from ldmpick.planning.plan import plan_generation

    runner = CliRunner()
    folder = build_family_pipeline("sdxl", tmp_path / "lightning")
    r = runner.invoke(app, ["models", "add", "lightning", str(folder), "--guidance", "0"])
    assert r.exit_code == 0 and "runs at guidance 0 by default (no classifier-free guidance)" in r.stderr, r.output
    spec = resolve_model("lightning")
    assert spec.guidance == 0.0 and not spec.adapter.uses_cfg(spec, True)  # profiled without the CFG batch
    plan = plan_generation(["a cat"], out=tmp_path / "o", model="lightning", steps=4, sampler="euler", device="cpu",
                           resolution=64)
    assert plan.settings.guidance == 0.0 and not plan.settings.cfg
    # re-adding without --guidance forgets it; a bad value is one line, nothing registered
    assert runner.invoke(app, ["models", "add", "lightning", str(folder), "--force"]).exit_code == 0
    assert resolve_model("lightning").guidance != 0.0
    r = runner.invoke(app, ["models", "add", "other", str(folder), "--guidance", "nan"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "--guidance" in r.stderr
    assert "other" not in json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout).__repr__()
