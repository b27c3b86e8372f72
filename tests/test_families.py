"""Every backbone family, end to end on the CPU: tiny random pipelines of each (SD, LCM, SDXL, PixArt, SD3, Flux,
Sana, SANA-Sprint) taken through ``models add`` -> ``profile`` -> ``recommend`` -> ``generate``; the adapters'
choices (family from model_index.json, conditioning, encoder stacks, samplers); the built-in catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from family_cli import add_profile_recommend_generate
from family_pipelines import FAMILIES, build_family_pipeline, tiny_resolution
from typer.testing import CliRunner

from ldmpick.models.catalogue import catalogue_entries, load_local_spec, resolve_model
from ldmpick.cli import app
from ldmpick.files.errors import ModelError
from ldmpick.models.families import FAMILIES as ADAPTERS

runner = CliRunner()

# what each tiny pipeline must be recognised as, and facts its adapter must get right
EXPECTED = {
    "sd": dict(family="sd", cfg=True, samplers={"ddim", "dpmpp-2m", "euler", "heun"}, encoders=1),
    "lcm": dict(family="sd", cfg=False, samplers={"lcm"}, encoders=1),
    "sdxl": dict(family="sdxl", cfg=True, samplers={"euler", "dpmpp-2m"}, encoders=2),
    "pixart": dict(family="pixart", cfg=True, samplers={"dpmpp-2m"}, encoders=1),
    "sd3": dict(family="sd3", cfg=True, samplers={"flow-euler", "flow-dpmpp-2m"}, encoders=3),
    "flux": dict(family="flux", cfg=False, samplers={"flow-euler"}, encoders=2),
    "sana": dict(family="sana", cfg=True, samplers={"flow-dpmpp-2m", "flow-euler"}, encoders=1),
    "sana-sprint": dict(family="sana", cfg=False, samplers={"scm"}, encoders=1),
}


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {fam: build_family_pipeline(fam, root / fam) for fam in FAMILIES}


def test_every_family_of_this_diffusers_is_covered():
    assert set(EXPECTED) <= set(FAMILIES) | {"sana", "sana-sprint"}  # Sana only where diffusers has it
    assert {"sd", "sdxl", "pixart", "sd3", "flux"} <= set(FAMILIES)


@pytest.mark.parametrize("fam", FAMILIES)
def test_the_adapter_is_chosen_from_model_index(pipelines, fam):
    spec = load_local_spec(pipelines[fam])
    want = EXPECTED[fam]
    assert spec.family == want["family"]
    assert len(spec.adapter.text_encoders(spec)) == want["encoders"]
    assert want["samplers"] <= set(spec.adapter.fitting_samplers(spec))
    assert spec.adapter.uses_cfg(spec, True) is want["cfg"]  # guidance-distilled models do not double the batch
    flow = spec.adapter.flow_matching
    from ldmpick.models.samplers import get_sampler

    assert all(get_sampler(s).flow == flow or get_sampler(s).distilled_only
               for s in spec.adapter.fitting_samplers(spec))  # flow families never get an epsilon sampler
    assert spec.denoiser_params > 0 and spec.has_weights


def test_family_is_never_guessed_from_the_folders_present(pipelines, tmp_path):
    import shutil

    folder = tmp_path / "odd"
    shutil.copytree(pipelines["sd"], folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "KandinskyV22Pipeline"  # a unet/ folder, but a pipeline ldmpick does not know
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="pipeline class 'KandinskyV22Pipeline' has no ldmpick adapter and cannot be run "
                                         "generically: its __call__ takes no prompt"):
        load_local_spec(folder)
    index["_class_name"] = "FluxPipeline"  # says Flux, holds a UNet: refused, not profiled as something else
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="FluxPipeline with a 'UNet2DConditionModel' denoiser is not supported"):
        load_local_spec(folder)


@pytest.mark.parametrize("fam", FAMILIES)
def test_add_profile_recommend_generate(pipelines, fam, tmp_path):
    name = f"tiny-{fam}"
    run = add_profile_recommend_generate(name, pipelines[fam], tiny_resolution(fam), tmp_path)
    m, want = run.model, EXPECTED[fam]
    assert m.family == want["family"] and m.cfg is want["cfg"]
    assert m.text_encoders.count("tokens") == want["encoders"]
    assert want["samplers"] <= set(m.samplers) == {s.name for s in run.profile.samplers}
    assert run.record["settings"]["family"] == want["family"]
    assert run.record["scheduler_class"]  # the model's own saved scheduler, named


def test_a_declared_anchor_lets_recommend_rank_a_real_family(pipelines, tmp_path):
    """With a quality point of its own (a published FID declared as an anchor), an SDXL-class model is ranked."""
    name = "tiny-sdxl"
    assert runner.invoke(app, ["models", "add", name, str(pipelines["sdxl"])]).exit_code == 0
    out = tmp_path / "p.json"
    r = runner.invoke(app, ["profile", "--models", name, "--device", "cpu", "--resolution", "32", "--samplers",
                            "euler,dpmpp-2m", "--warmup", "1", "--repeats", "3", "--max-seconds", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    from ldmpick.quality.table import user_table_path

    table = user_table_path()
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("model,unet_params,sampler,steps,guidance,resolution,metric,value,num_samples,dataset,series,"
                     "source\n"
                     f"{name},,euler,25,5,1024,fid,12.0,30000,mine,anchor:test,anchor:test\n")
    assert runner.invoke(app, ["fit"]).exit_code == 0
    r = runner.invoke(app, ["recommend", "--profile", str(out), "--budget", "100s", "--json"])
    assert r.exit_code == 0, r.output
    best = json.loads(r.stdout)["best"]
    assert best["model"] == name and best["basis"] == "anchor"


def test_sampler_that_does_not_fit_the_family_is_refused(pipelines, tmp_path):
    r = runner.invoke(app, ["generate", "x", "--model", str(pipelines["flux"]), "--sampler", "ddim", "--steps", "2",
                            "--resolution", "64", "--device", "cpu", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "sampler 'ddim' does not fit" in r.stderr and "flow-euler" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_pickle_only_component_means_no_weights(pipelines, tmp_path):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(pipelines["sd3"], folder)
    for f in (folder / "text_encoder_3").glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    spec = load_local_spec(folder)
    assert not spec.has_weights
    assert any("text_encoder_3" in p and "pickle" in p for p in spec.weight_problems())


# ---------------------------------------------------------------------------------------------- the catalogue


def test_catalogue_lists_the_released_models_with_their_sizes():
    r = runner.invoke(app, ["models", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    entries = catalogue_entries()
    for name in ("sd-1.5", "sd-2.1-base", "bk-sdm-base", "bk-sdm-small", "bk-sdm-tiny", "sdxl-base", "ssd-1b",
                 "vega", "sdxl-turbo", "pixart-sigma", "sd3-medium", "sd3.5-medium", "sd3.5-large", "sana-0.6b",
                 "sana-1.6b", "sana-sprint-0.6b", "flux-schnell", "flux-dev"):
        assert name in rows and name in entries
        assert rows[name]["denoiser_params"] == resolve_model(name).denoiser_params
        assert rows[name]["family"] == entries[name]["family"]


def test_every_adapter_knows_its_catalogue_models():
    families = {e["family"] for e in catalogue_entries().values()}
    assert families == set(ADAPTERS) - {"generic"}  # (the generic family serves folders, never a catalogue entry)
    flux = resolve_model("flux-dev")
    assert flux.adapter.evals_per_step(flux, True) == 1  # guidance-distilled: never a doubled batch
    assert flux.resolution_multiple == 16 and flux.native_resolution == 1024
    sana = resolve_model("sana-1.6b")
    assert sana.vae_scale_factor == 32 and sana.latent_channels == 32
    sd3 = resolve_model("sd3.5-large")
    seqs = [e.seq_len for e in sd3.adapter.text_encoders(sd3)]
    assert seqs == [77, 77, 256]  # each encoder at its own length
    assert resolve_model("sdxl-base").adapter.vae_decode_dtype(resolve_model("sdxl-base"), "fp16") == "fp32"


@pytest.mark.slow
def test_a_model_too_big_for_memory_is_does_not_fit_and_profiling_goes_on(monkeypatch, tmp_path):
    from ldmpick.measurement import profiler as profiling

    monkeypatch.setattr(profiling, "available_memory_bytes", lambda device: 3 * 2**30)
    prof = profiling.run_profile(profiling.ProfileRequest(
        models=["flux-dev", "bk-sdm-tiny"], device="cpu", resolution=64, warmup=0, repeats=2, min_repeats=1,
        max_seconds_per_model=1))
    flux, tiny = prof.model("flux-dev"), prof.model("bk-sdm-tiny")
    assert flux.status == "does_not_fit" and "GiB" in (flux.error or "")
    assert tiny.ok and tiny.family == "sd" and tiny.text_encoder is not None


def test_pipeline_multiple_is_what_the_diffusers_pipelines_check():
    """Image sides the pipeline's check_inputs refuses (SD: height % 8, whatever the VAE factor) are refused before
    the model loads: a demo model (VAE factor 2) at 34 px failed inside diffusers after loading."""
    import inspect
    import re

    import diffusers

    from ldmpick.models.families import FAMILIES

    for fam in FAMILIES.values():
        for pipeline in fam.pipelines:
            cls = getattr(diffusers, pipeline)  # (Z-Image has no check_inputs: its __call__ checks)
            found = re.findall(r"height % (\d+) != 0", inspect.getsource(getattr(cls, "check_inputs", cls.__call__)))
            for n in found:
                assert fam.pipeline_multiple % int(n) == 0, (fam.name, pipeline, n)


def test_generate_refuses_a_side_the_pipeline_would_refuse_before_loading(tmp_path):
    from typer.testing import CliRunner

    from ldmpick.cli import app

    r = CliRunner().invoke(app, ["generate", "a red circle", "--model", "demo-c8", "--sampler", "ddim", "--steps",
                                 "1", "--resolution", "34", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not a multiple of 8" in r.stderr and "try 32 or 40" in r.stderr
