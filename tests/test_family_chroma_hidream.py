"""The Chroma and HiDream-I1 adapters against diffusers' own pipelines, on tiny random folders (no GPU, no network).

Each adapter must say what its pipeline really does: the family is chosen from model_index.json; the encoder stack,
each encoder's token count and call (mask, hidden states) match the calls the pipeline makes; denoiser_inputs have
the keys, shapes and dtypes of the pipeline's own transformer call and run the tiny transformer; the VAE decode gets
what the pipeline gives it; ``mu`` is the pipeline's; CFG doubles the work only where the pipeline does CFG (Chroma,
HiDream-Full; not HiDream-Dev/Fast); the samplers listed run in the pipeline and the flow samplers left out fail in it.
Then the CLI end to end: models add -> profile -> recommend (no quality data) -> generate a PNG.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from family_cli import add_profile_recommend_generate
from pipelines_chroma_hidream import (
    CHROMA_T5_WIDTH,
    HIDREAM_CLIP_WIDTHS,
    HIDREAM_LLAMA_LAYERS,
    build_pipeline,
    pipeline_class_name,
    tiny_resolution,
)
from typer.testing import CliRunner

from ldmpick.models.catalogue import load_local_spec
from ldmpick.models.samplers import SAMPLERS, get_sampler, make_scheduler

runner = CliRunner()
REFERENCE = Path("/work/shared/reference/real_models/configs")

# case -> (family, builder variant); what each must be recognised as
CASES = {"chroma": ("chroma", "full"), "hidream-full": ("hidream", "full"), "hidream-dev": ("hidream", "dev"),
         "hidream-fast": ("hidream", "fast")}
EXPECTED = {
    "chroma": dict(family="chroma", cfg=True, encoders=1, samplers={"flow-euler", "flow-unipc"},
                   seq_lens=[512], steps=35, scheduler="FlowMatchEulerDiscreteScheduler"),
    "hidream-full": dict(family="hidream", cfg=True, encoders=4, samplers={"flow-unipc", "flow-euler"},
                         seq_lens=[128, 128, 128, 128], steps=50, scheduler="UniPCMultistepScheduler"),
    "hidream-dev": dict(family="hidream", cfg=False, encoders=4, samplers={"flow-unipc", "flow-euler"},
                        seq_lens=[128, 128, 128, 128], steps=28, scheduler="FlowMatchLCMScheduler"),
    "hidream-fast": dict(family="hidream", cfg=False, encoders=4, samplers={"flow-unipc", "flow-euler"},
                         seq_lens=[128, 128, 128, 128], steps=16, scheduler="FlowMatchLCMScheduler"),
}
PIPELINE_CASES = ("chroma", "hidream-full", "hidream-dev")  # run through diffusers (fast is dev's wiring)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # (conftest)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chroma_hidream")
    return {case: build_pipeline(fam, root / case, variant=variant) for case, (fam, variant) in CASES.items()}


def _side(case: str) -> int:
    return tiny_resolution(CASES[case][0])


def _load(folder: Path):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------------------------------------- the adapters


@pytest.mark.parametrize("case", CASES)
def test_the_adapter_is_chosen_from_model_index(folders, case):
    folder = folders[case]
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == pipeline_class_name(CASES[case][0])
    assert index["scheduler"][1] == EXPECTED[case]["scheduler"]
    spec = load_local_spec(folder)
    want, adapter = EXPECTED[case], spec.adapter
    assert spec.family == want["family"] and adapter.name == want["family"]
    encoders = adapter.text_encoders(spec)
    assert len(encoders) == want["encoders"]
    assert [e.seq_len for e in encoders] == want["seq_lens"]
    assert adapter.uses_cfg(spec, True) is want["cfg"] and adapter.uses_cfg(spec, False) is False
    assert adapter.evals_per_step(spec, True) == (2 if want["cfg"] else 1)
    assert adapter.encoder_calls(spec, True) == (2 if want["cfg"] else 1)  # the negative prompt only with CFG
    assert set(adapter.fitting_samplers(spec)) == want["samplers"]
    assert all(get_sampler(s).flow for s in adapter.fitting_samplers(spec))
    assert adapter.misfit_reason(spec, "ddim") == "a flow-matching model"
    assert adapter.misfit_reason(spec, "flow-dpmpp-2m") is not None
    assert adapter.default_steps(spec) == want["steps"]
    assert spec.denoiser_params > 0 and spec.has_weights
    # the pipelines' default_sample_size (128 latent pixels) x the VAE factor (the tiny Chroma VAE: 8, HiDream's: 2)
    assert spec.native_resolution == {"chroma": 1024, "hidream": 256}[want["family"]]
    assert spec.resolution_multiple == {"chroma": 16, "hidream": 4}[want["family"]]


def test_the_encoder_stacks_in_pipeline_order(folders):
    chroma = load_local_spec(folders["chroma"])
    (t5,) = chroma.adapter.text_encoders(chroma)
    assert (t5.component, t5.class_name, int(t5.config["d_model"])) == ("text_encoder", "T5EncoderModel",
                                                                         CHROMA_T5_WIDTH)
    hidream = load_local_spec(folders["hidream-full"])
    stack = hidream.adapter.text_encoders(hidream)
    assert [(e.component, e.class_name) for e in stack] == [
        ("text_encoder", "CLIPTextModelWithProjection"), ("text_encoder_2", "CLIPTextModelWithProjection"),
        ("text_encoder_3", "T5EncoderModel"), ("text_encoder_4", "LlamaForCausalLM")]
    assert [int(e.config["projection_dim"]) for e in stack[:2]] == list(HIDREAM_CLIP_WIDTHS)
    assert hidream.adapter.llama_states(hidream) == HIDREAM_LLAMA_LAYERS
    # max_sequence_length moves every encoder; CLIP stops at the pipeline's 218
    hidream.max_sequence_length = 300
    assert [e.seq_len for e in hidream.adapter.text_encoders(hidream)] == [218, 218, 300, 300]
    assert hidream.adapter.call_kwargs(hidream, 5.0, 1)["max_sequence_length"] == 300


def test_guidance_as_the_pipeline_uses_it(folders):
    full, dev = load_local_spec(folders["hidream-full"]), load_local_spec(folders["hidream-dev"])
    assert full.adapter.call_kwargs(full, 5.0, 1)["guidance_scale"] == 5.0
    # a distilled variant is called at guidance 0: the pipeline then never runs the doubled CFG batch
    assert dev.adapter.call_kwargs(dev, 5.0, 1)["guidance_scale"] == 0.0
    assert dev.adapter.guidance_distilled(dev) and not full.adapter.guidance_distilled(full)
    chroma = load_local_spec(folders["chroma"])
    assert chroma.guidance == 5.0 and chroma.adapter.call_kwargs(chroma, 3.0, 1) == {
        "guidance_scale": 3.0, "max_sequence_length": 512}


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference configs of the released models not present")
def test_the_released_models():
    """Chroma1-HD and HiDream-I1 Full/Dev/Fast as released: sizes, stacks, guidance, native 1024 px."""
    chroma = load_local_spec(REFERENCE / "chroma1-hd")
    assert chroma.family == "chroma" and abs(chroma.denoiser_params / 8.9e9 - 1) < 0.01
    assert chroma.native_resolution == 1024 and chroma.resolution_multiple == 16 and chroma.latent_channels == 16
    assert [(e.label, e.seq_len) for e in chroma.adapter.text_encoders(chroma)] == [("T5-XXL", 512)]
    assert chroma.adapter.uses_cfg(chroma, True)
    for variant, cfg, steps in (("full", True, 50), ("dev", False, 28), ("fast", False, 16)):
        spec = load_local_spec(REFERENCE / f"hidream-i1-{variant}")
        adapter = spec.adapter
        assert spec.family == "hidream" and abs(spec.denoiser_params / 17.1057e9 - 1) < 0.001
        assert [(e.label, e.seq_len) for e in adapter.text_encoders(spec)] == [
            ("Long-CLIP-L", 128), ("Long-CLIP-G", 128), ("T5-XXL", 128), ("Llama-3.1-8B", 128)]
        assert adapter.uses_cfg(spec, True) is cfg and adapter.default_steps(spec) == steps
        assert spec.native_resolution == 1024 and spec.resolution_multiple == 16
        assert adapter.llama_states(spec) == 32  # the 32 layers' hidden states; llama_layers index up to 31
        assert adapter.generated_size(spec, 512) == (1024, 1024) == adapter.generated_size(spec, 768)
        assert adapter.generated_size(spec, 768, 1360)[0] < 1024 < adapter.generated_size(spec, 768, 1360)[1]
        assert "cudagraph" not in adapter.fast_modes  # MoE routing reads the router's output on the host


# ------------------------------------------------------------------------------- against the pipeline's calls


class Recorder:
    """Records every call the pipeline makes to its text encoders, transformer, VAE decode and set_timesteps."""

    def __init__(self, pipe: Any, encoders: list[str]):
        self.pipe, self.calls = pipe, {}
        self.handles = []
        for comp in encoders + ["transformer"]:
            module = getattr(pipe, comp)
            self.handles.append(module.register_forward_pre_hook(self._hook(comp), with_kwargs=True))
        self.decode, self.set_timesteps = pipe.vae.decode, pipe.scheduler.set_timesteps
        pipe.vae.decode = self._wrap("vae.decode", self.decode)
        pipe.scheduler.set_timesteps = self._wrap("set_timesteps", self.set_timesteps)

    def _hook(self, name: str):
        def hook(module: Any, args: tuple, kwargs: dict) -> None:
            self.calls.setdefault(name, []).append((args, dict(kwargs)))
        return hook

    def _wrap(self, name: str, fn: Any):
        @functools.wraps(fn)  # the pipeline inspects set_timesteps' signature (does it take sigmas?)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.calls.setdefault(name, []).append((args, dict(kwargs)))
            return fn(*args, **kwargs)
        return wrapped

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.pipe.vae.decode, self.pipe.scheduler.set_timesteps = self.decode, self.set_timesteps


def _signature(value: Any) -> Any:
    """A call argument as (shape, dtype) for tensors, the value itself otherwise."""
    import torch

    if isinstance(value, torch.Tensor):
        return tuple(value.shape), value.dtype
    return value


@pytest.mark.parametrize("case", PIPELINE_CASES)
def test_the_adapter_says_what_the_pipeline_does(folders, case):
    import torch

    spec = load_local_spec(folders[case])
    adapter, side = spec.adapter, _side(case)
    pipe = _load(folders[case])
    encoders = [e.component for e in adapter.text_encoders(spec)]
    rec = Recorder(pipe, encoders)
    try:
        kwargs = adapter.call_kwargs(spec, spec.guidance, 1)
        image = pipe("a red cat", num_inference_steps=2, height=side, width=side, output_type="np",
                     generator=torch.Generator().manual_seed(0), **kwargs).images
    finally:
        rec.close()
    assert image.shape == (1, side, side, 3)
    cfg = adapter.uses_cfg(spec, True)

    # the text encoders: each called with the prompt (and the negative prompt with CFG) at its own length, with the
    # keyword arguments the adapter's encode passes
    for enc in adapter.text_encoders(spec):
        calls = rec.calls[enc.component]
        assert len(calls) == adapter.encoder_calls(spec, True), enc.component
        (ids,), call_kwargs = calls[0]
        assert ids.shape == (1, enc.seq_len), enc.component
        mine = Recorder.__new__(Recorder)
        mine.calls = {}
        handle = getattr(pipe, enc.component).register_forward_pre_hook(mine._hook("x"), with_kwargs=True)
        try:
            with torch.no_grad():
                adapter.encode(spec, enc, getattr(pipe, enc.component), torch.randint(0, enc.vocab_size,
                                                                                      (1, enc.seq_len)))
        finally:
            handle.remove()
        (_, my_kwargs), = mine.calls["x"]
        assert {k: _signature(v) for k, v in my_kwargs.items()} == \
               {k: _signature(v) for k, v in call_kwargs.items()}, enc.component

    # the transformer: one call per step (Chroma: two with CFG, the negative prompt separately; HiDream: one
    # doubled batch), with the keys, shapes and dtypes of denoiser_inputs at the batch the profiler asks for
    calls = rec.calls["transformer"]
    two_calls = case == "chroma" and cfg
    assert len(calls) == 2 * (2 if two_calls else 1)
    _, pipe_kwargs = calls[0]
    batch = 1 if two_calls else adapter.evals_per_step(spec, True)
    inputs = adapter.denoiser_inputs(spec, batch, side, "cpu", torch.float32)
    ignored = {"return_dict", "joint_attention_kwargs", "attention_kwargs"}
    assert {k: _signature(v) for k, v in pipe_kwargs.items() if k not in ignored} == \
           {k: _signature(v) for k, v in inputs.items()}

    # the VAE decode: the pipeline's latents are what the adapter's decode hands the VAE
    (pipe_z,), _ = rec.calls["vae.decode"][0]
    seen = []
    pipe.vae.decode = lambda z, **kw: seen.append(z) or rec.decode(z, **kw)
    try:
        with torch.no_grad():
            adapter.decode(pipe.vae, adapter.decode_latents(spec, 1, side, "cpu", torch.float32))
    finally:
        pipe.vae.decode = rec.decode
    assert seen[0].shape == pipe_z.shape

    # the schedule: mu as the pipeline computes it, none where it passes none
    (_, sched_kwargs), = rec.calls["set_timesteps"]
    mine = adapter.timestep_kwargs(spec, pipe.scheduler, side)
    if "mu" in mine or (sched_kwargs.get("mu") is not None and pipe.scheduler.config.get("use_dynamic_shifting")):
        assert mine["mu"] == pytest.approx(sched_kwargs["mu"])
    if type(pipe.scheduler).__name__ == "UniPCMultistepScheduler":
        assert "mu" not in sched_kwargs and mine == {}


@pytest.mark.parametrize("case", ("chroma", "hidream-full"))
def test_denoiser_inputs_feed_the_tiny_transformer(folders, case):
    import torch

    spec = load_local_spec(folders[case])
    adapter, side = spec.adapter, _side(case)
    pipe = _load(folders[case])
    batch = adapter.evals_per_step(spec, True)
    inputs = adapter.denoiser_inputs(spec, batch, side, "cpu", torch.float32)
    with torch.no_grad():
        out = pipe.transformer(**inputs, return_dict=False)[0]
    latent = adapter.latent_size(spec, side)
    want = ((batch, (latent // 2) ** 2, adapter.latent_channels(spec) * 4) if case == "chroma"
            else (batch, adapter.latent_channels(spec), latent, latent))
    assert tuple(out.shape) == want and torch.isfinite(out).all()


@pytest.mark.parametrize("case", ("chroma", "hidream-dev"))
def test_listed_samplers_run_in_the_pipeline_and_the_others_fail(folders, case):
    """Chroma passes custom sigmas (DPM-Solver takes none); HiDream passes mu to every scheduler but UniPC, which
    DPM-Solver refuses unless it shifts dynamically. The listed ones run one step; the others fail in diffusers."""
    spec = load_local_spec(folders[case])
    pipe = _load(folders[case])
    base = dict(pipe.scheduler.config)
    side = _side(case)
    listed = set(spec.adapter.fitting_samplers(spec))
    for name, sampler in SAMPLERS.items():
        if not sampler.flow or sampler.distilled_only:
            continue
        pipe.scheduler = make_scheduler(name, base)
        run = lambda: pipe("a cat", num_inference_steps=1, height=side, width=side, output_type="latent",  # noqa
                           **spec.adapter.call_kwargs(spec, spec.guidance, 1))
        if name in listed:
            assert run().images.shape[0] == 1, name
        else:
            with pytest.raises((ValueError, AssertionError, TypeError)):
                run()


def test_hidream_makes_the_native_area_whatever_it_is_asked(folders):
    """HiDreamImagePipeline rescales the request to the native area: the adapter's example shapes follow it."""
    import torch

    spec = load_local_spec(folders["hidream-dev"])
    adapter = spec.adapter
    native = spec.native_resolution
    assert adapter.generated_size(spec, native // 2) == (native, native)
    z = adapter.decode_latents(spec, 1, native // 2, "cpu", torch.float32)
    assert tuple(z.shape[-2:]) == (native // adapter.vae_scale_factor(spec),) * 2
    pipe = _load(folders["hidream-dev"])
    image = pipe("a cat", num_inference_steps=1, height=native // 2, width=native // 2, output_type="np",
                 guidance_scale=0.0).images
    assert image.shape[1:3] == adapter.generated_size(spec, native // 2)


# ---------------------------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("case", PIPELINE_CASES)
def test_add_profile_recommend_generate(folders, case, tmp_path):
    name, want = f"tiny-{case}", EXPECTED[case]
    run = add_profile_recommend_generate(name, folders[case], _side(case), tmp_path)
    prof, m, record = run.profile, run.model, run.record
    assert m.family == want["family"] and m.cfg is want["cfg"]
    assert m.text_encoders.count("tokens") == want["encoders"]
    assert set(m.samplers) == want["samplers"] == {s.name for s in prof.samplers}
    assert record["settings"]["family"] == want["family"]
    assert record["settings"]["cfg"] is want["cfg"]
    assert record["scheduler_class"] == want["scheduler"]  # the model's own saved scheduler
