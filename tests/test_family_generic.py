"""Pipelines without an adapter (issue 25): served generically when they follow diffusers' conventions — measured
through their own call (the denoiser's captured inputs replayed, the text encoders at the length the call encoded),
labelled generic everywhere — and refused in one line that says why when they do not."""

from __future__ import annotations

import json
import pytest
from typer.testing import CliRunner

from family_cli import add_profile_recommend_generate
from ldmpick.cli import app
from pipelines_generic import GENERIC_BUILDERS, GENERIC_RESOLUTION, PIPELINE_CLASSES

runner = CliRunner()


@pytest.mark.parametrize("pipeline", sorted(GENERIC_BUILDERS))
def test_a_pipeline_without_an_adapter_goes_end_to_end(pipeline, tmp_path, one_torch_thread):
    if pipeline not in PIPELINE_CLASSES:
        pytest.skip(f"this diffusers has no {pipeline}")
    from ldmpick.models.families.generic import CAPTURES

    folder = GENERIC_BUILDERS[pipeline](tmp_path / "model")
    res = GENERIC_RESOLUTION[pipeline]
    run = add_profile_recommend_generate("mine", folder, res, tmp_path)
    m = run.model
    assert m.family == "generic" and m.samplers == ["flow-euler"]  # its own scheduler only
    # the denoiser's step was timed on what the pipeline really fed it: the capture of its own call
    (captured,) = [c for key, c in CAPTURES.items() if key[0] == str(folder.resolve()) and key[1] == res]
    assert captured.decode_latents.shape[-1] == res // 8 and captured.evals_per_step >= 1
    assert captured.encoder_ids, "the text encoder's token ids were captured"
    seq = next(iter(captured.encoder_ids.values())).shape[-1]
    assert f"({seq} tokens)" in m.text_encoders  # profiled at the length the call encoded
    call = run.raw["models"][0]["pipeline_call"]
    assert call is not None and call["sampler"] == "flow-euler"
    assert run.record["settings"]["family"] == "generic"
    r = runner.invoke(app, ["models", "list", "--json"])
    row = next(x for x in json.loads(r.stdout) if x["name"] == "mine")
    assert row["family"] == "generic"
    # another sampler is refused: ldmpick cannot know which schedulers its pipeline takes
    r = runner.invoke(app, ["generate", "a cat", "--model", "mine", "--sampler", "flow-unipc", "--steps", "2",
                            "--resolution", str(res), "--out", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "runs its own scheduler only" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize("pipeline_class, denoiser, why", [
    ("NoSuchPipeline", "transformer", "is not a pipeline class of diffusers"),
    ("StableDiffusionXLImg2ImgPipeline", "transformer", "takes no height, width"),  # image-to-image
    ("StableDiffusionPAGPipeline", "unet", "denoiser is not a 'transformer' component"),
])
def test_a_pipeline_that_does_not_follow_the_convention_is_refused_in_one_line(pipeline_class, denoiser, why,
                                                                              tmp_path):
    folder = GENERIC_BUILDERS["AuraFlowPipeline"](tmp_path / "model")
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = pipeline_class
    index[denoiser] = index.pop("transformer")
    (folder / "model_index.json").write_text(json.dumps(index))
    r = runner.invoke(app, ["models", "add", "bad", str(folder)])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert "has no ldmpick adapter" in r.stderr and why in r.stderr and "docs/families.md" in r.stderr


def test_a_scheduler_that_is_no_ldmpick_sampler_is_refused(tmp_path):
    folder = GENERIC_BUILDERS["AuraFlowPipeline"](tmp_path / "model")
    sched = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(sched.read_text())
    config["_class_name"] = "EDMEulerScheduler"
    sched.write_text(json.dumps(config))
    r = runner.invoke(app, ["models", "add", "edm", str(folder)])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "is not one of ldmpick's samplers" in r.stderr and "EDMEulerScheduler" in r.stderr
