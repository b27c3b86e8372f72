"""FLUX.2 ([dev]: Flux2Pipeline; [klein]: Flux2KleinPipeline, step-distilled and base) end to end on the CPU: tiny
random pipelines taken through ``models add`` -> ``profile`` -> ``recommend`` -> ``generate``, and the adapter's
choices checked against what the diffusers pipelines really do (the transformer's inputs and batch per step, the
encoder's sequence, mu, the VAE decode), plus the released models' configs."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from family_cli import add_profile_recommend_generate
from pipelines_flux2 import TINY_RESOLUTION, VARIANTS, build_flux2_pipeline, pipeline_class_name
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.models.catalogue import load_local_spec
from ldmpick.models.families import FAMILIES
from ldmpick.models.samplers import get_sampler, make_scheduler

runner = CliRunner()
FLOW = {"flow-euler", "flow-dpmpp-2m", "flow-unipc"}

# what each tiny pipeline must be recognised as
EXPECTED = {
    "dev": dict(cfg=False, samplers=FLOW, encoder="Mistral3ForConditionalGeneration", guidance_input=True),
    "klein": dict(cfg=False, samplers={"flow-euler"}, encoder="Qwen3ForCausalLM", guidance_input=False),
    "klein-base": dict(cfg=True, samplers=FLOW, encoder="Qwen3ForCausalLM", guidance_input=False),
}


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("flux2")
    return {v: build_flux2_pipeline(v, root / v) for v in VARIANTS}


@pytest.fixture(scope="module")
def loaded(pipelines):
    """Each tiny pipeline loaded back the way ldmpick loads it (safetensors, local files only)."""
    from ldmpick.generation.runner import load_pipeline

    return {v: load_pipeline(pipelines[v], "cpu", "fp32") for v in VARIANTS}


def _generator(seed: int = 0):
    import torch

    return torch.Generator("cpu").manual_seed(seed)


def _run(pipe, guidance: float = 4.0, steps: int = 2, **extra):
    return pipe(prompt="a red cat", num_inference_steps=steps, height=TINY_RESOLUTION, width=TINY_RESOLUTION,
                guidance_scale=guidance, generator=_generator(), **extra)


def _record_transformer_calls(pipe) -> tuple[list[dict], object]:
    calls: list[dict] = []

    def hook(module, args, kwargs):
        calls.append(dict(kwargs))

    return calls, pipe.transformer.register_forward_pre_hook(hook, with_kwargs=True)


# ------------------------------------------------------------------------------------------- the adapter


def test_the_family_is_registered_for_both_pipelines():
    fam = FAMILIES["flux2"]
    assert set(fam.pipelines) == {"Flux2Pipeline", "Flux2KleinPipeline"}
    assert fam.denoiser_classes == ("Flux2Transformer2DModel",)
    import diffusers

    assert all(hasattr(diffusers, p) for p in fam.pipelines)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_adapter_is_chosen_from_model_index(pipelines, variant):
    index = json.loads((pipelines[variant] / "model_index.json").read_text())
    assert index["_class_name"] == pipeline_class_name(variant)
    spec = load_local_spec(pipelines[variant])
    want = EXPECTED[variant]
    adapter = spec.adapter
    assert spec.family == "flux2" and adapter is FAMILIES["flux2"]
    encoders = adapter.text_encoders(spec)
    assert [(e.component, e.class_name, e.seq_len) for e in encoders] == [("text_encoder", want["encoder"], 512)]
    assert encoders[0].vocab_size == len(_tokenizer(pipelines[variant]))  # read from text_config for Mistral-3
    assert adapter.uses_cfg(spec, True) is want["cfg"] and adapter.uses_cfg(spec, False) is False
    assert adapter.evals_per_step(spec, True) == (2 if want["cfg"] else 1)
    assert adapter.encoder_calls(spec, True) == (2 if want["cfg"] else 1)  # Klein base encodes "" as well
    assert set(adapter.fitting_samplers(spec)) == want["samplers"]
    assert all(get_sampler(s).flow for s in adapter.fitting_samplers(spec))
    assert adapter.sampler_misfit(spec, "ddim") is not None and "flow-matching" in adapter.sampler_misfit(spec, "ddim")
    if variant == "klein":
        why = adapter.sampler_misfit(spec, "flow-dpmpp-2m")
        assert why is not None and "step-distilled" in why and "flow-euler" in why
    assert spec.resolution_multiple == 16 and spec.latent_channels == 32 and spec.vae_scale_factor == 8
    assert spec.native_resolution == 1024
    assert spec.denoiser_params > 0 and spec.has_weights


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)


def test_is_distilled_in_model_index_decides_klein_cfg(pipelines, tmp_path):
    """The same Klein folder guides or not by model_index.json's is_distilled alone, as Flux2KleinPipeline does."""
    import shutil

    folder = tmp_path / "klein"
    shutil.copytree(pipelines["klein"], folder)
    spec = load_local_spec(folder)
    assert not spec.adapter.uses_cfg(spec, True)
    index = json.loads((folder / "model_index.json").read_text())
    index["is_distilled"] = False
    (folder / "model_index.json").write_text(json.dumps(index))
    spec = load_local_spec(folder)
    assert spec.adapter.uses_cfg(spec, True) and spec.adapter.evals_per_step(spec, True) == 2
    del index["is_distilled"]  # the pipeline's default: False
    (folder / "model_index.json").write_text(json.dumps(index))
    spec = load_local_spec(folder)
    assert spec.adapter.uses_cfg(spec, True)


# ---------------------------------------------------------------------------- against the diffusers pipelines


@pytest.mark.parametrize("variant", VARIANTS)
def test_denoiser_inputs_are_what_the_pipeline_passes(pipelines, loaded, variant):
    """One generation's transformer calls: their keyword arguments have the shapes and dtypes of denoiser_inputs,
    the per-step batch is what the profiler measures (a CFG pair for Klein base, one call otherwise), and
    denoiser_inputs at that batch run the tiny transformer."""
    import torch

    pipe, spec = loaded[variant], load_local_spec(pipelines[variant])
    adapter, want = spec.adapter, EXPECTED[variant]
    calls, handle = _record_transformer_calls(pipe)
    try:
        _run(pipe, guidance=4.0, steps=2)
    finally:
        handle.remove()
    per_step = sum(c["hidden_states"].shape[0] for c in calls) / 2
    assert per_step == adapter.evals_per_step(spec, True)
    inputs = adapter.denoiser_inputs(spec, 1, TINY_RESOLUTION, "cpu", torch.float32)
    seen = calls[0]
    assert (seen["guidance"] is not None) is want["guidance_input"] and ("guidance" in inputs) is want["guidance_input"]
    for key, value in inputs.items():
        assert tuple(value.shape) == tuple(seen[key].shape), key
        assert value.dtype == seen[key].dtype, key
    assert torch.equal(inputs["img_ids"].cpu(), seen["img_ids"].cpu())
    assert torch.equal(inputs["txt_ids"].cpu(), seen["txt_ids"].cpu())
    assert float(seen["timestep"][0]) <= 1.0  # t / 1000, as denoiser_inputs' 0.5
    if want["guidance_input"]:
        assert seen["guidance"].dtype == torch.float32 and float(seen["guidance"][0]) == 4.0

    batch = adapter.evals_per_step(spec, True)  # what measure_denoiser feeds (req.batch 1)
    inputs = adapter.denoiser_inputs(spec, batch, TINY_RESOLUTION, "cpu", torch.float32)
    with torch.no_grad():
        out = pipe.transformer(**inputs, return_dict=False)[0]
    assert out.shape == inputs["hidden_states"].shape


@pytest.mark.parametrize("variant", ["dev", "klein"])
def test_encode_gives_the_prompt_embedding_the_pipeline_makes(pipelines, loaded, variant):
    """The pipeline pads the chat-templated prompt (system prompt included for [dev]) to 512 tokens and stacks three
    layers' hidden states; the adapter's encode, on the same module, gives the same shape, and with the pipeline's
    own ids and mask the same numbers."""
    import torch

    pipe, spec = loaded[variant], load_local_spec(pipelines[variant])
    adapter = spec.adapter
    enc = adapter.text_encoders(spec)[0]
    embeds, text_ids = pipe.encode_prompt(prompt="a red cat", device="cpu", max_sequence_length=enc.seq_len)
    assert tuple(embeds.shape) == (1, enc.seq_len, pipe.transformer.config.joint_attention_dim)
    assert tuple(text_ids.shape) == (1, enc.seq_len, 4)

    ids = torch.randint(0, enc.vocab_size, (1, enc.seq_len))
    with torch.no_grad():
        ours = adapter.encode(spec, enc, pipe.text_encoder, ids)
    assert ours.shape == embeds.shape

    # the real tokenisation: the pipeline's own template and padding, then our forward on those ids
    if variant == "dev":
        from diffusers.pipelines.flux2.pipeline_flux2 import format_input

        toks = pipe.tokenizer.apply_chat_template(
            format_input(["a red cat"], pipe.system_message), add_generation_prompt=False, tokenize=True,
            return_dict=True, return_tensors="pt", padding="max_length", truncation=True, max_length=enc.seq_len)
        rendered = pipe.tokenizer.decode(toks["input_ids"][0][toks["attention_mask"][0].bool()])
        assert "You are an AI that reasons about image descriptions" in rendered and "a red cat" in rendered
    else:
        text = pipe.tokenizer.apply_chat_template([{"role": "user", "content": "a red cat"}], tokenize=False,
                                                  add_generation_prompt=True, enable_thinking=False)
        assert "<think>" in text
        toks = pipe.tokenizer(text, return_tensors="pt", padding="max_length", truncation=True,
                              max_length=enc.seq_len)
    assert toks["input_ids"].shape == (1, enc.seq_len) and 0 < int(toks["attention_mask"].sum()) < enc.seq_len
    with torch.no_grad():
        out = pipe.text_encoder(input_ids=toks["input_ids"], attention_mask=toks["attention_mask"],
                                output_hidden_states=True, use_cache=False)
    layers = adapter.hidden_state_layers(spec)
    stacked = torch.stack([out.hidden_states[k] for k in layers], dim=1).permute(0, 2, 1, 3).reshape(embeds.shape)
    assert torch.allclose(stacked, embeds, atol=1e-5)


@pytest.mark.parametrize("variant", ["dev", "klein"])
def test_decode_is_the_pipelines_decode(loaded, variant, pipelines):
    """The packed latents the loop ends with, decoded by the adapter (unpack, batch-norm statistics, unpatchify),
    give the pipeline's own image."""
    import torch

    pipe, spec = loaded[variant], load_local_spec(pipelines[variant])
    last: dict = {}

    def keep(p, i, t, kwargs):  # the latents after the last scheduler step, before the pipeline unpacks them
        last["latents"] = kwargs["latents"].clone()
        return {}

    bn = pipe.vae.bn
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    try:
        with torch.no_grad():  # a non-trivial batch norm, so that a missing or wrong denormalisation shows
            bn.running_mean.copy_(torch.linspace(-1, 1, bn.running_mean.numel()))
            bn.running_var.copy_(torch.linspace(0.5, 2, bn.running_var.numel()))
            image = _run(pipe, output_type="pt", callback_on_step_end=keep).images
            shape = spec.adapter.decode_latents(spec, 1, TINY_RESOLUTION, "cpu", torch.float32).shape
            assert tuple(last["latents"].shape) == tuple(shape)
            ours = spec.adapter.decode(pipe.vae, last["latents"])
    finally:
        with torch.no_grad():
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
    ours = (ours / 2 + 0.5).clamp(0, 1)  # the image processor's postprocess to [0, 1]
    assert ours.shape == image.shape == (1, 3, TINY_RESOLUTION, TINY_RESOLUTION)
    assert torch.allclose(ours, image, atol=1e-5)


@pytest.mark.parametrize("variant", ["dev", "klein"])
def test_mu_is_the_pipelines(loaded, pipelines, variant):
    """timestep_kwargs gives the mu the pipeline passes to set_timesteps (it depends on the step count)."""
    pipe, spec = loaded[variant], load_local_spec(pipelines[variant])
    seen: list[dict] = []
    original = pipe.scheduler.set_timesteps

    @functools.wraps(original)  # the pipeline reads set_timesteps' signature (does it take sigmas?)
    def spy(*args, **kwargs):
        seen.append(kwargs)
        return original(*args, **kwargs)

    pipe.scheduler.set_timesteps = spy
    try:
        _run(pipe, steps=3)
    finally:
        del pipe.scheduler.set_timesteps
    assert "sigmas" in seen[0] and len(seen[0]["sigmas"]) == 3  # custom sigmas: FlowMatchEuler takes them
    ours = spec.adapter.timestep_kwargs(spec, pipe.scheduler, TINY_RESOLUTION, steps=3)
    assert ours == {"mu": pytest.approx(seen[0]["mu"])}
    assert spec.adapter.timestep_kwargs(spec, pipe.scheduler, TINY_RESOLUTION)["mu"] != pytest.approx(ours["mu"])


@pytest.mark.parametrize("sampler", sorted(FLOW))
def test_every_fitting_sampler_runs_the_pipeline(loaded, pipelines, sampler):
    """Each flow sampler the adapter offers, built as generate builds it, runs Flux2Pipeline's own call (DPM-Solver
    and UniPC through the pipeline's use_flow_sigmas branch) and the schedule set-up the profiler does."""
    pipe, spec = loaded["dev"], load_local_spec(pipelines["dev"])
    assert sampler in spec.adapter.fitting_samplers(spec)
    own = pipe.scheduler
    pipe.scheduler = make_scheduler(sampler, dict(own.config))
    try:
        pipe.scheduler.set_timesteps(4, **spec.adapter.timestep_kwargs(spec, pipe.scheduler, TINY_RESOLUTION))
        image = _run(pipe, steps=2).images[0]
    finally:
        pipe.scheduler = own
    assert image.size == (TINY_RESOLUTION, TINY_RESOLUTION)


# ------------------------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("variant", VARIANTS)
def test_add_profile_recommend_generate(pipelines, variant, tmp_path):
    name = f"tiny-flux2-{variant}"
    want = EXPECTED[variant]
    run = add_profile_recommend_generate(name, pipelines[variant], TINY_RESOLUTION, tmp_path)
    prof, m, record = run.profile, run.model, run.record
    assert m.family == "flux2" and m.cfg is want["cfg"]
    assert m.text_encoders.count("tokens") == 1 and "512 tokens" in m.text_encoders
    assert want["samplers"] == set(m.samplers) == {s.name for s in prof.samplers}
    assert record["settings"]["family"] == "flux2"
    assert record["settings"]["cfg"] is want["cfg"]
    assert record["scheduler_class"] == "FlowMatchEulerDiscreteScheduler"


def test_generate_refuses_a_sampler_a_distilled_klein_was_not_distilled_for(pipelines, tmp_path):
    r = runner.invoke(app, ["generate", "x", "--model", str(pipelines["klein"]), "--sampler", "flow-dpmpp-2m",
                            "--steps", "2", "--resolution", str(TINY_RESOLUTION), "--device", "cpu",
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "sampler 'flow-dpmpp-2m' does not fit" in r.stderr and "flow-euler" in r.stderr


# ------------------------------------------------------------------------------------ the released models

# the configs of FLUX.2 [dev] and [klein] 4B / 9B (transformer, VAE, text encoder architecture fields; the text
# encoders' vocabularies and widths), as diffusers 0.42 / transformers 5 build them
_VAE = {"_class_name": "AutoencoderKLFlux2", "act_fn": "silu", "batch_norm_eps": 0.0001, "batch_norm_momentum": 0.1,
        "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3,
        "latent_channels": 32, "layers_per_block": 2, "mid_block_add_attention": True, "norm_num_groups": 32,
        "out_channels": 3, "patch_size": [2, 2], "sample_size": 1024, "up_block_types": ["UpDecoderBlock2D"] * 4,
        "use_post_quant_conv": True, "use_quant_conv": True}
_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "base_image_seq_len": 256, "base_shift": 0.5,
              "max_image_seq_len": 4096, "max_shift": 1.15, "num_train_timesteps": 1000, "shift": 3.0,
              "time_shift_type": "exponential", "use_dynamic_shifting": True}


def _transformer(layers: int, single: int, heads: int, joint: int, **extra) -> dict:
    return {"_class_name": "Flux2Transformer2DModel", "attention_head_dim": 128, "axes_dims_rope": [32, 32, 32, 32],
            "eps": 1e-06, "in_channels": 128, "joint_attention_dim": joint, "mlp_ratio": 3.0,
            "num_attention_heads": heads, "num_layers": layers, "num_single_layers": single, "out_channels": None,
            "patch_size": 1, "rope_theta": 2000, "timestep_guidance_channels": 256, **extra}


_KLEIN_INDEX = {"_class_name": "Flux2KleinPipeline", "is_distilled": True,
                "text_encoder": ["transformers", "Qwen3ForCausalLM"],
                "tokenizer": ["transformers", "Qwen2TokenizerFast"]}
RELEASED = {
    "flux.2-dev": dict(
        index={"_class_name": "Flux2Pipeline", "text_encoder": ["transformers", "Mistral3ForConditionalGeneration"],
               "tokenizer": ["transformers", "PixtralProcessor"]},
        transformer=_transformer(8, 48, 48, 15360),  # no guidance_embeds key: the class default, True
        text_encoder={"model_type": "mistral3", "text_config": {"model_type": "mistral", "hidden_size": 5120,
                                                                "vocab_size": 131072}},
        params=32_223_281_152, label="Mistral-Small-3", cfg=False, samplers=FLOW),
    "flux.2-klein-4b": dict(
        index=_KLEIN_INDEX,
        transformer=_transformer(5, 20, 24, 7680, guidance_embeds=False),
        text_encoder={"model_type": "qwen3", "hidden_size": 2560, "vocab_size": 151936},
        params=3_875_544_576, label="Qwen3-4B", cfg=False, samplers={"flow-euler"}),
    "flux.2-klein-9b": dict(
        index=_KLEIN_INDEX,
        transformer=_transformer(8, 24, 32, 12288, guidance_embeds=False),
        text_encoder={"model_type": "qwen3", "hidden_size": 4096, "vocab_size": 151936},
        params=9_078_581_248, label="Qwen3-8B", cfg=False, samplers={"flow-euler"}),
}


@pytest.mark.parametrize("model", sorted(RELEASED))
def test_the_released_models(model, tmp_path):
    """Config-only folders of the released models: counted, not built (meta device), and run as diffusers runs
    them: 1024 px native, sides of 16, 512 text tokens, 4096 image tokens at 1024 px, no CFG for [dev] and the
    distilled [klein], mu of diffusers' compute_empirical_mu."""
    import torch

    facts = RELEASED[model]
    folder = tmp_path / model
    index = dict(facts["index"], scheduler=["diffusers", "FlowMatchEulerDiscreteScheduler"],
                 transformer=["diffusers", "Flux2Transformer2DModel"], vae=["diffusers", "AutoencoderKLFlux2"])
    for comp, config, file in (("transformer", facts["transformer"], "config.json"), ("vae", _VAE, "config.json"),
                               ("text_encoder", facts["text_encoder"], "config.json"),
                               ("scheduler", _SCHEDULER, "scheduler_config.json")):
        (folder / comp).mkdir(parents=True)
        (folder / comp / file).write_text(json.dumps(config))
    (folder / "model_index.json").write_text(json.dumps(index))
    spec = load_local_spec(folder)
    adapter = spec.adapter
    assert spec.family == "flux2" and spec.denoiser_params == facts["params"]
    assert spec.native_resolution == 1024 and spec.resolution_multiple == 16
    [enc] = adapter.text_encoders(spec)
    assert enc.seq_len == 512 and enc.label == facts["label"] and enc.vocab_size == facts["text_encoder"].get(
        "vocab_size", facts["text_encoder"].get("text_config", {}).get("vocab_size"))
    assert adapter.uses_cfg(spec, True) is facts["cfg"] and adapter.guidance_distilled(spec) is not facts["cfg"]
    assert set(adapter.fitting_samplers(spec)) == facts["samplers"]
    assert adapter.vae_decode_dtype(spec, "fp16") == "fp16"  # the pipelines never upcast the FLUX.2 VAE
    with torch.device("meta"):
        inputs = adapter.denoiser_inputs(spec, 2, 1024, "meta", torch.bfloat16)
        latents = adapter.decode_latents(spec, 1, 1024, "meta", torch.bfloat16)
    assert tuple(inputs["hidden_states"].shape) == (2, 4096, 128)
    assert tuple(inputs["encoder_hidden_states"].shape) == (2, 512, facts["transformer"]["joint_attention_dim"])
    assert tuple(inputs["img_ids"].shape) == (2, 4096, 4) and tuple(inputs["txt_ids"].shape) == (2, 512, 4)
    assert ("guidance" in inputs) is (model == "flux.2-dev")
    assert tuple(latents.shape) == (1, 4096, 128)
    from diffusers.pipelines.flux2.pipeline_flux2 import compute_empirical_mu

    scheduler = make_scheduler("flow-euler", spec.scheduler_config)
    assert adapter.timestep_kwargs(spec, scheduler, 1024, steps=28) == {"mu": compute_empirical_mu(4096, 28)}
    assert adapter.call_kwargs(spec, 4.0, 1) == {"guidance_scale": 4.0, "max_sequence_length": 512}
