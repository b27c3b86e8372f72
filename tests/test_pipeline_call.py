"""The budget promise (issue 26): a profile measures each model's own pipeline call, warm at two step counts and in
fresh processes, and the cost model predicts the steady state and the first image from it, with an over-budget
chance from the calls' own run-to-run spread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.costs import latency
from ldmpick.files.errors import ProfileError
from ldmpick.profiles.call_block import CallSeries, PipelineCall
from ldmpick.profiles.schema import LatencyStats, ModelLatency, Profile, SamplerOverhead, Settings, parse_profile_text

runner = CliRunner()


def st(*xs: float) -> LatencyStats:
    return LatencyStats.from_samples(list(xs))


def series(steps: int, *walls: float) -> CallSeries:
    return CallSeries(steps=steps, wall=st(*walls), evals=steps)


def call_profile(call: PipelineCall | None) -> Profile:
    """demo-c8 on a CPU: text encoder 2 ms, VAE 3 ms, denoiser step 10 ms, ddim step 1 ms (parts: 5 + 11 k ms)."""
    model = ModelLatency("demo-c8", "ok", 1_000_000, st(10.0), family="sd", cfg=True, samplers=["ddim"],
                         text_encoder=st(2.0), vae_decode=st(3.0), source="demo-c8", pipeline_call=call)
    return Profile(settings=Settings(device="cpu", dtype="fp32", resolution=32, batch=1, cfg=True, mode="eager",
                                     warmup=1, repeats=5, max_seconds_per_model=5.0, threads=1),
                   device={"kind": "cpu", "name": "Test CPU", "cpu_cores": 2}, models=[model],
                   samplers=[SamplerOverhead("ddim", 1, st(1.0))], created="2026-12-01T00:00:00Z")


def measured_call() -> PipelineCall:
    # the call adds 4 ms per call and 1.5 ms per step to the parts: 2 steps 5 + 22 + 4 + 3 = 34; 8 steps 109
    return PipelineCall(sampler="ddim", guidance=7.5, prompt="a cube",
                        warm=[series(2, 33.0, 34.0, 35.0), series(8, 107.0, 109.0, 109.0, 111.0, 130.8)],
                        first=series(8, 164.0, 158.0, 175.0), second=series(8, 108.0, 109.0, 110.0))


def test_the_call_predicts_the_steady_state_and_the_first_image_apart():
    prof = call_profile(measured_call())
    warm = latency.predict(prof, ["demo-c8"], "ddim", 4)
    assert warm is not None and warm.basis == "pipeline call (warm)"
    # parts at 4 steps: 2 + 44 + 3 = 49 ms; the call adds 4 + 4 x 1.5 = 10 ms
    assert warm.total_ms == pytest.approx(59.0) and warm.call_ms == pytest.approx(10.0)
    first = latency.predict(prof, ["demo-c8"], "ddim", 4, first_image=True)
    # the first call of a fresh process costs the median of (first - second) more: 56, 49, 65 -> 56 ms
    assert first.total_ms == pytest.approx(59.0 + 56.0) and first.basis == "pipeline call (first image)"
    parts_only = latency.predict(call_profile(None), ["demo-c8"], "ddim", 4)
    assert parts_only.total_ms == pytest.approx(49.0) and parts_only.basis == "parts"


def test_the_over_budget_chance_comes_from_the_calls_spread():
    prof = call_profile(measured_call())
    b = latency.breakdown(prof, prof.models[0], "ddim", 90.0)
    # one warm call of eleven was 150/125 = 1.2x its median: a budget 10% above the median is missed that often
    ratios = sorted(b.call.warm_ratio.knots)
    assert len(ratios) == 3 + 5 + 3 and ratios[-1] == pytest.approx(1.2)
    median = b.median_ms(8)
    assert latency.chance_over(b, 8, median * 1.1 / 1e3) == pytest.approx(0.1, abs=0.05)
    assert latency.chance_over(b, 8, median * 1.25 / 1e3) == 0.0
    assert latency.chance_over(b, 8, median * 0.9 / 1e3) == 1.0


def test_recommend_plans_on_the_call_and_says_so():
    prof = call_profile(measured_call())
    rows = latency.cost_rows(prof, None, ["ddim"], 90.0, [])
    (row,) = rows
    assert row.at(4) == pytest.approx(latency.breakdown(prof, prof.models[0], "ddim", 90.0).seconds(4, 90.0))
    assert "pipeline call measured end to end" in latency.MODEL.plan_basis(row)
    assert "the pipeline's own call" in latency.MODEL.describe(row, 4)
    first_rows = latency.MODEL.for_first_image().rows(profile=prof, law=None, models=None, samplers=["ddim"],
                                                      percentile=90.0, excluded=[])
    assert first_rows[0].at(4) > row.at(4) + 0.05  # the first image costs about 56 ms more


def test_version_3_round_trips_and_version_2_files_still_read():
    prof = call_profile(measured_call())
    again = parse_profile_text(prof.dumps())
    assert again.to_json() == prof.to_json() and again.models[0].pipeline_call.processes == 3
    old = json.loads(call_profile(None).dumps())
    old["schema"] = "ldmpick.profile/2"
    del old["models"][0]["pipeline_call"]
    assert parse_profile_text(json.dumps(old)).models[0].pipeline_call is None


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["warm"].pop(), "two step counts"),
    (lambda c: c["warm"].reverse(), "the lower first"),
    (lambda c: c.update(second=None), "first and second must both be there"),
    (lambda c: c["first"]["wall"].update(median_ms=-1.0), "negative"),
])
def test_a_bad_pipeline_call_block_is_refused_in_one_line(edit, message):
    d = json.loads(call_profile(measured_call()).dumps())
    edit(d["models"][0]["pipeline_call"])
    with pytest.raises(ProfileError, match=message) as err:
        parse_profile_text(json.dumps(d))
    assert "\n" not in str(err.value)


def test_measuring_a_demo_model_through_its_own_call(one_torch_thread):
    """A real pipeline: warm calls at both step counts and fresh processes (here run in this process)."""
    from ldmpick.measurement.pipeline_call import CallRequest, fresh_first_calls, measure_pipeline_call
    from ldmpick.models.catalogue import resolve_model
    from ldmpick.profiles.call_block import pipeline_call_of

    spec = resolve_model("demo-c8")
    req = CallRequest(device="cpu", dtype="fp32", mode="eager", resolution=32, batch=1, guidance=7.5, sampler="ddim",
                      steps=(1, 3), repeats=3, max_seconds=5.0, fresh_processes=2, threads=1)
    children: list[dict] = []

    def spawn(child: dict) -> dict:
        children.append(child)
        return fresh_first_calls(child)

    m = measure_pipeline_call(spec, req, spawn=spawn)
    assert [s.steps for s in m.warm] == [1, 3] * 3
    assert all(s.evals == s.steps and s.wall_ms >= s.denoise_ms + s.vae_decode_ms > 0 for s in m.warm)
    assert len(m.first) == len(m.second) == 2 and children[0]["model"] == "demo-c8"
    block = pipeline_call_of(m)
    assert [w.steps for w in block.warm] == [1, 3] and block.processes == 2


@pytest.mark.real_fresh_process
def test_profile_stores_each_models_pipeline_call(tmp_path: Path):
    """Through the CLI, with one real fresh process."""
    out = tmp_path / "p.json"
    r = runner.invoke(app, ["profile", "--models", "demo-c8", "--device", "cpu", "--samplers", "ddim",
                            "--repeats", "3", "--warmup", "1", "--max-seconds", "2", "--threads", "1",
                            "--call-steps", "1,3", "--fresh-runs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    raw = json.loads(out.read_text())
    assert raw["schema"] == "ldmpick.profile/4"
    call = raw["models"][0]["pipeline_call"]
    assert call["sampler"] == "ddim" and [w["steps"] for w in call["warm"]] == [1, 3]
    assert call["first"]["wall"]["n"] == call["second"]["wall"]["n"] == 1, call["errors"]
    r = runner.invoke(app, ["profile", "--models", "demo-c8", "--device", "cpu", "--call-steps", "3,1",
                            "--out", str(tmp_path / "q.json")])
    assert r.exit_code == 2 and "--call-steps" in r.stderr and r.stderr.count("\n") == 1


def test_generate_without_warm_up_plans_on_the_first_image(tmp_path: Path, monkeypatch):
    from ldmpick.planning.plan import plan_generation

    prof_path = tmp_path / "prof.json"
    prof_path.write_text(call_profile(measured_call()).dumps())
    plans = {w: plan_generation(["a red cube"], out=tmp_path / f"o{w}", model="demo-c8", sampler="ddim", steps=4,
                                device="cpu", profile=str(prof_path), warmup=w) for w in (True, False)}
    assert plans[True].latency.basis == "pipeline call (warm)"
    assert plans[False].latency.basis == "pipeline call (first image)"
    assert plans[False].latency.total_ms == pytest.approx(plans[True].latency.total_ms + 56.0)


def test_the_text_encoders_are_profiled_at_what_the_pipeline_really_encodes(tmp_path, one_torch_thread):
    """SANA's pipeline prepends its complex-human-instruction prefix to the prompt (issue 25: its text encoder was
    predicted 8-13x too fast at the adapter's 300 tokens): the profile's own pipeline call sees how many tokens the
    pipeline fed the encoder, and the stack is measured again at that length."""
    from family_pipelines import build_family_pipeline
    from ldmpick.models.catalogue import resolve_model
    from ldmpick.profiles.schema import load_profile

    folder = build_family_pipeline("sana", tmp_path / "sana")
    assert runner.invoke(app, ["models", "add", "tiny-sana", str(folder)]).exit_code == 0
    stated = resolve_model("tiny-sana").adapter.text_encoders(resolve_model("tiny-sana"))[0].seq_len
    out = tmp_path / "p.json"
    r = runner.invoke(app, ["profile", "--models", "tiny-sana", "--device", "cpu", "--resolution", "512", "--warmup",
                            "1", "--repeats", "3", "--max-seconds", "2", "--fresh-runs", "0", "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = load_profile(out).model("tiny-sana")
    assert "as its pipeline encoded the profile's prompt" in m.text_encoders, m.text_encoders
    seen = int(m.text_encoders.split("(")[1].split(" tokens")[0])
    assert seen > stated  # the instruction prefix is longer than nothing
