"""The planning layer and the cost-model registry: budgets in their units, the run's latency distribution, the
over-budget chance and headroom, imported evaluation counts, one plan for recommend and generate, the guidance a
run uses, the sidecar's predictions, --n against the profile's batch, --out naming a file, latency drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.costs import REGISTRY, cost_model
from ldmpick.costs.latency import MODEL as LATENCY
from ldmpick.costs.latency import PartSpread, chance_over, cost_rows
from ldmpick.files.errors import ProfileError, UsageError
from ldmpick.profiles.schema import LatencyStats, ModelLatency, parse_profile_text
from ldmpick.quality.law import load_law, shipped_law_path
from ldmpick.planning.selector import pareto_frontier, select_config

from test_selector import H100_EAGER, H100_GRAPH, PARAMS, make_profile

runner = CliRunner()
LAW = load_law(shipped_law_path())[0]
REPO = Path(__file__).resolve().parents[1]
DEMO_PROFILE = REPO / "profiles" / "cpu-amd-epyc-2core-demo-32px-fp32-eager.json"


def one_line_error(r, message: str, code: int = 2) -> None:
    assert r.exit_code == code, r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------- cost models


def test_every_registered_cost_model_has_the_whole_interface():
    for name in REGISTRY:
        cm = cost_model(name)
        assert cm.name == name
        for attr in ("summary", "unit", "axis", "needs_profile", "has_distribution", "parse_budget", "format", "rows", "parts",
                     "describe", "over_budget_chance", "plan_basis", "observations"):
            assert hasattr(cm, attr), (name, attr)
    with pytest.raises(UsageError, match="unknown cost model 'joules'"):
        cost_model("joules")


def test_the_selector_planner_and_renderer_name_no_cost_model():
    for path in ("ldmpick/planning/selector.py", "ldmpick/planning/plan.py", "ldmpick/cli/recommend.py", "ldmpick/planning/recommendation.py"):
        text = (REPO / path).read_text(encoding="utf-8")
        for name in REGISTRY:
            assert f'"{name}"' not in text, (path, name)
        assert "unitless" not in text and "unit ==" not in text and "cost_model ==" not in text, path


def test_a_bare_number_is_not_read_as_seconds_without_a_word():
    with pytest.raises(UsageError, match="budget '2' has no unit; write '2s' for seconds or '2ms' for milliseconds"):
        LATENCY.parse_budget("2")
    r = runner.invoke(app, ["recommend", "--budget", "2"])
    one_line_error(r, "has no unit")
    assert cost_model("flops").parse_budget("2") == 2.0  # the paper's cost units have no unit


@pytest.mark.parametrize("text", ["1" * 20_000, "1" * 20_000 + "x", "9" * 100_000 + "s", " " * 50_000 + "2s"])
def test_a_huge_budget_string_is_refused_at_once_without_being_echoed(text):
    for cm in (LATENCY, cost_model("flops")):
        with pytest.raises(UsageError) as err:
            cm.parse_budget(text)
        message = str(err.value)
        assert "too long" in message and f"({len(text)} characters)" in message
        assert len(message) < 200 and "\n" not in message


def test_the_longest_accepted_budget_still_parses():
    assert LATENCY.parse_budget("0" * 60 + "2s") == 2.0


# ---------------------------------------------------------------------------------------------- distribution


def test_part_spread_quantiles_follow_the_samples_and_the_summary():
    stats = LatencyStats.from_samples([10.0, 11.0, 12.0, 13.0, 30.0])
    s = PartSpread.of(stats)
    assert s.at(50) == 12.0 and s.at(0) == 10.0 and s.at(100) == 30.0
    assert s.at(90) == pytest.approx(stats.at(90))
    summary = PartSpread.of(LatencyStats(12.0, 10.5, 20.0, 2.0, 13.0, 10.0, 30.0, 5, []))
    assert summary.at(10) == 10.5 and summary.at(90) == 20.0 and summary.at(70) == pytest.approx(16.0)


def test_the_run_p90_is_built_from_the_parts_and_the_chance_over_is_stated():
    p = make_profile(H100_GRAPH, mode="cudagraph")
    med = {r.model: r for r in cost_rows(p, None, ["ddim"], 50, [])}["ldm-866m"]
    p90 = {r.model: r for r in cost_rows(p, None, ["ddim"], 90, [])}["ldm-866m"]
    assert p90.at(20) > med.at(20)
    b = p90.breakdown
    assert p90.at(20) == pytest.approx(b.seconds(20, 90))
    assert chance_over(b, 20, p90.at(20)) == pytest.approx(0.10, abs=0.002)  # the p90 itself: 10% of runs over
    assert chance_over(b, 20, med.at(20)) == pytest.approx(0.50, abs=0.002)
    assert chance_over(b, 20, b.seconds(20, 100)) == 0.0 and chance_over(b, 20, b.seconds(20, 0) * 0.99) == 1.0


def test_recommend_plans_on_the_p90_by_default_and_says_the_chance(tmp_path):
    prof = tmp_path / "h100.json"
    prof.write_text(make_profile(H100_GRAPH, mode="cudagraph").dumps())
    r = runner.invoke(app, ["recommend", "--budget", "500ms", "--profile", str(prof), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    best = doc["best"]
    assert best["latency"] <= 0.5 and best["over_budget_chance"] <= 0.10
    assert "expected over the budget" in doc["explanation"] and "Planned on the run's p90" in doc["explanation"]
    median = runner.invoke(app, ["recommend", "--budget", "500ms", "--profile", str(prof), "--percentile", "50",
                                 "--json"])
    assert json.loads(median.stdout)["best"]["over_budget_chance"] <= 0.5
    human = runner.invoke(app, ["recommend", "--budget", "500ms", "--profile", str(prof)])
    assert "chance over budget" in human.stdout and "predicted latency" in human.stdout


def test_headroom_is_preferred_among_picks_of_the_same_expected_quality():
    """A noisy denoiser step: the best predicted pick runs over the budget often; a pick within the prediction's
    uncertainty with fewer steps runs over less, and is preferred (and the explanation says why)."""
    p = make_profile({"ldm-866m": 12.3}, mode="cudagraph")
    noisy = LatencyStats.from_samples([12.3 * f for f in (0.8, 0.9, 0.95, 1.0, 1.0, 1.05, 1.1, 1.2, 1.4, 1.6)])
    p.models[0].denoiser_step = noisy
    rows = cost_rows(p, None, ["ddim"], 50, [])
    plain = select_config(rows, LAW, 0.6)
    kept = select_config(rows, LAW, 0.6, headroom=True)
    assert plain.best.over_budget_chance is not None and plain.best.over_budget_chance > 0.2
    assert kept.best.steps < plain.best.steps
    assert kept.best.over_budget_chance < plain.best.over_budget_chance
    assert abs(kept.best.quality - plain.best.quality) <= plain.best.sigma
    assert "more headroom for the same expected quality" in kept.explanation


def test_flops_has_no_distribution_and_no_chance():
    rows = cost_model("flops").rows(profile=None, law=LAW, models=None, samplers=["ddim"], percentile=50, excluded=[])
    sel = select_config(rows, LAW, 3.0, headroom=True)
    assert (sel.best.model, sel.best.steps) == ("ldm-83m", 23) and sel.best.over_budget_chance is None
    assert sel.to_json()["unit"] == "cost" and sel.to_json()["cost_model"] == "flops"


def test_the_frontier_drops_weakly_dominated_points():
    from dataclasses import dataclass

    @dataclass
    class P:
        latency: float
        quality: float

    pts = [P(1.0, 10.0), P(1.0, 9.0), P(2.0, 9.0), P(2.0, 9.0 - 1e-12), P(3.0, 8.0), P(3.0, 8.0)]
    assert [(p.latency, p.quality) for p in pareto_frontier(pts)] == [(1.0, 9.0), (3.0, 8.0)]


# ---------------------------------------------------------------------------------------------- evaluations per step


def test_an_imported_file_cannot_make_heun_cheap(tmp_path):
    doc = json.loads(make_profile(H100_EAGER).dumps())
    for s in doc["samplers"]:
        if s["name"] == "heun":
            s["evals_per_step"] = 1
    with pytest.raises(ProfileError, match="sampler 'heun' takes 2 denoiser evaluation"):
        parse_profile_text(json.dumps(doc))
    bad = tmp_path / "heun1.json"
    bad.write_text(json.dumps(doc))
    one_line_error(runner.invoke(app, ["profiles", "import", str(bad)]), "sampler 'heun' takes 2")
    one_line_error(runner.invoke(app, ["recommend", "--budget", "300ms", "--profile", str(bad)]), "sampler 'heun' takes 2")
    # and the costs come from ldmpick's table whatever the profile holds
    p = make_profile(H100_EAGER)
    p.sampler("heun").evals_per_step = 1
    row = next(r for r in cost_rows(p, ["ldm-866m"], ["heun"], 50, []))
    assert row.breakdown.evals_per_step == 2


# ---------------------------------------------------------------------------------------------- generate plans


def demo_model_folder() -> bool:
    from ldmpick.models.catalogue import resolve_trusted_name

    spec = resolve_trusted_name("demo-c8")
    return spec is not None and spec.has_weights


needs_demo = pytest.mark.skipif(not demo_model_folder(), reason="the shipped demo weights are not installed")


@needs_demo
def test_recommend_and_generate_make_the_same_plan(tmp_path):
    r = runner.invoke(app, ["recommend", "--budget", "200ms", "--profile", str(DEMO_PROFILE), "--json"])
    assert r.exit_code == 0, r.output
    best = json.loads(r.stdout)["best"]
    g = runner.invoke(app, ["generate", "a red circle", "--budget", "200ms", "--profile", str(DEMO_PROFILE),
                            "--seed", "1", "--out", str(tmp_path / "o"), "--json"])
    assert g.exit_code == 0, g.output
    doc = json.loads(g.stdout)
    chosen = doc["selection"]
    assert (chosen["model"], chosen["sampler"], chosen["steps"]) == (best["model"], best["sampler"], best["steps"])
    assert chosen["predicted_ms"] == pytest.approx(best["latency"] * 1e3, abs=0.01)
    assert chosen["over_budget_chance"] == pytest.approx(best["over_budget_chance"])
    assert doc["prediction"]["over_budget_chance"] == pytest.approx(best["over_budget_chance"], abs=0.002)
    assert doc["quality"]["value"] == pytest.approx(best["quality"], abs=1e-3)


@needs_demo
@pytest.mark.parametrize("sampler", ["ddpm", "euler-a", "ddim"])
def test_guidance_never_changes_silently(tmp_path, sampler):
    r = runner.invoke(app, ["generate", "a red circle", "--model", "demo-c8", "--sampler", sampler, "--steps", "2",
                            "--seed", "1", "--out", str(tmp_path / "o"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["settings"]["guidance"] == 4.0  # the scale the demo family was calibrated at, whatever the sampler
    assert "guidance 4: the scale" in r.stderr and "calibrated at" in r.stderr
    assert "demo-c8's quality was calibrated at" in doc["guidance_source"]


@needs_demo
def test_the_sidecar_has_the_predicted_quality_when_there_is_one(tmp_path):
    r = runner.invoke(app, ["generate", "a red circle", "--model", "demo-c8", "--sampler", "ddim", "--steps", "4",
                            "--seed", "1", "--out", str(tmp_path / "o"), "--json"])
    assert r.exit_code == 0, r.output
    sidecar = json.loads(next((tmp_path / "o").glob("*-run.json")).read_text())
    assert sidecar["quality"]["metric"] == "fid" and sidecar["quality"]["value"] > 0
    assert sidecar["quality"]["basis"].startswith("calibrated")
    from ldmpick.generation.outputs import read_png_text

    text = read_png_text(next((tmp_path / "o").glob("*.png")))
    assert float(text["predicted_fid"]) == pytest.approx(sidecar["quality"]["value"], abs=1e-3)
    if sidecar["prediction"] is not None:
        assert sidecar["prediction"]["fid"] == pytest.approx(sidecar["quality"]["value"], abs=1e-3)


@needs_demo
def test_n_2_within_a_budget_needs_a_profile_measured_at_batch_2(tmp_path):
    r = runner.invoke(app, ["generate", "a red circle", "--budget", "200ms", "--n", "2", "--profile",
                            str(DEMO_PROFILE), "--out", str(tmp_path / "o")])
    one_line_error(r, "was measured at batch 1; choosing within a budget for --n 2 needs a profile measured with "
                      "'ldmpick profile --batch 2'")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["out.png", "picture.JPG"])
def test_out_naming_an_image_file_is_refused_not_made_a_folder(tmp_path, name):
    r = runner.invoke(app, ["generate", "a red circle", "--model", "demo-c8", "--sampler", "ddim", "--steps", "1",
                            "--n", "2", "--out", str(tmp_path / name)])
    one_line_error(r, "looks like an image file name, but generate writes a folder (2 images")
    assert not (tmp_path / name).exists()


# ---------------------------------------------------------------------------------------------- drift


def test_drift_is_said_only_after_several_runs_off_the_same_way():
    from ldmpick.generation.drift import drift_of, read_history, record_run

    assert record_run("p1", {"denoise_ms": 1.4, "vae_decode_ms": 1.0}) is None
    assert record_run("p1", {"denoise_ms": 1.3, "vae_decode_ms": 1.02}) is None
    drift = record_run("p1", {"denoise_ms": 1.2, "vae_decode_ms": 0.98})
    assert drift is not None and drift.parts == {"denoise_ms": [1.4, 1.3, 1.2]}
    message = drift.message("p1", "ldmpick profile --models x")
    assert "in each of the last 3 runs the denoising loop ran slower (1.40x, 1.30x, 1.20x) than profile 'p1'" in message
    assert "refresh it with 'ldmpick profile --models x'" in message
    assert record_run("p1", {"denoise_ms": 1.05}) is None  # back to normal: no warning
    for _ in range(3):  # a machine 10 million times slower than its profile is still drift, however absurd
        drift = record_run("p2", {"denoise_ms": 1e7})
    assert drift is not None and drift.parts == {"denoise_ms": [1e7] * 3}
    assert len(read_history("p1")) == 4 and read_history("other") == []
    assert drift_of([{"denoise_ms": 1.3}, {"denoise_ms": 0.7}, {"denoise_ms": 1.3}]) is None  # noise, not drift


def test_generate_says_when_measured_parts_drift_from_the_profile(tmp_path):
    """A profile whose denoiser step is 1000x faster than this machine runs it: on the third run generate says the
    profile no longer describes the machine."""
    from tiny_pipeline import build_tiny_pipeline

    from ldmpick.hardware.fingerprint import light_fingerprint
    from ldmpick.profiles.schema import Profile, SamplerOverhead, Settings

    tiny = build_tiny_pipeline(tmp_path / "tiny-sd")
    fast = LatencyStats.from_samples([0.001, 0.001, 0.0012])  # ms: far faster than any real run of it
    profile = Profile(
        settings=Settings(device="cpu", dtype="fp32", resolution=32, batch=1, cfg=True, mode="eager", warmup=1,
                          repeats=3, max_seconds_per_model=1),
        device=light_fingerprint("cpu"),
        models=[ModelLatency("tiny-sd", "ok", 1000, fast, source=str(tiny), text_encoder=fast, vae_decode=fast)],
        samplers=[SamplerOverhead("euler", 1, fast)],
        created="2026-11-28T00:00:00Z",
    )
    prof = tmp_path / "tiny.json"
    prof.write_text(profile.dumps())
    args = ["generate", "a cat", "--model", str(tiny), "--sampler", "euler", "--steps", "3", "--resolution", "32",
            "--seed", "1", "--profile", str(prof), "--out", str(tmp_path / "o")]
    for run in range(3):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        assert ("the profile may no longer describe this machine" in r.stderr) == (run == 2), r.stderr
    assert "denoising loop ran slower" in r.stderr and "ldmpick profile --models" in r.stderr, r.stderr


def test_plan_selection_is_the_one_recommend_uses():
    from ldmpick.planning.plan import plan_selection
    from ldmpick.planning.recommendation import recommend

    p = make_profile(H100_GRAPH, mode="cudagraph")
    plan = plan_selection("500ms", profile=p, samplers=["ddim", "dpmpp-2m"])
    assert plan.selection.best.latency <= 0.5 and plan.source["profile"] == p.id
    assert set(PARAMS) >= {c.model for c in plan.selection.top}
    flops = recommend("3", cost_model="flops", samplers="ddim")
    assert (flops.selection.best.model, flops.selection.best.steps) == ("ldm-83m", 23)


def test_an_unwritable_drift_history_is_a_warning_not_a_failed_run(tmp_path, monkeypatch):
    """The images and the run record are already written when the latency history is kept: a read-only or full
    LDMPICK_HOME must not turn the finished run into an error."""
    from types import SimpleNamespace

    from ldmpick.generation.drift import PARTS, check_run

    blocker = tmp_path / "home-is-a-file"
    blocker.write_text("x")
    monkeypatch.setenv("LDMPICK_HOME", str(blocker))
    parts = {p: 1.0 for p in PARTS}
    plan = SimpleNamespace(latency=SimpleNamespace(**parts), mismatches=[], profile=SimpleNamespace(id="p1"))
    result = SimpleNamespace(prompts=[SimpleNamespace(times=SimpleNamespace(**parts))])
    message = check_run(plan, result)
    assert message is not None and message.startswith("warning: latency history not kept (cannot write ")
    assert "home-is-a-file" in message and "\n" not in message


def test_a_drift_history_folder_that_refuses_new_files_is_a_warning_too(monkeypatch):
    """A folder that exists but cannot take a new file (mkstemp: permission denied, as for a non-root user with a
    read-only folder) reaches check_run as the atomic write's RuntimeFailure, not an OSError."""
    import tempfile
    from types import SimpleNamespace

    from ldmpick.generation.drift import PARTS, check_run

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    parts = {p: 1.0 for p in PARTS}
    plan = SimpleNamespace(latency=SimpleNamespace(**parts), mismatches=[], profile=SimpleNamespace(id="p1"))
    result = SimpleNamespace(prompts=[SimpleNamespace(times=SimpleNamespace(**parts))])
    message = check_run(plan, result)
    assert message is not None and message.startswith("warning: latency history not kept (")
    assert "Permission denied" in message


def test_drift_ratios_use_the_median_of_an_even_number_of_prompts():
    from types import SimpleNamespace

    from ldmpick.generation.drift import PARTS, run_ratios

    prediction = SimpleNamespace(**{p: 10.0 for p in PARTS})
    prompts = [SimpleNamespace(times=SimpleNamespace(**{p: ms for p in PARTS})) for ms in (10.0, 30.0)]
    assert run_ratios(prediction, prompts)["denoise_ms"] == pytest.approx(2.0)  # (it took the slower: 3.0)


@pytest.mark.parametrize("name", ["ddim", "dpmpp-2m", "euler", "unipc", "heun"])
def test_denoiser_evaluations_per_run_match_the_diffusers_scheduler(name):
    """N Heun steps run 2N - 1 evaluations (its first step is one Euler evaluation); costing them as 2N made
    recommend pick a step too few (ldm-83m heun in 2 s: 5 steps, when 6 fit)."""
    from ldmpick.models.samplers import get_sampler, make_scheduler

    for steps in (1, 2, 6, 25):
        scheduler = make_scheduler(name)
        scheduler.set_timesteps(steps)
        assert len(scheduler.timesteps) == get_sampler(name).evaluations(steps), (name, steps)


def test_heun_costs_2n_minus_1_evaluations_in_the_measured_and_the_flops_cost_models():
    from ldmpick.costs import cost_model
    from ldmpick.costs.latency import predict
    from ldmpick.quality.law import load_law

    p = make_profile(H100_GRAPH, mode="cudagraph")
    law, _ = load_law()
    (ddim,) = cost_model("measured").rows(profile=p, law=law, models=["ldm-39m"], samplers=["ddim"], percentile=50,
                                          excluded=[])
    (heun,) = cost_model("measured").rows(profile=p, law=law, models=["ldm-39m"], samplers=["heun"], percentile=50,
                                          excluded=[])
    unet = heun.breakdown.denoiser_step.at(50) / 1e3
    overhead = {r.sampler: r.breakdown.sampler_overhead.at(50) / 1e3 for r in (ddim, heun)}
    for n in (1, 6):  # heun(n) - ddim(n) = (n - 1) extra evaluations + the overhead difference
        extra = heun.at(n) - ddim.at(n) - n * (overhead["heun"] - overhead["ddim"])
        assert extra == pytest.approx((n - 1) * unet)
    pred = predict(p, ["ldm-39m"], "heun", 6, 50)
    assert pred.total_ms == pytest.approx(heun.at(6) * 1e3)  # generate's prediction and recommend's agree
    (flops,) = cost_model("flops").rows(profile=None, law=law, models=["ldm-83m"], samplers=["heun"], percentile=50,
                                        excluded=[])
    assert flops.at(6) == pytest.approx(11 * law.norm_cost["ldm-83m"])
