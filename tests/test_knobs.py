"""The knob registry without a model: the text form and its errors, today's --dtype / --mode spellings, the
compatibility matrix, device and denoiser checks, fixed and adaptive schedules and their costs, and the published
effects table (its provenance, its rebuild from the reference, the lookup's published / transferred / unmeasured)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from ldmpick.files.errors import UsageError
from ldmpick.knobs import (
    REGISTRY,
    DeviceFacts,
    KnobSetting,
    format_knobs,
    knob_kind,
    parse_knob,
    parse_knobs,
)
from ldmpick.knobs.compatibility import (
    RULES,
    TRAITS,
    combine,
    matrix,
    refusals,
    verdict,
    with_mode,
)
from ldmpick.knobs.schedule import ADAPTIVE, FIXED, LatencySchedule

ROOT = Path(__file__).resolve().parent.parent
CPU = DeviceFacts("cpu")
H100 = DeviceFacts("cuda", (9, 0))
A100 = DeviceFacts("cuda", (8, 0))


# ---------------------------------------------------------------------------------------------- text form


def test_a_knob_list_reads_back_to_the_same_settings_in_registry_order():
    knobs = parse_knobs("compile=eager, cache=taylorseer(interval=4,order=2), precision=bf16, attention=sdpa")
    assert [k.kind for k in knobs] == list(REGISTRY)
    text = format_knobs(knobs)
    assert text == ("precision=bf16,attention=sdpa,cache=taylorseer(interval=4,order=2,warmup=3,scope=attention),"
                    "compile=none")
    assert parse_knobs(text) == knobs


def test_every_parameter_is_kept_so_the_text_means_the_same_whatever_defaults_become():
    s = parse_knob("cache=fbcache")
    assert s == KnobSetting("cache", "fbcache", (("threshold", 0.05),))
    assert s.text == "cache=fbcache(threshold=0.05)"
    assert parse_knob("cache=fbcache(threshold=0.1)").text == "cache=fbcache(threshold=0.1)"
    assert parse_knob("CACHE = PAB ( skip = 3 )").text == "cache=pab(skip=3,low=100,high=800)"


def test_none_is_the_empty_list():
    assert parse_knobs("none") == parse_knobs("") == parse_knobs(None) == ()
    assert format_knobs(()) == "none"


@pytest.mark.parametrize("text,kind,name", [
    ("precision=fp16", "precision", "fp16"), ("precision=float16", "precision", "fp16"),
    ("precision=int8wo", "precision", "int8"), ("compile=eager", "compile", "none"),
    ("compile=compile", "compile", "full"), ("compile=cudagraph", "compile", "cudagraph"),
    ("compile=regional", "compile", "repeated-blocks"), ("attention=native", "attention", "sdpa"),
    ("cache=off", "cache", "none"),
])
def test_todays_spellings_and_aliases_are_accepted(text, kind, name):
    s = parse_knob(text)
    assert (s.kind, s.name) == (kind, name)


def test_todays_dtype_and_mode_values_are_settings_of_the_registry():
    from ldmpick.hardware.execution import DTYPES, MODES
    from ldmpick.knobs.compile import from_mode
    from ldmpick.knobs.precision import from_dtype

    assert {from_dtype(d).name for d in DTYPES} == set(DTYPES)
    assert [from_mode(m).name for m in MODES] == ["none", "cudagraph", "full"]
    assert knob_kind("precision").default("cpu") == parse_knob("precision=fp32")
    assert knob_kind("compile").default("cuda") == parse_knob("compile=cudagraph")
    with pytest.raises(UsageError, match="unknown execution mode 'fast'"):
        from_mode("fast")


@pytest.mark.parametrize("text,message", [
    ("bf16", "knob 'bf16' is not kind=value (e.g. cache=fbcache, precision=bf16; kinds: precision, attention, "
             "cache, compile)"),
    ("cach=fbcache", "unknown knob kind 'cach'; did you mean 'cache'? (valid: attention, cache, compile, precision)"),
    ("cache=fbcash", "unknown cache knob 'fbcash'; did you mean 'fbcache'? (valid: fastercache, fbcache, magcache, "
                     "none, pab, taylorseer)"),
    ("cache=fbcache(thresh=0.1)", "unknown cache=fbcache parameter 'thresh'; did you mean 'threshold'? "
                                  "(valid: threshold)"),
    ("cache=taylorseer(interval=x)", "cache=taylorseer: interval must be a whole number (got 'x')"),
    ("cache=taylorseer(interval=0)", "cache=taylorseer: interval must be between 1 and 100 (got 0)"),
    ("cache=fbcache(threshold=nan)", "cache=fbcache: threshold must be finite (got 'nan')"),
    ("cache=taylorseer(interval=4,interval=5)", "cache=taylorseer: parameter 'interval' is given twice"),
    ("cache=taylorseer(interval)", "cache=taylorseer: parameter 'interval' is not name=value"),
    ("cache=taylorseer(scope=all)", "unknown cache=taylorseer scope 'all' (valid: attention, blocks, lite)"),
    ("precision=bf16(x=1)", "precision=bf16 takes no parameters (got 'x')"),
    ("cache=fbcache,cache=pab", "two cache knobs (cache=fbcache(threshold=0.05) and cache=pab(skip=2,low=100,"
                                "high=800)): one per kind"),
    ("cache=fbcache((", "knob list 'cache=fbcache((' has a '(' without its ')'"),
    ("cache=fbcache)", "knob list 'cache=fbcache)' has a ')' without its '('"),
    ("precision=bf16,,compile=none", "knob list 'precision=bf16,,compile=none' has an empty item (two commas, or "
                                     "one at an end)"),
    ("none,precision=bf16", "'none' is the whole knob list, not one of its items"),
    ("cache=fbcache!", "knob 'cache=fbcache!' is not cache=name or cache=name(param=value,...)"),
])
def test_bad_knobs_are_one_line_usage_errors(text, message):
    with pytest.raises(UsageError) as err:
        parse_knobs(text)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_a_very_long_knob_list_is_refused_before_it_is_parsed():
    with pytest.raises(UsageError, match=r"is too long \(1001 characters; at most 400\)"):
        parse_knobs("x" * 1001)


# ---------------------------------------------------------------------------------------------- compatibility


def test_every_policy_has_a_trait_in_the_matrix():
    for kind in REGISTRY:
        knob = knob_kind(kind)
        assert knob.name == kind
        for name in knob.policies:
            assert knob.trait(parse_knob(f"{kind}={name}")) in TRAITS[kind], (kind, name)


def test_the_matrix_has_a_verdict_with_a_reason_for_every_pair_of_kinds():
    m = matrix()
    kinds = list(TRAITS)
    expected = sum(len(TRAITS[a]) * len(TRAITS[b]) for i, a in enumerate(kinds) for b in kinds[i + 1:])
    assert len(m) == expected
    assert all(v.reason for v in m.values())
    for (a, b), v in m.items():
        assert verdict(b, a) == v  # symmetric
    assert all(len(pair) == 2 and all(t in sum(TRAITS.values(), ()) for t in pair) for pair in RULES)


@pytest.mark.parametrize("a,b,ok,reason", [
    ("cache=fbcache", "compile=cudagraph", False, "one captured CUDA graph cannot replay"),
    ("cache=magcache", "compile=cudagraph", False, "branches on content"),
    ("cache=taylorseer", "compile=cudagraph", False, "one CUDA graph per step kind"),
    ("cache=pab", "compile=cudagraph", False, "one CUDA graph per step kind"),
    ("cache=taylorseer", "compile=full", True, "torch.compiler.disable"),
    ("cache=fbcache", "compile=full", True, "breaks the graph"),
    ("cache=fbcache", "compile=repeated-blocks", True, "combines"),
    ("cache=taylorseer", "compile=none", True, "independent"),
    ("cache=none", "compile=cudagraph", True, "independent"),
    ("precision=fp32", "attention=flash", False, "bf16 / fp16 inputs only"),
    ("precision=bf16", "attention=flash", True, "independent"),
    ("precision=fp32", "attention=math", True, "independent"),
    ("precision=int8", "compile=none", True, "slow eagerly"),
    ("precision=fp8", "compile=full", True, "combines"),
    ("cache=pab", "precision=bf16", True, "independent"),
])
def test_the_matrix_says_which_settings_combine_and_why(a, b, ok, reason):
    v = combine(parse_knob(a), parse_knob(b))
    assert v.ok is ok and reason in v.reason
    assert combine(parse_knob(b), parse_knob(a)) == v


def test_each_verdict_says_what_it_rests_on():
    from ldmpick.knobs.compatibility import PUBLISHED, REASONED, TESTED

    assert {v.basis for v in matrix().values()} == {TESTED, PUBLISHED, REASONED}
    assert combine(parse_knob("cache=pab"), parse_knob("precision=fp32")).basis == TESTED
    assert combine(parse_knob("cache=fbcache"), parse_knob("compile=full")).basis == PUBLISHED
    assert combine(parse_knob("cache=fbcache"), parse_knob("compile=repeated-blocks")).basis == REASONED


def test_settings_can_be_made_from_python_values():
    from ldmpick.knobs import setting

    assert setting("cache", "taylorseer", interval=4, order=2) == parse_knob("cache=taylorseer(interval=4,order=2)")
    assert setting("precision", "bf16").text == "precision=bf16"
    with pytest.raises(UsageError, match="threshold must be between 0.0 and 1.0"):
        setting("cache", "fbcache", threshold=2.0)


def test_two_settings_of_one_kind_do_not_combine():
    v = combine(parse_knob("cache=fbcache"), parse_knob("cache=pab"))
    assert not v.ok and "one cache setting at a time" in v.reason


def test_execution_modes_are_compile_settings_in_the_matrix():
    assert not with_mode(parse_knob("cache=fbcache"), "cudagraph").ok
    assert with_mode(parse_knob("cache=fbcache"), "eager").ok
    assert with_mode(parse_knob("cache=taylorseer"), "compile").ok
    assert with_mode(parse_knob("compile=full"), "compile").ok
    assert not with_mode(parse_knob("compile=full"), "eager").ok


def test_refusals_name_both_settings():
    knobs = parse_knobs("precision=fp32,attention=sage,cache=fbcache,compile=cudagraph")
    lines = refusals(knobs)
    assert len(lines) == 2
    assert lines[0].startswith("precision=fp32 with attention=sage: ")
    assert lines[1].startswith("cache=fbcache(threshold=0.05) with compile=cudagraph: ")


# ---------------------------------------------------------------------------------------------- devices and denoisers


def test_fp8_needs_compute_capability_8_9_and_torchao():
    from ldmpick.knobs.precision import torchao_installed

    fp8 = parse_knob("precision=fp8")
    knob = knob_kind("precision")
    assert knob.device_issue(fp8, CPU) == "fp8 needs a CUDA device of compute capability 8.9+ (got 'cpu')"
    assert knob.device_issue(fp8, A100) == "fp8 needs CUDA compute capability 8.9+ (this device: 8.0)"
    assert knob.device_issue(fp8, H100) == (None if torchao_installed() else "needs torchao (pip install torchao)")
    int8 = parse_knob("precision=int8")
    assert knob.device_issue(int8, CPU) == (None if torchao_installed() else "needs torchao (pip install torchao)")


def test_the_float_precisions_follow_todays_dtype_rule():
    knob = knob_kind("precision")
    assert knob.device_issue(parse_knob("precision=bf16"), CPU) is None
    assert "fp16 on the CPU is not supported" in knob.device_issue(parse_knob("precision=fp16"), CPU)
    assert knob.device_issue(parse_knob("precision=fp16"), A100) is None


def test_compiling_and_cuda_only_attention_need_a_gpu():
    compile_ = knob_kind("compile")
    assert compile_.device_issue(parse_knob("compile=none"), CPU) is None
    assert "needs a CUDA device" in compile_.device_issue(parse_knob("compile=cudagraph"), CPU)
    assert "needs a CUDA device" in compile_.device_issue(parse_knob("compile=full"), CPU)
    assert "needs a CUDA device" in compile_.device_issue(parse_knob("compile=repeated-blocks"), CPU)
    attention = knob_kind("attention")
    assert attention.device_issue(parse_knob("attention=math"), CPU) is None
    assert attention.device_issue(parse_knob("attention=cudnn"), CPU) == \
        "attention backend cudnn needs a CUDA device (got 'cpu')"
    assert attention.device_issue(parse_knob("attention=flash3"), A100) == \
        "attention backend flash3 needs CUDA compute capability 9.0+ (this device: 8.0)"


def test_which_denoisers_take_a_cache_is_read_from_the_class():
    pytest.importorskip("diffusers")
    from ldmpick.knobs.cache import cache_families

    families = cache_families()
    assert {f for f, ok in families.items() if ok} >= {"flux", "flux2", "chroma", "qwen-image", "cogview4"}
    assert not any(families[f] for f in ("sd", "sdxl", "sd3", "pixart", "sana"))
    cache = knob_kind("cache")
    assert cache.denoiser_issue(parse_knob("cache=fbcache"), "FluxTransformer2DModel") is None
    assert "has no diffusers cache (no CacheMixin" in cache.denoiser_issue(parse_knob("cache=fbcache"),
                                                                           "SD3Transformer2DModel")
    assert cache.denoiser_issue(parse_knob("cache=none"), "UNet2DConditionModel") is None
    assert "diffusers ships them for FluxTransformer2DModel only" in cache.denoiser_issue(
        parse_knob("cache=magcache"), "QwenImageTransformer2DModel")
    assert cache.denoiser_issue(parse_knob("cache=pab"), "NoSuchModel") == "'NoSuchModel' is not a diffusers model class"


def test_each_cache_policy_is_diffusers_own_config_class():
    hooks = pytest.importorskip("diffusers.hooks")
    from ldmpick.knobs.cache import CONFIG_CLASSES, POLICIES, diffusers_config

    assert set(CONFIG_CLASSES) == set(POLICIES) - {"none"}
    for name, class_name in CONFIG_CLASSES.items():
        config = diffusers_config(parse_knob(f"cache={name}"), steps=20, denoiser_class="FluxTransformer2DModel",
                                  current_timestep=lambda: 500)
        assert type(config) is getattr(hooks, class_name)
    ts = diffusers_config(parse_knob("cache=taylorseer(interval=4,order=2,warmup=2)"))
    assert (ts.cache_interval, ts.max_order, ts.disable_cache_before_step) == (4, 2, 2)
    assert diffusers_config(parse_knob("cache=none")) is None


def test_repeated_blocks_and_attention_dispatch_are_read_from_the_class():
    pytest.importorskip("diffusers")
    compile_, attention = knob_kind("compile"), knob_kind("attention")
    repeated = parse_knob("compile=repeated-blocks")
    assert compile_.denoiser_issue(repeated, "FluxTransformer2DModel") is None
    assert "declares no repeated blocks" in compile_.denoiser_issue(repeated, "SD3Transformer2DModel")
    math_ = parse_knob("attention=math")
    assert attention.denoiser_issue(math_, "FluxTransformer2DModel") is None
    assert attention.denoiser_issue(math_, "ChromaTransformer2DModel") is None
    assert "does not go through diffusers' attention dispatcher" in attention.denoiser_issue(
        math_, "UNet2DConditionModel")


def test_check_settings_raises_the_first_issue_in_one_line():
    from ldmpick.knobs.application import check_settings, setting_issues

    knobs = parse_knobs("precision=fp16,cache=fbcache,compile=cudagraph")
    issues = setting_issues(knobs, CPU)
    assert len(issues) == 3
    with pytest.raises(UsageError) as err:
        check_settings(knobs, CPU)
    assert str(err.value).startswith("precision=fp16: fp16 on the CPU is not supported")
    assert str(err.value).endswith("(and 2 more)")
    check_settings(parse_knobs("precision=bf16,cache=taylorseer"), CPU)


# ---------------------------------------------------------------------------------------------- schedules


def test_a_fixed_schedule_says_which_steps_are_full_and_its_cost_is_exact():
    cache = knob_kind("cache")
    s = cache.schedule(parse_knob("cache=taylorseer(interval=4,order=2,warmup=2)"), 12)
    assert s.kind == FIXED and s.is_exact
    assert s.pattern() == "FFcFcccFcccF"
    assert s.full == (0, 1, 3, 7, 11) and s.cached == (2, 4, 5, 6, 8, 9, 10)
    assert s.cost(full_step=1.0, cached_step=0.25, fixed=0.5) == pytest.approx(0.5 + 5 * 1.0 + 7 * 0.25)
    foca = cache.schedule(parse_knob("cache=taylorseer(interval=4,order=2,warmup=2)"), 50)
    assert len(foca.full) == 14  # 50 / 14 = 3.57x: FoCa's FLOP ratio for TaylorSeer N=4, O=2


def test_timestep_window_schedules_need_the_samplers_timesteps():
    cache = knob_kind("cache")
    ts = [1000.0, 900.0, 800.0, 700.0, 600.0, 500.0, 400.0, 300.0, 200.0, 100.0, 50.0]
    pab = cache.schedule(parse_knob("cache=pab(skip=3,low=100,high=900)"), len(ts), ts)
    assert pab.pattern() == "FFcFccFccFF"
    faster = cache.schedule(parse_knob("cache=fastercache(skip=2,low=-1,high=681)"), len(ts), ts)
    assert faster.pattern() == "FFFFFcFcFcF"
    with pytest.raises(ValueError, match="needs the sampler's 11 timesteps"):
        cache.schedule(parse_knob("cache=pab"), 11)


def test_an_adaptive_schedule_needs_a_skip_rate_from_data_and_never_guesses():
    cache = knob_kind("cache")
    s = cache.schedule(parse_knob("cache=magcache(retention=0.2)"), 28)
    assert s.kind == ADAPTIVE and not s.is_exact
    assert s.full == tuple(range(6))  # int(0.2 x 28 + 0.5), diffusers' retention rule
    assert s.pattern() == "F" * 6 + "?" * 22
    assert s.cost(1.0, 0.1) is None and s.expected_full_steps() is None
    rated = s.with_skip_rate(0.5, "user runs: 3 generate runs")
    assert rated.cost(1.0, 0.0) == pytest.approx(6 + 11)
    assert rated.skip_rate_source == "user runs: 3 generate runs"
    with pytest.raises(ValueError):
        s.with_skip_rate(1.5, "x")
    with pytest.raises(ValueError):
        _ = s.cached
    fb = cache.schedule(parse_knob("cache=fbcache"), 4)
    assert fb.full == (0,) and fb.pattern() == "F???"


def test_knobs_that_change_every_step_alike_keep_the_per_step_form():
    for text in ("precision=bf16", "compile=full", "attention=math", "cache=none"):
        s = knob_kind(text.split("=")[0]).schedule(parse_knob(text), 5)
        assert isinstance(s, LatencySchedule) and s.pattern() == "FFFFF"
        assert s.cost(2.0, 0.0, 1.0) == 11.0


def test_every_setting_says_how_latency_is_predicted_and_where_quality_comes_from():
    for kind in REGISTRY:
        knob = knob_kind(kind)
        for name in knob.policies:
            s = parse_knob(f"{kind}={name}")
            assert knob.latency_basis(s) and knob.quality_basis(s)
    assert "exact" in knob_kind("cache").latency_basis(parse_knob("cache=pab"))
    assert "skip rate from data" in knob_kind("cache").latency_basis(parse_knob("cache=fbcache"))


# ---------------------------------------------------------------------------------------------- effects


def test_the_shipped_effects_table_loads_with_complete_provenance():
    from ldmpick.knobs.effects import PROVENANCE_KEYS, SCHEMA, load_effects

    table = load_effects()
    assert table.provenance["schema"] == SCHEMA
    assert all(table.provenance.get(k) for k in PROVENANCE_KEYS)
    assert "quality_steps_accel.csv" in table.provenance["source"]
    assert "scripts/build_knob_effects.py" in table.provenance["command"]
    assert len(table.rows) > 50
    for r in table.rows:
        assert r.source and r.table and r.protocol and r.scale and r.metric and r.dataset
        assert r.delta == pytest.approx(r.value - r.baseline, abs=1e-6)
    mapped = [r for r in table.rows if r.knob]
    assert mapped and all(r.mapping == "approximate" and r.diffusers_config and r.mapping_note for r in mapped)
    assert all(parse_knob(r.knob).text == r.knob for r in mapped)
    assert {r.method for r in mapped} == {"TaylorSeer (N=4,O=2)", "TaylorSeer (N=5,O=2)", "TaylorSeer (N=7,O=2)"}
    unmapped = {r.method.split(" ")[0] for r in table.rows if not r.knob}
    assert {"FoCa", "TeaCache", "quantization:"} <= unmapped  # published, and mapped to no diffusers config


def test_effects_of_the_foca_table_are_on_the_quality_tables_own_scales():
    from ldmpick.knobs.effects import load_effects
    from ldmpick.quality.scales import SCALES

    foca = {r.scale for r in load_effects().rows if r.source.startswith("arXiv:2508.16211 (FoCa)")}
    assert foca == {"drawbench-imagereward", "drawbench-clip"} and foca <= set(SCALES)


def test_foca_taylorseer_is_mapped_explicitly_not_to_diffusers_defaults():
    from ldmpick.knobs.effects import load_effects

    row = next(r for r in load_effects().rows
               if r.method == "TaylorSeer (N=4,O=2)" and r.scale == "drawbench-imagereward")
    assert row.knob == "cache=taylorseer(interval=4,order=2,warmup=2,scope=blocks)"
    assert (row.baseline, row.value, row.steps, row.model) == (0.9898, 0.9857, 50, "flux-dev")
    assert "not diffusers' defaults" in row.mapping_note and "14 of 50 steps" in row.mapping_note
    assert "cache_interval=4, max_order=2" in row.diffusers_config


def test_the_lookup_says_published_transferred_or_unmeasured():
    from ldmpick.knobs.effects import (
        PUBLISHED,
        TRANSFERRED,
        UNMEASURED,
        effect,
        load_effects,
        scales_of,
    )

    table = load_effects()
    knob = parse_knob("cache=taylorseer(interval=4,order=2,warmup=2,scope=blocks)")
    assert scales_of(knob, table) == ["drawbench-clip", "drawbench-imagereward"]
    scale = "drawbench-imagereward"
    here = effect(knob, "flux-dev", scale, 50, table)
    steps = effect(knob, "flux-dev", scale, 28, table)
    model = effect(knob, "qwen-image", scale, 28, table)
    assert here.basis == PUBLISHED and here.delta == pytest.approx(-0.0041)
    assert here.low < here.delta < here.high
    assert steps.basis == TRANSFERRED and "from 50 steps (measured) to 28" in steps.note
    assert model.basis == TRANSFERRED and "from FLUX.1-dev at 50 steps to qwen-image at 28" in model.note
    widths = [e.high - e.low for e in (here, steps, model)]
    assert widths[0] < widths[1] < widths[2]
    none = effect(parse_knob("cache=fbcache"), "flux-dev", scale, 50, table)
    assert none.basis == UNMEASURED and none.delta is None and none.low is None
    assert none.command.startswith("no ldmpick command measures it yet") and "cache=fbcache(threshold=0.05)" in none.command
    default_ts = effect(parse_knob("cache=taylorseer(interval=4,order=2)"), "flux-dev", scale, 50, table)
    assert default_ts.basis == UNMEASURED  # diffusers' default scope and warm-up are not what was published
    assert "published on it: cache=taylorseer(interval=4,order=2,warmup=2,scope=blocks);" in default_ts.note


def _shipped_text() -> str:
    return (ROOT / "ldmpick" / "data" / "knob_effects.csv").read_text()


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("ldmpick.knob-effects/1", "ldmpick.knob-effects/2"),
     "schema 'ldmpick.knob-effects/2' is not ldmpick.knob-effects/1"),
    (lambda t: "\n".join(ln for ln in t.splitlines() if not ln.startswith("# device:")),
     "provenance lacks device"),
    (lambda t: t.replace(",approximate,", ",none,", 1), "a knob is named exactly when the mapping is not 'none'"),
    (lambda t: t.replace(",approximate,", ",guessed,", 1), "mapping 'guessed' is not one of exact, approximate, none"),
    (lambda t: t.replace(",20.3,20.4,", ",20.3,inf,", 1), "'inf' is not a finite number"),
])
def test_a_broken_effects_table_is_refused_in_one_line(tmp_path, edit, message):
    from ldmpick.knobs.effects import load_effects

    path = tmp_path / "effects.csv"
    edited = edit(_shipped_text())
    assert edited != _shipped_text()
    path.write_text(edited)
    with pytest.raises(UsageError) as err:
        load_effects(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_shipped_table_is_what_the_script_builds_from_the_reference(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import build_knob_effects

    if not build_knob_effects.DEFAULT_REFERENCE.is_file():
        pytest.skip("the reference table (shared/reference/real_models) is not on this machine")
    out = tmp_path / "knob_effects.csv"
    build_knob_effects.main(["--out", str(out)])

    def body(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if not ln.startswith(("# date:", "# command:", "# versions:"))]

    assert body(out.read_text()) == body(_shipped_text())


def test_recommend_side_use_imports_no_torch_or_diffusers():
    code = """
import json, sys
from ldmpick.knobs import parse_knobs, knob_kind
from ldmpick.knobs.compatibility import refusals, matrix
from ldmpick.knobs.effects import effect, load_effects
from ldmpick.knobs.application import setting_issues
from ldmpick.knobs import DeviceFacts
knobs = parse_knobs("precision=bf16,attention=sdpa,cache=taylorseer(interval=4,order=2),compile=none")
for k in knobs:
    knob_kind(k.kind).schedule(k, 28) if k.kind != "cache" else knob_kind(k.kind).schedule(k, 28).pattern()
    knob_kind(k.kind).device_issue(k, DeviceFacts("cpu"))
refusals(knobs); matrix(); setting_issues(knobs, DeviceFacts("cpu"))
effect(knobs[2], "flux-dev", "drawbench-imagereward", 50, load_effects())
print(json.dumps([m for m in ("torch", "diffusers", "torchao", "scipy", "numpy") if m in sys.modules]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout) == []


def test_replace_keeps_a_setting_frozen():
    s = parse_knob("precision=bf16")
    with pytest.raises(FrozenInstanceError):
        s.name = "fp16"  # type: ignore[misc]
    assert replace(s, name="fp16").text == "precision=fp16"
