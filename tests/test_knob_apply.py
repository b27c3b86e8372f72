"""Knobs applied to real (tiny) diffusers models on the CPU: every cache policy through the denoiser's own
``enable_cache`` (hooks registered, outputs finite), the fixed schedules' full / cached pattern checked against what
diffusers' hooks actually run (counting the attention projections through forward hooks), the same through a tiny
FluxPipeline's own call, bf16 on the CPU, int8 weight-only when torchao is installed, fp8 only on a capable GPU,
an attention backend through ``set_attention_backend``, and today's execution modes through the shared runner."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from ldmpick.files.errors import UsageError
from ldmpick.knobs import parse_knob, parse_knobs
from ldmpick.knobs.application import apply_knobs
from ldmpick.knobs.cache import KIND as CACHE
from ldmpick.knobs.cache import apply_cache
from ldmpick.knobs.precision import apply_precision, torchao_installed

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # (conftest)
SEQ, TXT = 16, 8
# the diffusers hook each cache registers (diffusers.hooks.<module>._..._HOOK), on which kind of module
HOOKS = {"fbcache": ("first_block_cache", "_FBC_LEADER_BLOCK_HOOK", "transformer_blocks.0"),
         "magcache": ("mag_cache", "_MAG_CACHE_LEADER_BLOCK_HOOK", "transformer_blocks.0"),
         "taylorseer": ("taylorseer_cache", "_TAYLORSEER_CACHE_HOOK", "transformer_blocks.0.attn"),
         "pab": ("pyramid_attention_broadcast", "_PYRAMID_ATTENTION_BROADCAST_HOOK", "transformer_blocks.0.attn"),
         "fastercache": ("faster_cache", "_FASTER_CACHE_BLOCK_HOOK", "transformer_blocks.0.attn")}


def tiny_flux(seed: int = 0):
    """The tiny FLUX.1-schnell-like transformer of tests/family_pipelines.py (one double, one single block)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return diffusers.FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=False,
            axes_dims_rope=(4, 4, 8)).eval()


def flux_inputs(dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    return {"hidden_states": torch.randn(1, SEQ, 64, generator=g).to(dtype),
            "encoder_hidden_states": torch.randn(1, TXT, 32, generator=g).to(dtype),
            "pooled_projections": torch.randn(1, 32, generator=g).to(dtype),
            "img_ids": torch.zeros(SEQ, 3), "txt_ids": torch.zeros(TXT, 3)}


def timesteps(steps: int) -> list[float]:
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=1.0)
    scheduler.set_timesteps(steps)
    return [float(t) for t in scheduler.timesteps]


class Counter:
    """Counts the calls of the real attention projections (``attn.to_q``): they run only when the attention
    module's original forward runs, not when a cache hook returns a cached or predicted output."""

    def __init__(self, model, name: str = "single_transformer_blocks.0.attn.to_q"):
        self.n = 0
        model.get_submodule(name).register_forward_hook(self._hook)

    def _hook(self, *_args):
        self.n += 1


def run(model, ts: list[float], clock: dict, counter: Counter | None = None, dtype=torch.float32) -> tuple[str, list]:
    """Call the denoiser once per timestep the way a diffusers pipeline does (in a cache context, the current
    timestep published for PAB / FasterCache); the pattern of steps whose attention really ran, and the outputs."""
    x, pattern, outs = flux_inputs(dtype), "", []
    with torch.no_grad(), model.cache_context("cond"):
        for t in ts:
            clock["t"] = t
            before = counter.n if counter else 0
            outs.append(model(timestep=torch.tensor([t / 1000]).to(dtype), **x).sample)
            if counter:
                pattern += "F" if counter.n > before else "c"
    return pattern, outs


@pytest.mark.parametrize("text", [
    "cache=fbcache", "cache=magcache", "cache=taylorseer", "cache=taylorseer(interval=3,order=2,scope=blocks)",
    "cache=taylorseer(scope=lite)", "cache=pab", "cache=fastercache",
])
def test_each_cache_is_applied_through_enable_cache_and_outputs_stay_finite(text):
    setting = parse_knob(text)
    model, clock = tiny_flux(), {"t": 1000.0}
    applied = apply_cache(setting, model, steps=8, current_timestep=lambda: clock["t"])
    assert model.is_cache_enabled and "enabled on FluxTransformer2DModel" in applied.note
    module_name, constant, where = HOOKS[setting.name]
    if setting.name == "taylorseer":
        where = {"attention": where, "blocks": "transformer_blocks.0", "lite": "proj_out"}[setting.param("scope")]
    hook_name = getattr(getattr(diffusers.hooks, module_name), constant)
    assert model.get_submodule(where)._diffusers_hook.get_hook(hook_name) is not None
    _, outs = run(model, timesteps(8), clock)
    assert all(torch.isfinite(o).all() for o in outs)
    assert outs[0].shape == (1, SEQ, 64)


@pytest.mark.parametrize("text,steps", [
    ("cache=taylorseer(interval=3,order=1,warmup=2)", 12),
    ("cache=taylorseer", 16),  # diffusers' defaults: interval 5, order 1, warm-up 3
    ("cache=taylorseer(interval=4,order=2,warmup=2,scope=blocks)", 12),
    ("cache=pab(skip=3,low=100,high=900)", 12),
    ("cache=pab", 10),
    ("cache=fastercache(skip=2,low=-1,high=681)", 12),
])
def test_a_fixed_schedule_is_what_diffusers_hooks_actually_run(text, steps):
    setting = parse_knob(text)
    ts = timesteps(steps)
    model, clock = tiny_flux(), {"t": ts[0]}
    counter = Counter(model)
    apply_cache(setting, model, steps=steps, current_timestep=lambda: clock["t"])
    pattern, _ = run(model, ts, clock, counter)
    predicted = CACHE.schedule(setting, steps, ts)
    assert pattern == predicted.pattern()
    assert "c" in pattern and pattern.startswith("F")  # the run really cached some steps


def test_the_double_blocks_attention_follows_the_same_schedule():
    setting = parse_knob("cache=taylorseer(interval=3,order=1,warmup=2)")
    ts = timesteps(10)
    model, clock = tiny_flux(), {"t": ts[0]}
    counter = Counter(model, "transformer_blocks.0.attn.to_q")
    apply_cache(setting, model, current_timestep=lambda: clock["t"])
    pattern, _ = run(model, ts, clock, counter)
    assert pattern == CACHE.schedule(setting, 10).pattern() == "FFcFccFccF"


def test_an_adaptive_cache_skips_by_content_which_its_threshold_decides():
    ts = timesteps(10)
    never, clock = tiny_flux(), {"t": ts[0]}
    counter = Counter(never)
    apply_cache(parse_knob("cache=fbcache(threshold=0.0)"), never)
    pattern, _ = run(never, ts, clock, counter)
    assert pattern == "F" * 10  # a zero threshold never skips
    eager = tiny_flux()
    counter = Counter(eager)
    apply_cache(parse_knob("cache=fbcache(threshold=1.0)"), eager)
    pattern, outs = run(eager, ts, clock, counter)
    assert pattern[0] == "F" and "c" in pattern
    assert all(torch.isfinite(o).all() for o in outs)


def test_knobs_apply_to_a_tiny_flux_pipeline_and_its_own_call_follows_the_schedule(tmp_path):
    from family_pipelines import build_family_pipeline

    folder = build_family_pipeline("flux", tmp_path / "flux")
    pipe = diffusers.FluxPipeline.from_pretrained(folder, use_safetensors=True)
    knobs = parse_knobs("precision=fp32,attention=sdpa,cache=pab(skip=2,low=100,high=900),compile=none")
    applied = apply_knobs(knobs, pipe, "cpu", steps=8)
    assert [a.setting for a in applied] == list(knobs)
    assert applied[-1].runner.mode == "eager"
    counter = Counter(pipe.transformer)
    out = pipe("a red cube", height=64, width=64, num_inference_steps=8, guidance_scale=0.0,
               output_type="latent", generator=torch.Generator().manual_seed(0), max_sequence_length=16)
    assert torch.isfinite(out.images).all()
    ts = [float(t) for t in pipe.scheduler.timesteps]
    expected = CACHE.schedule(knobs[2], 8, ts)
    assert counter.n == len(expected.full) < 8


def test_a_knob_that_cannot_run_here_is_refused_before_anything_changes(tmp_path):
    model = tiny_flux()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(UsageError, match=r"^compile=cudagraph: mode 'cudagraph' needs a CUDA device"):
        apply_knobs(parse_knobs("precision=bf16,compile=cudagraph"), model, "cpu")
    assert all(p.dtype == torch.float32 and torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert not model.is_cache_enabled


def test_bf16_runs_on_the_cpu():
    reference, model = tiny_flux(), tiny_flux()
    applied = apply_precision(parse_knob("precision=bf16"), model)
    assert "torch.bfloat16" in applied.note
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    with torch.no_grad():
        want = reference(timestep=torch.tensor([0.5]), **flux_inputs()).sample
        got = model(timestep=torch.tensor([0.5]).to(torch.bfloat16), **flux_inputs(torch.bfloat16)).sample
    assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    assert torch.allclose(got.float(), want, atol=0.1, rtol=0.1)


@pytest.mark.skipif(not torchao_installed(), reason="torchao is not installed in this environment (pip show "
                    "torchao: not found); int8 weight-only quantization needs it")
def test_int8_weight_only_runs_on_the_cpu_through_torchao():
    model = tiny_flux()
    applied = apply_precision(parse_knob("precision=int8"), model)
    assert "Int8WeightOnlyConfig" in applied.note
    with torch.no_grad():
        out = model(timestep=torch.tensor([0.5]).to(torch.bfloat16), **flux_inputs(torch.bfloat16)).sample
    assert torch.isfinite(out).all()


def test_without_torchao_the_quantized_precisions_say_so_in_one_line():
    if torchao_installed():
        pytest.skip("torchao is installed here")
    with pytest.raises(UsageError, match=r"^precision=int8 needs torchao \(pip install torchao\)$"):
        apply_precision(parse_knob("precision=int8"), tiny_flux())


def _fp8_capable() -> bool:
    return (torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9) and torchao_installed())


@pytest.mark.skipif(not _fp8_capable(), reason="fp8 needs a CUDA GPU of compute capability 8.9+ and torchao")
def test_fp8_runs_on_a_capable_gpu():
    model = tiny_flux().to("cuda")
    apply_precision(parse_knob("precision=fp8"), model)
    x = {k: v.to("cuda", torch.bfloat16) if v.dtype.is_floating_point else v.to("cuda")
         for k, v in flux_inputs().items()}
    with torch.no_grad():
        out = model(timestep=torch.tensor([0.5], device="cuda", dtype=torch.bfloat16), **x).sample
    assert torch.isfinite(out).all()


def test_an_attention_backend_is_set_through_set_attention_backend():
    reference, model = tiny_flux(), tiny_flux()
    applied = apply_knobs(parse_knobs("attention=math"), model, "cpu")
    assert "use backend _native_math" in applied[0].note
    backends = {m.processor._attention_backend for m in model.modules()
                if hasattr(getattr(m, "processor", None), "_attention_backend")}
    assert {str(getattr(b, "value", b)) for b in backends} == {"_native_math"}
    with torch.no_grad():
        want = reference(timestep=torch.tensor([0.5]), **flux_inputs()).sample
        got = model(timestep=torch.tensor([0.5]), **flux_inputs()).sample
    assert torch.allclose(got, want, atol=1e-5)


def test_todays_eager_mode_runs_through_the_shared_runner():
    from ldmpick.hardware.execution import DenoiserRunner

    model = tiny_flux()
    applied = apply_knobs(parse_knobs("compile=eager"), model, "cpu")
    assert isinstance(applied[0].runner, DenoiserRunner) and applied[0].runner.mode == "eager"
