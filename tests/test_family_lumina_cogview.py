"""The Lumina-Image-2.0 and CogView4 adapters against diffusers' own pipelines: tiny random pipelines of each
(tests/pipelines_lumina_cogview.py) taken through ``models add`` -> ``profile`` -> ``recommend`` -> ``generate`` on
the CPU, and every fact an adapter states (denoiser inputs, text encoding, decode, shift, samplers, defaults) checked
against what the pipeline really does with that model."""

from __future__ import annotations

import functools
import inspect
import json
import os
from pathlib import Path
from typing import Any

import pytest
from family_cli import add_profile_recommend_generate
from pipelines_lumina_cogview import ADAPTER, FAMILIES, build_pipeline, pipeline_class_name, tiny_resolution
from typer.testing import CliRunner

from ldmpick.models.catalogue import load_local_spec
from ldmpick.models.samplers import SAMPLERS, get_sampler, make_scheduler

runner = CliRunner()

EXPECTED = {
    "lumina2": dict(encoders=[("Gemma2Model", "Gemma-2", 256)], samplers={"flow-euler", "flow-unipc"},
                    modes=("eager",)),
    "cogview4": dict(encoders=[("GlmModel", "GLM-4", 144)], samplers={"flow-euler"}, modes=("eager", "compile")),
}
FLOW_SAMPLERS = [n for n, s in SAMPLERS.items() if s.flow and not s.distilled_only]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lumina_cogview")
    return {fam: build_pipeline(fam, root / fam) for fam in FAMILIES}


@pytest.fixture(scope="module")
def pipes(folders: dict[str, Path]) -> dict[str, Any]:
    from diffusers import DiffusionPipeline

    out = {}
    for fam, folder in folders.items():
        pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True, use_safetensors=True)
        pipe.set_progress_bar_config(disable=True)
        out[fam] = pipe
    return out


def _generator(seed: int = 0) -> Any:
    import torch

    return torch.Generator().manual_seed(seed)


class Recorder:
    """Records the keyword arguments of every call of ``obj.name`` (the original still runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, obj: Any, name: str):
        self.calls: list[dict[str, Any]] = []
        original = getattr(obj, name)

        @functools.wraps(original)  # inspect.signature sees the original's (retrieve_timesteps reads it)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(dict(kwargs))
            return original(*args, **kwargs)

        monkeypatch.setattr(obj, name, wrapper)


def test_both_families_are_built_by_this_diffusers():
    assert FAMILIES == ("lumina2", "cogview4")


@pytest.mark.parametrize("fam", FAMILIES)
def test_the_adapter_is_chosen_from_model_index(folders, fam):
    index = json.loads((folders[fam] / "model_index.json").read_text())
    assert index["_class_name"] == pipeline_class_name(fam)
    spec = load_local_spec(folders[fam])
    adapter, want = spec.adapter, EXPECTED[fam]
    assert spec.family == ADAPTER[fam] == adapter.name and spec.pipeline_class == pipeline_class_name(fam)
    assert [(e.class_name, e.label, e.seq_len) for e in adapter.text_encoders(spec)] == want["encoders"]
    assert set(adapter.fitting_samplers(spec)) == want["samplers"]
    assert all(get_sampler(s).flow for s in adapter.fitting_samplers(spec))
    assert adapter.uses_cfg(spec, True) and adapter.evals_per_step(spec, True) == 2  # two transformer calls a step
    assert not adapter.uses_cfg(spec, False) and adapter.evals_per_step(spec, False) == 1
    assert adapter.encoder_calls(spec, True) == 2  # the prompt and the negative prompt
    assert adapter.fast_modes == want["modes"]
    assert spec.resolution_multiple == 16 and spec.native_resolution == 64  # sample_size 8 x factor 8
    import diffusers

    built = getattr(diffusers, adapter.denoiser_class(spec)).from_config(spec.denoiser_config)
    assert spec.denoiser_params == sum(p.numel() for p in built.parameters())
    assert spec.has_weights and not spec.distilled
    # a sampler of another kind, or one the pipeline cannot drive, is refused with the reason
    assert adapter.misfit_reason(spec, "ddim") == "a flow-matching model"
    for s in set(FLOW_SAMPLERS) - want["samplers"]:
        assert adapter.sampler_misfit(spec, s) is not None


@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize("sampler", FLOW_SAMPLERS)
def test_the_fitting_samplers_are_the_ones_the_pipeline_can_drive(pipes, folders, fam, sampler):
    """Each pipeline hands set_timesteps its own custom schedule (Lumina2: sigmas; CogView4: timesteps and sigmas):
    a sampler fits exactly when the pipeline runs with it."""
    import numpy as np

    spec = load_local_spec(folders[fam])
    pipe = pipes[fam]
    own = pipe.scheduler
    pipe.scheduler = make_scheduler(sampler, dict(own.config))
    try:
        images = pipe("a red cat", num_inference_steps=2, height=32, width=32, output_type="np",
                      generator=_generator(), **spec.adapter.call_kwargs(spec, 4.0, 1)).images
        ran = bool(np.isfinite(images).all())
    except (ValueError, TypeError):  # retrieve_timesteps / set_timesteps refusing the pipeline's arguments
        ran = False
    finally:
        pipe.scheduler = own
    assert ran is (sampler in spec.adapter.fitting_samplers(spec))


@pytest.mark.parametrize("fam", FAMILIES)
def test_denoiser_inputs_are_the_ones_the_pipeline_passes(pipes, folders, fam, monkeypatch):
    import torch

    spec = load_local_spec(folders[fam])
    adapter, pipe = spec.adapter, pipes[fam]
    res = tiny_resolution(fam)
    # what the adapter builds feeds the tiny transformer (a CFG-doubled batch) and comes back latent-shaped
    inputs = adapter.denoiser_inputs(spec, 2, res, "cpu", torch.float32)
    with torch.no_grad():
        out = pipe.transformer(**inputs, return_dict=False)[0]
    assert out.shape == inputs["hidden_states"].shape == (2, 16, res // 8, res // 8)
    assert torch.isfinite(out).all()

    # ... and has the pipeline's own arguments: the same names, ranks, dtypes, and every shape but the text length
    calls = Recorder(monkeypatch, pipe.transformer, "forward").calls
    pipe("a red cat", num_inference_steps=2, height=res, width=res, output_type="latent", generator=_generator(),
         **adapter.call_kwargs(spec, 4.0, 1))
    assert len(calls) == 2 * 2  # CFG on both steps: prompt and negative prompt, one call each
    seen = {k: v for k, v in calls[0].items() if isinstance(v, torch.Tensor)}
    assert set(seen) == set(inputs)
    for key, value in seen.items():
        mine = inputs[key]
        assert mine.dtype == value.dtype and mine.dim() == value.dim(), key
        if key not in ("encoder_hidden_states", "encoder_attention_mask"):
            assert mine.shape[1:] == value.shape[1:], key
    if fam == "lumina2":
        # 256 padded tokens, a 0/1 mask of the real ones, the reversed timestep in [0, 1)
        assert seen["encoder_hidden_states"].shape[1] == inputs["encoder_hidden_states"].shape[1] == 256
        assert seen["encoder_attention_mask"].shape == (1, 256) and inputs["encoder_attention_mask"].shape == (2, 256)
        assert 0 <= float(calls[0]["timestep"][0]) < 1 and 0 <= float(inputs["timestep"][0]) < 1
        # the system prompt goes before the prompt only: the negative prompt's caption is just <bos>
        assert int(calls[1]["encoder_attention_mask"].sum()) == 1 < int(calls[0]["encoder_attention_mask"].sum())
        assert int(inputs["encoder_attention_mask"][0].sum()) == adapter.caption_tokens(spec) == 64
    else:
        assert seen["encoder_hidden_states"].shape[1] % 16 == 0 and inputs["encoder_hidden_states"].shape[1] == 144
        assert calls[1]["encoder_hidden_states"].shape[1] == 16  # "" -> [gMASK] <sop>, padded to 16
        for key in ("original_size", "target_size"):
            assert seen[key].tolist() == [[res, res]] and inputs[key].tolist() == [[res, res]] * 2
        assert seen["crop_coords"].tolist() == [[0, 0]] and inputs["crop_coords"].tolist() == [[0, 0]] * 2
        assert float(calls[0]["timestep"][0]) == 1000.0  # integer timesteps 1000 ... 1, unshifted


def test_lumina2_system_prompt_and_encoding_are_the_pipelines(pipes, folders, monkeypatch):
    import torch

    from ldmpick.models.families import lumina2

    pipe = pipes["lumina2"]
    assert lumina2.SYSTEM_PROMPT == pipe.system_prompt
    spec = load_local_spec(folders["lumina2"])
    enc = spec.adapter.text_encoders(spec)[0]
    embeds, mask, _, _ = pipe.encode_prompt("a red cat", do_classifier_free_guidance=True)
    text = f"{pipe.system_prompt} <Prompt Start> a red cat"
    ids = pipe.tokenizer([text], padding="max_length", max_length=enc.seq_len, truncation=True,
                         return_tensors="pt").input_ids
    # the adapter's mask covers CAPTION_TOKENS real tokens: make that this prompt's count, then encode as it does
    monkeypatch.setattr(lumina2, "CAPTION_TOKENS", int(mask.sum()))
    with torch.no_grad():
        mine = spec.adapter.encode(spec, enc, pipe.text_encoder, ids)
    assert mine.shape == embeds.shape == (1, 256, 16)
    assert torch.allclose(mine, embeds, atol=1e-6)


def test_cogview4_encoding_and_padding_are_the_pipelines(pipes, folders):
    import torch

    from ldmpick.models.families.cogview4 import padded_length

    pipe = pipes["cogview4"]
    spec = load_local_spec(folders["cogview4"])
    enc = spec.adapter.text_encoders(spec)[0]
    prompt = "a red cat on the roof of a blue house"
    ids = pipe.tokenizer([prompt], padding="longest", return_tensors="pt").input_ids
    assert ids[0, :2].tolist() == pipe.tokenizer.convert_tokens_to_ids(["[gMASK]", "<sop>"])
    embeds = pipe._get_glm_embeds(prompt)
    assert embeds.shape[1] == padded_length(ids.shape[1]) and embeds.shape[1] % 16 == 0
    padded = torch.cat([torch.full((1, embeds.shape[1] - ids.shape[1]), pipe.tokenizer.pad_token_id), ids], dim=1)
    with torch.no_grad():
        mine = spec.adapter.encode(spec, enc, pipe.text_encoder, padded)
    assert torch.allclose(mine, embeds, atol=1e-6)
    assert [padded_length(n) for n in (1, 16, 17, 130, 5000)] == [16, 16, 32, 144, 1024]
    spec.max_sequence_length = 40  # a model's own prompt length: padded as the pipeline pads it
    assert spec.adapter.text_encoders(spec)[0].seq_len == 48


@pytest.mark.parametrize("fam", FAMILIES)
def test_decode_shift_and_defaults_are_the_pipelines(pipes, folders, fam, monkeypatch):
    import torch

    spec = load_local_spec(folders[fam])
    adapter, pipe = spec.adapter, pipes[fam]
    res = 32  # 2x2 image tokens: not the 16 latent channels (Lumina2Pipeline's mu reads latents.shape[1])
    # mu: what __call__ hands the scheduler
    calls = Recorder(monkeypatch, pipe.scheduler, "set_timesteps").calls
    latents = pipe("a red cat", num_inference_steps=2, height=res, width=res, output_type="latent",
                   generator=_generator(3), **adapter.call_kwargs(spec, 4.0, 1)).images
    assert calls and calls[0]["mu"] == pytest.approx(adapter.timestep_kwargs(spec, pipe.scheduler, res)["mu"])
    # the adapter's decode is the pipeline's (scaling, and shift for Lumina2 only) on the same latents; a scaling
    # and a shift away from CogView4's 1 and 0 for the check, so that both show
    assert latents.shape == adapter.decode_latents(spec, 1, res, "cpu", torch.float32).shape
    saved = {k: pipe.vae.config[k] for k in ("scaling_factor", "shift_factor")}
    pipe.vae.register_to_config(scaling_factor=0.7, shift_factor=0.2)
    try:
        image = pipe("a red cat", num_inference_steps=2, height=res, width=res, output_type="pt",
                     generator=_generator(3), **adapter.call_kwargs(spec, 4.0, 1))
        with torch.no_grad():
            mine = (adapter.decode(pipe.vae, latents) / 2 + 0.5).clamp(0, 1)
    finally:
        pipe.vae.register_to_config(**saved)
    assert torch.allclose(mine, image.images, atol=1e-5)
    assert adapter.vae_decode_dtype(spec, "fp16") == "fp16"  # no upcast in these pipelines, force_upcast or not
    # guidance and steps are __call__'s defaults; every keyword the adapter passes is one __call__ takes
    params = inspect.signature(type(pipe).__call__).parameters
    assert adapter.default_guidance == params["guidance_scale"].default
    assert adapter.default_steps == params["num_inference_steps"].default
    assert set(adapter.call_kwargs(spec, 4.0, 1)) <= set(params)
    # a side that is a multiple of the latent grid but not of 16 is refused by the pipeline, as by the adapter
    assert 24 % spec.resolution_multiple != 0
    with pytest.raises(ValueError, match="divisible by 16"):
        pipe("x", num_inference_steps=1, height=24, width=24, output_type="latent")


@pytest.mark.parametrize("fam", FAMILIES)
def test_add_profile_recommend_generate(folders, fam, tmp_path):
    name = f"tiny-{fam}"
    run = add_profile_recommend_generate(name, folders[fam], tiny_resolution(fam), tmp_path)
    prof, m, record = run.profile, run.model, run.record
    assert m.family == ADAPTER[fam] and m.cfg is True
    assert m.text_encoders.count("tokens") == 1
    assert set(m.samplers) == EXPECTED[fam]["samplers"] == {s.name for s in prof.samplers}
    assert record["settings"]["family"] == ADAPTER[fam]
    assert record["scheduler_class"] == "FlowMatchEulerDiscreteScheduler"


def _reference(model: str) -> Path:
    here = Path(__file__).resolve().parents
    for d in (here[2], here[3]):
        folder = d / "shared" / "reference" / "real_models" / "configs" / model
        if folder.is_dir():
            return folder
    if os.environ.get("CI"):
        pytest.fail(f"the reference configs of {model} are missing (CI is set: this check must run)")
    pytest.skip("reference configs not on this machine")


def test_the_released_models_configs():
    """Lumina-Image-2.0 and CogView4-6B as released (configs only, counted on the meta device)."""
    from types import SimpleNamespace

    lumina = load_local_spec(_reference("lumina-image-2.0"))
    assert lumina.family == "lumina2" and lumina.native_resolution == 1024 and lumina.resolution_multiple == 16
    assert round(lumina.denoiser_params / 1e9, 1) == 2.6  # the README's 2.6B
    assert [(e.label, e.seq_len) for e in lumina.adapter.text_encoders(lumina)] == [("Gemma-2", 256)]
    assert lumina.adapter.vae_decode_dtype(lumina, "fp16") == "fp16"  # force_upcast in its config, ignored
    cog = load_local_spec(_reference("cogview4-6b"))
    assert cog.family == "cogview4" and cog.native_resolution == 1024 and cog.resolution_multiple == 16
    assert cog.denoiser_params == 6_369_118_272  # configs/VERIFY.md
    assert [(e.label, e.seq_len) for e in cog.adapter.text_encoders(cog)] == [("GLM-4", 144)]
    scheduler = SimpleNamespace(config=cog.scheduler_config)
    assert cog.adapter.timestep_kwargs(cog, scheduler, 1024)["mu"] == pytest.approx(4 * 0.75 + 0.25)  # 4096 tokens
    assert cog.adapter.fitting_samplers(cog) == ["flow-euler"]
