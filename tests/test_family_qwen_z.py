"""The Qwen-Image and Z-Image(-Turbo) adapters against diffusers' own pipelines: tiny random pipelines of each
(``pipelines_qwen_z``) recognised from model_index.json, their denoiser inputs, text lengths, VAE decode, shift and
call arguments compared with what the pipeline really does, and each taken through ``models add`` -> ``profile``
-> ``recommend`` -> ``generate`` on the CPU; the released configs counted on the meta device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from family_cli import add_profile_recommend_generate
from pipelines_qwen_z import FAMILIES, build_qwen_z_pipeline, tiny_resolution
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.models.catalogue import load_local_spec
from ldmpick.models.samplers import get_sampler

pytestmark = pytest.mark.skipif(set(FAMILIES) != {"qwen-image", "z-image"},
                                reason="this diffusers lacks QwenImagePipeline or ZImagePipeline")

runner = CliRunner()
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "real_models" / "configs"

EXPECTED = {
    "qwen-image": dict(family="qwen-image", cfg=True, samplers={"flow-euler", "flow-unipc"}, encoders=1,
                       label="Qwen2.5-VL", evals_per_step=2),
    "z-image": dict(family="z-image", cfg=False, samplers={"flow-euler"}, encoders=1, label="Qwen3",
                    evals_per_step=1),
}
PROMPT = "a red cat on the house"


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qwen_z")
    return {fam: build_qwen_z_pipeline(fam, root / fam) for fam in FAMILIES}


@pytest.fixture(scope="module")
def loaded(pipelines) -> dict[str, object]:
    from ldmpick.generation.runner import load_pipeline

    return {fam: load_pipeline(folder, "cpu", "fp32") for fam, folder in pipelines.items()}


def _generator(seed: int = 0):
    import torch

    return torch.Generator("cpu").manual_seed(seed)


def _prompt_tokens(pipe, text: str) -> int:
    return len(pipe.tokenizer(text).input_ids)


# ---------------------------------------------------------------------------------------------- the adapters


@pytest.mark.parametrize("fam", sorted(EXPECTED))
def test_the_adapter_is_chosen_from_model_index(pipelines, fam):
    spec = load_local_spec(pipelines[fam])
    want = EXPECTED[fam]
    assert spec.family == want["family"] and spec.adapter.name == want["family"]
    encoders = spec.adapter.text_encoders(spec)
    assert len(encoders) == want["encoders"] and encoders[0].label == want["label"]
    # the profiler's random ids stay inside the tokenizer's vocabulary (256 byte symbols, merges, special tokens)
    assert encoders[0].vocab_size == len(json.loads((pipelines[fam] / "tokenizer" / "tokenizer.json").read_text())
                                         ["model"]["vocab"])
    assert set(spec.adapter.fitting_samplers(spec)) == want["samplers"]
    assert all(get_sampler(s).flow for s in spec.adapter.fitting_samplers(spec))
    assert spec.adapter.uses_cfg(spec, True) is want["cfg"]
    assert spec.adapter.uses_cfg(spec, False) is False
    assert spec.adapter.evals_per_step(spec, True) == want["evals_per_step"]
    assert spec.adapter.guidance_distilled(spec) is False
    # the pipeline hands set_timesteps custom sigmas: DPM-Solver's set_timesteps takes none
    why = spec.adapter.sampler_misfit(spec, "flow-dpmpp-2m")
    assert why and "does not fit" in why and "flow-euler" in why
    assert spec.adapter.misfit_reason(spec, "ddim") == "a flow-matching model"
    assert spec.resolution_multiple == 16 and spec.native_resolution == 1024
    assert spec.denoiser_params > 0 and spec.has_weights


def test_samplers_of_the_adapters_take_the_pipelines_custom_sigmas():
    """Both pipelines call ``retrieve_timesteps(..., sigmas=..., mu=...)``: a fitting sampler's class must take
    sigmas and mu, as the pipeline gives them (Qwen-Image: a numpy array, Z-Image: a list); DPM-Solver takes no
    sigmas at all, and UniPC cannot shift a list."""
    import inspect

    import diffusers
    import numpy as np

    from ldmpick.models.families import FAMILIES as ADAPTERS
    from ldmpick.models.samplers import make_scheduler

    given = {"qwen-image": np.linspace(1.0, 1 / 4, 4), "z-image": np.linspace(1.0, 1 / 4, 4).tolist()}
    config = {"num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": False}
    for fam, sigmas in given.items():
        for name in ADAPTERS[fam].samplers:
            params = inspect.signature(getattr(diffusers, get_sampler(name).scheduler_class).set_timesteps).parameters
            assert "sigmas" in params and "mu" in params, (fam, name)
            make_scheduler(name, config).set_timesteps(sigmas=sigmas, mu=0.5)
    assert "sigmas" not in inspect.signature(diffusers.DPMSolverMultistepScheduler.set_timesteps).parameters
    with pytest.raises(TypeError):
        make_scheduler("flow-unipc", config).set_timesteps(sigmas=given["z-image"], mu=0.5)


def test_qwen_image_facts_are_the_pipelines(loaded, pipelines):
    pipe = loaded["qwen-image"]
    spec = load_local_spec(pipelines["qwen-image"])
    adapter = spec.adapter
    assert pipe.prompt_template_encode_start_idx == adapter.PROMPT_TEMPLATE_PREFIX_TOKENS == 34
    assert pipe.tokenizer_max_length == adapter.TOKENIZER_MAX_LENGTH
    assert pipe.default_sample_size == adapter.default_sample_size
    assert pipe.vae_scale_factor == adapter.vae_scale_factor(spec) == 8
    # the template's prefix is exactly the tokens the pipeline drops; its suffix what stays after the prompt
    prefix, suffix = pipe.prompt_template_encode.split("{}")
    assert _prompt_tokens(pipe, prefix) == 34
    assert _prompt_tokens(pipe, suffix) == adapter.PROMPT_TEMPLATE_SUFFIX_TOKENS
    import inspect

    defaults = inspect.signature(type(pipe).__call__).parameters
    assert defaults["true_cfg_scale"].default == adapter.default_guidance
    assert defaults["num_inference_steps"].default == adapter.default_steps
    assert defaults["max_sequence_length"].default == adapter.MAX_SEQUENCE_LENGTH
    enc = adapter.text_encoders(spec)[0]
    assert enc.seq_len == 34 + adapter.PROMPT_TOKENS + 5
    assert adapter.prompt_tokens(spec) == adapter.PROMPT_TOKENS + 5


def test_z_image_facts_are_the_pipelines(loaded, pipelines):
    import inspect

    pipe = loaded["z-image"]
    spec = load_local_spec(pipelines["z-image"])
    adapter = spec.adapter
    rendered = pipe.tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False,
                                                  add_generation_prompt=True, enable_thinking=True)
    assert _prompt_tokens(pipe, rendered) == _prompt_tokens(pipe, PROMPT) + adapter.PROMPT_TEMPLATE_TOKENS
    defaults = inspect.signature(type(pipe).__call__).parameters
    assert defaults["max_sequence_length"].default == adapter.MAX_SEQUENCE_LENGTH
    assert defaults["guidance_scale"].default > 0  # the pipeline's own default guides (the base model's) ...
    assert adapter.default_guidance == 0.0 and adapter.default_steps == 9  # ... Turbo runs without CFG
    assert adapter.text_encoders(spec)[0].seq_len == 512
    assert adapter.caption_tokens(spec) == adapter.PROMPT_TOKENS + 8
    # a model whose own default guidance is above 0 doubles the batch, as the pipeline does at guidance_scale > 0
    spec.default_guidance = 3.5
    assert adapter.uses_cfg(spec, True) and adapter.evals_per_step(spec, True) == 2 and adapter.encoder_calls(spec, True) == 2
    spec.default_guidance = None
    assert adapter.encoder_calls(spec, True) == 1


def test_call_kwargs_run_the_guidance_the_settings_say():
    from ldmpick.models.families import FAMILIES as ADAPTERS

    qwen, z = ADAPTERS["qwen-image"], ADAPTERS["z-image"]

    class Facts:  # what call_kwargs reads of a model
        max_sequence_length = None
        components = {"transformer": {"guidance_embeds": False}}
        default_guidance = None

    assert qwen.call_kwargs(Facts, 4.0, 1) == {"true_cfg_scale": 4.0, "negative_prompt": " ",
                                               "max_sequence_length": 512}
    assert qwen.call_kwargs(Facts, 1.0, 1) == {"true_cfg_scale": 1.0, "max_sequence_length": 512}  # no CFG
    assert z.call_kwargs(Facts, 0.0, 1) == {"guidance_scale": 0.0, "max_sequence_length": 512}


# ------------------------------------------------------------------------ what the pipelines really do


def _capture_calls(module):
    calls: list[tuple[tuple, dict]] = []
    handle = module.register_forward_pre_hook(lambda m, args, kwargs: calls.append((args, kwargs)), with_kwargs=True)
    return calls, handle


@pytest.mark.parametrize("fam", sorted(EXPECTED))
def test_denoiser_inputs_are_shaped_as_the_pipeline_shapes_them(loaded, pipelines, fam):
    """The adapter's example inputs feed the tiny transformer, and match (keys, shapes, dtypes, text length for a
    prompt of the stated length) what the pipeline passes it."""
    import torch

    pipe = loaded[fam]
    spec = load_local_spec(pipelines[fam])
    adapter = spec.adapter
    res = 64
    n_prompt = _prompt_tokens(pipe, PROMPT)
    calls, handle = _capture_calls(pipe.transformer)
    enc_calls, enc_handle = _capture_calls(pipe.text_encoder)
    try:
        kwargs = adapter.call_kwargs(spec, spec.guidance, 1)
        pipe(PROMPT, num_inference_steps=2, height=res, width=res, generator=_generator(), output_type="latent",
             **kwargs)
    finally:
        handle.remove()
        enc_handle.remove()
    evals = adapter.evals_per_step(spec, True)
    assert len(calls) == 2 * evals  # per step: Qwen-Image's true CFG runs it twice, Turbo once
    args, real = calls[0]
    enc_args, enc_kwargs = enc_calls[0]
    assert enc_kwargs["output_hidden_states"] is True and "attention_mask" in enc_kwargs
    inputs = adapter.denoiser_inputs(spec, 1, res, "cpu", torch.float32)
    if fam == "qwen-image":
        assert set(inputs) <= set(real)
        for key in ("hidden_states", "timestep"):
            assert inputs[key].shape == real[key].shape and inputs[key].dtype == real[key].dtype
        assert inputs["encoder_hidden_states"].shape[2] == real["encoder_hidden_states"].shape[2]
        assert real["encoder_hidden_states_mask"] is None and inputs["encoder_hidden_states_mask"] is None
        assert inputs["img_shapes"] == real["img_shapes"]
        # the text length follows the prompt: prompt + the template's suffix (its 34-token prefix is dropped) ...
        assert real["encoder_hidden_states"].shape[1] == n_prompt + adapter.PROMPT_TEMPLATE_SUFFIX_TOKENS
        assert enc_kwargs["input_ids"].shape[1] == 34 + n_prompt + 5  # ... the encoder sees all of it
        assert 0 < float(real["timestep"][0]) <= 1  # t / 1000
    else:
        x, t, cap = args
        assert not real or set(real) <= {"joint_attention_kwargs", "return_dict"}
        assert [v.shape for v in inputs["x"]] == [v.shape for v in x] and inputs["x"][0].dtype == x[0].dtype
        assert inputs["t"].shape == t.shape and inputs["t"].dtype == t.dtype
        assert [c.shape[1] for c in inputs["cap_feats"]] == [c.shape[1] for c in cap]
        assert cap[0].shape[0] == n_prompt + adapter.PROMPT_TEMPLATE_TOKENS  # valid tokens of template + prompt
        assert enc_kwargs["input_ids"].shape[1] == adapter.MAX_SEQUENCE_LENGTH  # padded to max_length
        assert int(enc_kwargs["attention_mask"].sum()) == cap[0].shape[0]
        assert 0 <= float(t[0]) < 1  # (1000 - t) / 1000: 0 is pure noise
    # and they run: at the CFG-doubled batch the profiler measures
    with torch.no_grad():
        out = adapter_forward(pipe.transformer, inputs=adapter.denoiser_inputs(spec, 2 * evals, res, "cpu",
                                                                                torch.float32))
    side = res // 16
    if fam == "qwen-image":
        assert out.shape == (2 * evals, side * side, 4 * 16)
    else:
        assert len(out) == 2 * evals and out[0].shape == (16, 1, 2 * side, 2 * side)
        assert all(torch.isfinite(o).all() for o in out)


def adapter_forward(transformer, inputs):
    return transformer(**inputs, return_dict=False)[0]


@pytest.mark.parametrize("fam", sorted(EXPECTED))
def test_vae_decode_is_the_pipelines(loaded, pipelines, fam):
    """The adapter's decode of the pipeline's final latents gives the pipeline's image (before PIL)."""
    import torch

    pipe = loaded[fam]
    spec = load_local_spec(pipelines[fam])
    adapter = spec.adapter
    res = 32
    kwargs = dict(num_inference_steps=2, height=res, width=res, **adapter.call_kwargs(spec, 1.0, 1))
    latents = pipe(PROMPT, generator=_generator(3), output_type="latent", **kwargs).images
    image = pipe(PROMPT, generator=_generator(3), output_type="pt", **kwargs).images
    example = adapter.decode_latents(spec, 1, res, "cpu", torch.float32)
    assert example.shape == latents.shape  # the example latents are what the decoder receives
    with torch.no_grad():
        decoded = adapter.decode(pipe.vae, latents)
    assert decoded.shape == (1, 3, res, res)
    assert torch.allclose((decoded / 2 + 0.5).clamp(0, 1), image, atol=1e-5)
    assert adapter.vae_decode_dtype(spec, "fp16") == "fp16"  # the pipelines never upcast


@pytest.mark.parametrize("fam", sorted(EXPECTED))
def test_timestep_kwargs_are_the_pipelines_shift(loaded, pipelines, fam):
    import importlib

    pipe = loaded[fam]
    spec = load_local_spec(pipelines[fam])
    module = importlib.import_module(type(pipe).__module__)
    res = 512
    kwargs = spec.adapter.timestep_kwargs(spec, pipe.scheduler, res)
    cfg = pipe.scheduler.config
    if fam == "qwen-image":
        seq = (res // 16) ** 2  # packed latents.shape[1]
        want = module.calculate_shift(seq, cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                                      cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))
        assert kwargs == {"mu": pytest.approx(want)}
    else:
        assert not cfg.use_dynamic_shifting and kwargs == {}  # a static shift: the pipeline's mu is ignored


# ---------------------------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("fam", sorted(EXPECTED))
def test_add_profile_recommend_generate(pipelines, fam, tmp_path):
    name, want = f"tiny-{fam}", EXPECTED[fam]
    run = add_profile_recommend_generate(name, pipelines[fam], tiny_resolution(fam), tmp_path, prompt=PROMPT)
    prof, m, record = run.profile, run.model, run.record
    assert m.family == want["family"] and m.cfg is want["cfg"]
    assert m.text_encoders.count("tokens") == want["encoders"] and want["label"] in m.text_encoders
    assert want["samplers"] == set(m.samplers) == {s.name for s in prof.samplers}
    settings = record["settings"]
    assert settings["family"] == want["family"] and settings["cfg"] is want["cfg"]
    assert settings["guidance"] == (4.0 if fam == "qwen-image" else 0.0)
    assert record["scheduler_class"] == "FlowMatchEulerDiscreteScheduler"


def test_qwen_image_generates_with_the_second_order_flow_sampler(pipelines, tmp_path):
    """flow-unipc runs Qwen-Image's custom sigmas and mu through the pipeline without an error."""
    r = runner.invoke(app, ["generate", PROMPT, "--model", str(pipelines["qwen-image"]), "--sampler", "flow-unipc",
                            "--steps", "2", "--resolution", "32", "--device", "cpu", "--out", str(tmp_path / "o"),
                            "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["scheduler_class"] == "UniPCMultistepScheduler"
    assert len(list((tmp_path / "o").glob("*.png"))) == 1


@pytest.mark.parametrize("fam,sampler", [("qwen-image", "flow-dpmpp-2m"), ("z-image", "flow-dpmpp-2m"),
                                         ("z-image", "flow-unipc")])
def test_a_sampler_the_pipeline_cannot_run_is_refused_before_loading(pipelines, fam, sampler, tmp_path):
    r = runner.invoke(app, ["generate", "x", "--model", str(pipelines[fam]), "--sampler", sampler, "--steps",
                            "2", "--resolution", "32", "--device", "cpu", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert f"sampler '{sampler}' does not fit" in r.stderr and "flow-euler" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------- released configs


@pytest.mark.skipif(not (REFERENCE / "qwen-image").is_dir(), reason="no reference configs in this checkout")
def test_the_released_configs_are_read_as_the_models_are():
    """shared/reference/real_models/configs (VERIFY.md): parameter counts on the meta device, sizes, text lengths."""
    qwen = load_local_spec(REFERENCE / "qwen-image")
    assert qwen.family == "qwen-image" and qwen.denoiser_params == 20_430_401_088
    assert qwen.native_resolution == 1024 and qwen.resolution_multiple == 16
    assert qwen.vae_scale_factor == 8 and qwen.latent_channels == 16
    enc = qwen.adapter.text_encoders(qwen)[0]
    assert enc.vocab_size == 152064 and enc.seq_len == 34 + 64 + 5
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler.from_config(qwen.scheduler_config)
    slope = (0.9 - 0.5) / (8192 - 256)  # the released shift: 0.5 at 256 image tokens, 0.9 at 8192
    assert qwen.adapter.uses_cfg(qwen, True)
    assert qwen.adapter.timestep_kwargs(qwen, scheduler, 1024) == {"mu": pytest.approx(0.5 + slope * (4096 - 256))}
    inputs = qwen.adapter.denoiser_inputs(qwen, 1, 1024, "meta", None)
    assert inputs["hidden_states"].shape == (1, 4096, 64) and inputs["encoder_hidden_states"].shape == (1, 69, 3584)

    z = load_local_spec(REFERENCE / "z-image-turbo")
    assert z.family == "z-image" and z.denoiser_params == 6_154_908_736
    assert z.native_resolution == 1024 and z.resolution_multiple == 16 and z.latent_channels == 16
    enc = z.adapter.text_encoders(z)[0]
    assert enc.class_name == "Qwen3Model" and enc.seq_len == 512 and enc.vocab_size == 151936
    assert not z.adapter.uses_cfg(z, True)
    assert z.adapter.timestep_kwargs(z, FlowMatchEulerDiscreteScheduler.from_config(z.scheduler_config), 1024) == {}
    inputs = z.adapter.denoiser_inputs(z, 1, 1024, "meta", None)
    assert inputs["x"][0].shape == (16, 1, 128, 128) and inputs["cap_feats"][0].shape == (72, 2560)
    from ldmpick.models.families.base import component_params

    assert component_params(qwen)["text_encoder"] == 8_292_166_656
    assert component_params(z)["text_encoder"] == 4_022_468_096
