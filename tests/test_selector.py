"""The selector: budgets, brute-force equivalence, monotonicity, profile choice, the eager-vs-FLOPs lesson."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ldmpick.files.errors import UsageError
from ldmpick.costs import CostRow, cost_model
from ldmpick.costs.flops import cost_rows as cost_rows_flops
from ldmpick.costs.latency import MODEL as LATENCY
from ldmpick.costs.latency import LatencyBreakdown, PartSpread
from ldmpick.costs.latency import cost_rows as cost_rows_measured
from ldmpick.planning.plan import check_settings
from ldmpick.profiles.choice import choose_profile
from ldmpick.profiles.schema import LatencyStats, ModelLatency, Profile, SamplerOverhead, Settings
from ldmpick.quality.law import QualityLaw, StepCurve, load_law, shipped_law_path
from ldmpick.planning.selector import select_config

LAW = load_law(shipped_law_path())[0]
PARAMS = {m: n for m, n, _ in LAW.size_points}
FLOPS = cost_model("flops")


def parse_budget(text, unitless=False):
    return (FLOPS if unitless else LATENCY).parse_budget(text)




@pytest.mark.parametrize("text, seconds", [("2s", 2.0), ("1500ms", 1.5), ("0.5 s", 0.5), (" 3 S ", 3.0),
                                           ("1e3ms", 1.0), (".25s", 0.25), ("1 min", 60.0), ("2 seconds", 2.0)])
def test_budgets_people_write(text, seconds):
    assert parse_budget(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, message", [
    ("", "empty budget"), ("   ", "empty budget"), ("abc", "not a number"), ("-1s", "must be positive"),
    ("0s", "must be positive"), ("0ms", "must be positive"), ("2", "budget '2' has no unit; write '2s' for seconds"),
    ("1e400s", "too large"), ("2 parsecs", "unknown unit"),
    ("2m", "is 'm' minutes or milliseconds\\? write '2min' or '2ms'"), ("0.5 m", "write '0.5min' or '0.5ms'"),
    ("nan", "not a number"), ("inf", "not a number"), ("2s 3s", "not a number"), ("100000s", "more than a day"),
])
def test_budgets_refused_with_one_line(text, message):
    with pytest.raises(UsageError, match=message):
        parse_budget(text)


def test_flops_budget_is_unitless():
    assert parse_budget("3", unitless=True) == 3.0
    with pytest.raises(UsageError, match="sampling-cost units"):
        parse_budget("3s", unitless=True)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_fuzz_budget_parser_never_crashes(text):
    try:
        value = parse_budget(text)
    except UsageError:
        return
    assert math.isfinite(value) and value > 0


# ---------------------------------------------------------------------------------------------- profiles


def _stats(ms: float) -> LatencyStats:
    return LatencyStats.from_samples([ms * f for f in (0.9, 0.97, 1.0, 1.02, 1.3)])


def make_profile(step_ms: dict[str, float], te_ms=6.0, vae_ms=24.0, overhead_ms=0.5, device="NVIDIA H100 80GB HBM3",
                 mode="eager", resolution=512, created="2026-11-23T00:00:00Z") -> Profile:
    return Profile(
        settings=Settings(device="cuda", dtype="fp16", resolution=resolution, batch=1, cfg=True, mode=mode, warmup=3,
                          repeats=20, max_seconds_per_model=20, threads=8),
        device={"kind": "cuda", "name": device, "memory_bytes": 80 * 2**30},
        models=[ModelLatency(m, "ok", PARAMS[m], _stats(ms)) for m, ms in step_ms.items()],
        samplers=[SamplerOverhead(s, 2 if s == "heun" else 1, _stats(overhead_ms))
                  for s in ("ddim", "dpmpp-2m", "euler", "heun", "unipc", "ddpm", "euler-a", "lcm")],
        created=created,
    ).share_fixed_parts(_stats(te_ms), _stats(vae_ms))


# H100, fp16, 512 px, cfg (shared/reference/h100_observations.md): eager ~32-48 ms for every size; graph replay grows.
H100_EAGER = {"ldm-39m": 41.0, "ldm-83m": 40.0, "ldm-145m": 39.0, "ldm-318m": 36.0, "ldm-866m": 32.0,
              "ldm-2b": 45.0, "ldm-5b": 48.0}
H100_GRAPH = {"ldm-39m": 4.8, "ldm-866m": 12.3, "ldm-2b": 21.4, "ldm-5b": 41.8}


def test_h100_eager_profile_changes_the_paper_answer():
    flops = select_config(cost_rows_flops(LAW, None, ["ddim"]), LAW, 3.0).best
    assert flops.model == "ldm-83m"
    # the same number of UNet evaluations of the 83M model (23 steps) in eager mode on an H100
    budget = (6 + 24 + 23 * (40.0 + 0.5)) / 1e3
    eager = make_profile(H100_EAGER)
    sel = select_config(cost_rows_measured(eager, None, ["ddim"], 50, []), LAW, budget)
    assert sel.best.model != "ldm-83m"
    assert sel.best.unet_params > flops.unet_params  # every size costs the same per step: the big one wins
    assert "about the same per step" in sel.explanation


def test_explanation_names_what_the_largest_model_would_get():
    sel = select_config(cost_rows_measured(make_profile(H100_GRAPH, mode="cudagraph"), None, ["ddim"], 50, []),
                        LAW, 0.15)
    assert "4.9B model would afford only" in sel.explanation or sel.best.model == "ldm-5b"
    assert sel.best.latency <= 0.15


def test_budget_below_the_fastest_configuration_states_it():
    rows = cost_rows_measured(make_profile(H100_GRAPH, mode="cudagraph"), None, ["ddim"], 50, [])
    fastest = min(r.fixed + r.per_step for r in rows)
    with pytest.raises(UsageError, match=f"fastest possible configuration: {fastest * 1e3:.0f} ms"):
        select_config(rows, LAW, fastest * 0.9)


def test_p90_plans_on_slower_latencies():
    p = make_profile(H100_GRAPH, mode="cudagraph")
    med = select_config(cost_rows_measured(p, None, ["ddim"], 50, []), LAW, 0.5)
    p90_rows = cost_rows_measured(p, None, ["ddim"], 90, [])
    p90 = select_config(p90_rows, LAW, 0.5)
    assert p90.best.latency <= 0.5
    assert p90.best.steps <= med.best.steps or p90.best.model != med.best.model


def test_models_that_do_not_fit_and_distilled_samplers_are_excluded():
    p = make_profile(H100_GRAPH, mode="cudagraph")
    p.models.append(ModelLatency("ldm-2b-x", "does_not_fit", 2_000_000_000, None))
    PARAMS_X = dict(PARAMS)
    excluded: list[str] = []
    rows = cost_rows_measured(p, None, ["ddim", "lcm"], 50, excluded)
    sel = select_config(rows, LAW, 1.0, excluded=excluded)
    assert "ldm-2b-x: does not fit" in sel.excluded
    assert any("lcm" in e for e in sel.excluded)
    assert sel.best.sampler == "ddim"
    assert PARAMS_X


def test_settings_must_match_the_profile():
    p = make_profile(H100_GRAPH, resolution=512)
    check_settings(p, 512, 1, True)
    with pytest.raises(UsageError, match="measured at 512px.*'ldmpick profile --resolution 1024'"):
        check_settings(p, 1024, None, None)
    with pytest.raises(UsageError, match="--no-cfg"):
        check_settings(p, None, None, False)


# ---------------------------------------------------------------------------------------------- properties


def brute_force(rows: list[CostRow], law: QualityLaw, budget: float, max_steps: int):
    best = None
    for r in rows:
        if law.is_distilled_sampler(r.sampler):
            continue
        for s in range(1, max_steps + 1):
            lat = r.fixed + s * r.per_step
            if lat > budget * (1 + 1e-12):  # the selector's rule: within float rounding of the budget
                continue
            q = law.predict_fid(r.unet_params, r.sampler, s, model=r.model).value
            if best is None or q < best[0] - 1e-9 or (abs(q - best[0]) <= 1e-9 and lat < best[1]):
                best = (q, lat, r.model, r.sampler, s)
    return best


def _flat(ms: float) -> PartSpread:
    return PartSpread((ms,), ms, True)


row_strategy = st.builds(
    lambda m, s, fixed, per: CostRow(m, PARAMS[m], s, fixed, per,
                                     LatencyBreakdown(_flat(fixed / 2 * 1e3), _flat(per * 1e3), _flat(0.0),
                                                      _flat(fixed / 2 * 1e3), 1, 50.0), LATENCY),
    st.sampled_from(sorted(PARAMS)), st.sampled_from(["ddim", "dpmpp-2m", "euler", "heun", "unipc", "ddpm"]),
    st.floats(0.0, 0.5), st.floats(0.001, 0.3),
)
law_strategy = st.builds(
    lambda c1, p1, c2, p2: _law_with(c1, p1, c2, p2),
    st.floats(1, 500), st.floats(0.2, 4), st.floats(1, 500), st.floats(0.2, 4),
)


def _law_with(c_ddim, p_ddim, c_dpm, p_dpm) -> QualityLaw:
    law = QualityLaw.from_json(LAW.to_json())
    law.curves["ddim"] = StepCurve(c_ddim, p_ddim)
    law.curves["dpmpp-2m"] = StepCurve(c_dpm, p_dpm)
    return law


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row_strategy, min_size=1, max_size=6, unique_by=lambda r: (r.model, r.sampler)), law_strategy,
       st.floats(0.01, 20), st.integers(1, 60))
def test_selector_equals_brute_force_and_fits_the_budget(rows, law, budget, max_steps):
    expected = brute_force(rows, law, budget, max_steps)
    try:
        sel = select_config(rows, law, budget, max_steps=max_steps)
    except UsageError:
        assert expected is None
        return
    assert expected is not None
    assert sel.best.latency <= budget + 1e-12
    assert sel.best.quality == pytest.approx(expected[0], abs=1e-9)
    assert sel.best.latency == pytest.approx(expected[1], abs=1e-12)
    for c in sel.top + sel.frontier:
        assert c.latency <= budget + 1e-12


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row_strategy, min_size=1, max_size=6, unique_by=lambda r: (r.model, r.sampler)), law_strategy,
       st.floats(0.01, 10), st.floats(1.0, 5.0))
def test_a_larger_budget_never_gives_a_worse_prediction(rows, law, budget, factor):
    try:
        small = select_config(rows, law, budget)
    except UsageError:
        return
    large = select_config(rows, law, budget * factor)
    assert large.best.quality <= small.best.quality + 1e-9


# ---------------------------------------------------------------------------------------------- profile choice


def test_profile_choice_order(tmp_path, monkeypatch):
    from ldmpick.profiles.store import save_profile, stored_profile_path
    from ldmpick.files.storage import profiles_dir

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setattr("ldmpick.profiles.store.shipped_profiles_dir", lambda: shipped)
    h100 = "cuda:NVIDIA H100 80GB HBM3"
    with pytest.raises(UsageError, match="no profile found"):
        choose_profile(None, device_key_now=h100)
    other = make_profile(H100_GRAPH, device="NVIDIA A10G", created="2026-01-01T00:00:00Z")
    save_profile(other, shipped / "a10g.json")
    c = choose_profile(None, device_key_now=h100)
    assert c.how == "shipped-default" and "NOT this machine's" in c.notice
    mine_shipped = make_profile(H100_GRAPH, created="2026-02-01T00:00:00Z")
    save_profile(mine_shipped, shipped / "h100.json")
    assert choose_profile(None, device_key_now=h100).how == "shipped-match"
    profiles_dir().mkdir(parents=True)
    old = make_profile(H100_EAGER, created="2026-03-01T00:00:00Z")
    new = make_profile(H100_GRAPH, mode="cudagraph", created="2026-04-01T00:00:00Z")
    for p in (old, new):
        save_profile(p, stored_profile_path(p))
    c = choose_profile(None, device_key_now=h100)
    assert c.how == "local" and c.profile.id == new.id
    # a requested setting picks the profile measured with it
    hi = make_profile(H100_GRAPH, resolution=1024, created="2026-01-15T00:00:00Z")
    save_profile(hi, stored_profile_path(hi))
    assert choose_profile(None, device_key_now=h100, resolution=1024).profile.id == hi.id
    monkeypatch.setenv("LDMPICK_PROFILE", str(shipped / "a10g.json"))
    c = choose_profile(None, device_key_now=h100)
    assert c.how == "LDMPICK_PROFILE" and "measured on another device (NVIDIA A10G)" in c.notice
    assert choose_profile(old.id, device_key_now=h100).how == "--profile"


def test_default_json_is_the_shipped_default(tmp_path, monkeypatch):
    from ldmpick.profiles.store import save_profile

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setattr("ldmpick.profiles.store.shipped_profiles_dir", lambda: shipped)
    save_profile(make_profile(H100_GRAPH, device="NVIDIA A10G", created="2026-01-01T00:00:00Z"), shipped / "default.json")
    save_profile(make_profile(H100_GRAPH, device="NVIDIA L4", created="2026-05-01T00:00:00Z"), shipped / "l4.json")
    c = choose_profile(None, device_key_now="cpu:Some CPU:4")
    assert c.how == "shipped-default" and c.path.name == "default.json" and "ldmpick profile" in c.notice
    # without a default.json, the newest shipped profile
    (shipped / "default.json").unlink()
    assert choose_profile(None, device_key_now="cpu:Some CPU:4").path.name == "l4.json"


# ---------------------------------------------------------------------------------------------- costs and models


def test_heun_pays_two_unet_evaluations_per_step():
    p = make_profile({"ldm-866m": 12.3}, mode="cudagraph")
    rows = {r.sampler: r for r in cost_rows_measured(p, None, ["heun", "euler"], 50, [])}
    over = p.sampler("heun").step_overhead.median_ms / 1e3
    assert rows["heun"].per_step == pytest.approx(2 * p.model("ldm-866m").unet_step.median_ms / 1e3 + over)
    assert rows["heun"].per_step > 1.9 * (rows["euler"].per_step - over)
    flops = {r.sampler: r for r in cost_rows_flops(LAW, ["ldm-83m"], ["heun", "ddim"])}
    assert flops["heun"].per_step == pytest.approx(2 * flops["ddim"].per_step)
    # so within one budget heun runs half the steps euler runs
    sel_h = select_config([rows["heun"]], LAW, 0.5)
    sel_e = select_config([rows["euler"]], LAW, 0.5)
    assert sel_h.best.steps <= sel_e.best.steps // 2 + 1


def test_device_memory_excludes_models_that_do_not_fit():
    p = make_profile(H100_GRAPH, mode="cudagraph")
    p.device["memory_bytes"] = 16 * 2**30
    p.model("ldm-5b").peak_memory_bytes = 24 * 2**30
    excluded: list[str] = []
    rows = cost_rows_measured(p, None, ["ddim"], 50, excluded)
    assert "ldm-5b" not in {r.model for r in rows}
    assert "ldm-5b: needs more memory than the device has" in excluded


def test_a_model_without_quality_data_is_listed_not_ranked_by_its_param_count():
    p = make_profile({"ldm-39m": 4.8}, mode="cudagraph")
    p.models.append(ModelLatency("my-sd15", "ok", 859_520_964, _stats(4.0)))  # faster than the 39M
    p.share_fixed_parts(_stats(6.0), _stats(24.0))
    sel = select_config(cost_rows_measured(p, None, ["dpmpp-2m"], 50, []), LAW, 0.3)
    assert sel.best.model == "ldm-39m"
    assert "my-sd15" not in {c.model for c in sel.top}
    note = next(e for e in sel.excluded if e.startswith("my-sd15"))
    assert "no quality data on this scale (FID)" in note and "ldmpick calibrate --models my-sd15" in note
    # alone, it cannot be ranked at all: a one-line error that says so
    only = make_profile({}, mode="cudagraph")
    only.models.append(ModelLatency("my-sd15", "ok", 859_520_964, _stats(4.0)))
    only.share_fixed_parts(_stats(6.0), _stats(24.0))
    with pytest.raises(UsageError, match="no quality data"):
        select_config(cost_rows_measured(only, None, ["dpmpp-2m"], 50, []), LAW, 0.3)


def test_a_distilled_model_is_offered_its_few_step_sampler():
    p = make_profile({"ldm-39m": 4.8}, mode="cudagraph")
    rows = cost_rows_measured(p, None, ["lcm", "ddim"], 50, [])
    assert {r.sampler for r in rows if not r.distilled} == {"lcm", "ddim"}  # a v1-style model: every sampler costed
    p.models[0].distilled = True
    assert all(r.distilled for r in cost_rows_measured(p, None, ["lcm"], 50, []))
    p.models[0].samplers = ["ddim"]  # a v2 model says which samplers fit it
    assert {r.sampler for r in cost_rows_measured(p, None, ["lcm", "ddim"], 50, [])} == {"ddim"}


# ---------------------------------------------------------------------------------------------- random profiles


def _random_profile(draw_steps: dict[str, float], te: float, vae: float, overheads: dict[str, float], spread: float):
    def stats(ms: float) -> LatencyStats:
        return LatencyStats.from_samples([ms * (1 - spread / 2), ms, ms, ms * (1 + spread), ms * (1 + 2 * spread)])

    return Profile(
        settings=Settings(device="cuda", dtype="fp16", resolution=512, batch=1, cfg=True, mode="eager", warmup=1,
                          repeats=5, max_seconds_per_model=5),
        device={"kind": "cuda", "name": "random"},
        models=[ModelLatency(m, "ok", PARAMS[m], stats(ms)) for m, ms in draw_steps.items()],
        samplers=[SamplerOverhead(s, 2 if s == "heun" else 1, stats(ms)) for s, ms in overheads.items()],
        created="2026-11-23T00:00:00Z",
    ).share_fixed_parts(stats(te), stats(vae))


profile_strategy = st.builds(
    _random_profile,
    st.dictionaries(st.sampled_from(sorted(PARAMS)), st.floats(0.5, 300.0), min_size=1, max_size=5),
    st.floats(0.0, 50.0), st.floats(0.0, 200.0),
    st.dictionaries(st.sampled_from(["ddim", "dpmpp-2m", "euler", "heun", "unipc", "ddpm", "euler-a"]),
                    st.floats(0.0, 10.0), min_size=1, max_size=4),
    st.floats(0.0, 0.5),
)


def _random_size_law(fids: list[float], c_ddim: float, p_ddim: float) -> QualityLaw:
    """A law with a random (decreasing) size term and a random DDIM curve."""
    doc = LAW.to_json()
    levels = sorted(fids, reverse=True)
    for point, fid in zip(doc["size"]["points"], levels):
        point["fid"] = fid
    law = QualityLaw.from_json(doc)
    law.curves["ddim"] = StepCurve(c_ddim, p_ddim)
    return law


size_law_strategy = st.builds(_random_size_law, st.lists(st.floats(5, 60), min_size=11, max_size=11),
                              st.floats(1, 500), st.floats(0.2, 4))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile_strategy, size_law_strategy, st.floats(0.05, 10.0), st.sampled_from([50.0, 90.0, 25.0]),
       st.integers(1, 80), st.sampled_from(["fid", "clip"]))
def test_random_profiles_selector_is_brute_force_and_within_budget(profile, law, budget, pct, max_steps, metric):
    samplers = [s.name for s in profile.samplers]
    rows = cost_rows_measured(profile, None, samplers, pct, [])
    sign = 1.0 if metric == "fid" else -1.0
    expected = None
    for r in rows:
        for s in range(1, max_steps + 1):
            lat = r.fixed + s * r.per_step
            if lat > budget * (1 + 1e-12):
                continue
            pred = law.predict_fid if metric == "fid" else law.predict_clip
            q = sign * pred(r.unet_params, r.sampler, s, model=r.model).value
            if expected is None or q < expected[0] - 1e-9 or (abs(q - expected[0]) <= 1e-9 and lat < expected[1]):
                expected = (q, lat)
    try:
        sel = select_config(rows, law, budget, metric=metric, max_steps=max_steps)
    except UsageError as exc:
        assert expected is None and "below the fastest possible configuration" in str(exc)
        return
    assert expected is not None
    assert sign * sel.best.quality == pytest.approx(expected[0], abs=1e-9)
    if abs(sign * sel.best.quality - expected[0]) < 1e-12:  # an exact tie: the lower latency wins
        assert sel.best.latency == pytest.approx(expected[1], abs=1e-12)
    # (qualities closer than 1e-9 but not equal are a tie by tolerance, which is not transitive: either pick is right)
    for c in [sel.best] + sel.top + sel.frontier:
        assert c.latency <= budget * (1 + 1e-12)
        if c.parts and "denoise" in c.parts:
            assert c.parts["text_encoder"] + c.parts["denoise"] + c.parts["vae_decode"] == pytest.approx(c.latency)
    bigger = select_config(rows, law, budget * 1.7, metric=metric, max_steps=max_steps)
    assert sign * bigger.best.quality <= sign * sel.best.quality + 1e-9
    # the frontier really is one: latency rises and quality improves along it
    f = sel.frontier
    assert all(a.latency <= b.latency and sign * a.quality > sign * b.quality for a, b in zip(f, f[1:]))


def test_a_runner_up_within_the_uncertainty_is_named():
    p = make_profile(H100_GRAPH, mode="cudagraph")
    sel = select_config(cost_rows_measured(p, None, ["ddim", "dpmpp-2m", "unipc"], 50, []), LAW, 0.6)
    others = [c for c in sel.top[1:] if c.model != sel.best.model]
    near = [c for c in others if abs(c.quality - sel.best.quality) < max(c.sigma, sel.best.sigma)]
    assert near  # at 600 ms the 2.2B (26 steps) and 866M (44 steps) models are 0.24 FID apart, sigma ~0.4
    assert ("within the prediction's uncertainty" in sel.explanation) == bool(near)
    if near:
        assert f"{near[0].model} with {near[0].sampler} at {near[0].steps} steps" in sel.explanation


def test_a_budget_below_ten_milliseconds_is_not_printed_as_zero():
    """'--budget 0.2ms' was reported as 'budget 0 ms is below the fastest ...'."""
    from ldmpick.costs.latency import fmt_seconds

    assert fmt_seconds(0.0002) == "0.2 ms" and fmt_seconds(0.0099) == "9.9 ms"
    assert fmt_seconds(0.0605) == "60 ms" and fmt_seconds(1.5) == "1.50 s"  # as before from 10 ms up
