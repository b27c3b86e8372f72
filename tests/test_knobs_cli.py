"""Knobs through the commands (issue 28): profile schema 4's knob variants, ``profile --knobs`` on a tiny Flux,
the cost model's scheduled rows, ``recommend --knobs`` ranking a variant with published effect data and listing an
unmeasured one with its command, and ``generate --knobs`` applying and recording them."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.files.errors import ProfileError
from ldmpick.profiles.knob_block import KnobVariant
from ldmpick.profiles.schema import LatencyStats, ModelLatency, Profile, SamplerOverhead, Settings, parse_profile_text

runner = CliRunner()
TAYLOR = "cache=taylorseer(interval=4,order=2,warmup=2,scope=blocks)"  # the FoCa table's TaylorSeer (N=4, O=2)


def _stats(ms: float) -> LatencyStats:
    return LatencyStats.from_samples([ms * f for f in (0.97, 0.99, 1.0, 1.01, 1.05)])


def flux_profile(variants: list[KnobVariant] | None = None, step_ms: float = 190.0) -> Profile:
    """An H100-like profile of FLUX.1-dev at 1024 px (constructed: nothing measured) with its knob variants."""
    model = ModelLatency("flux-dev", "ok", 11_900_000_000, _stats(step_ms), family="flux", cfg=False,
                         distilled=False, samplers=["flow-euler"], knobs=list(variants or []))
    return Profile(
        settings=Settings(device="cuda", dtype="bf16", resolution=1024, batch=1, cfg=False, mode="eager", warmup=3,
                          repeats=20, max_seconds_per_model=20, threads=8),
        device={"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "memory_bytes": 80 * 2**30},
        models=[model], samplers=[SamplerOverhead("flow-euler", 1, _stats(0.3))], created="2026-12-08T00:00:00Z",
    ).share_fixed_parts(_stats(60.0), _stats(150.0))


def taylor_variant(full_ms: float = 190.0, cached_ms: float = 20.0) -> KnobVariant:
    return KnobVariant(TAYLOR, _stats(full_ms), "fixed", _stats(cached_ms), pattern="FFcFcccFcccF", runs=1)


# ---------------------------------------------------------------------------------------------- schema 4


def test_a_version_4_profile_keeps_its_knob_variants():
    fb = KnobVariant("cache=fbcache(threshold=0.05)", _stats(195.0), "adaptive", notes="skip rate from data")
    p = flux_profile([taylor_variant(), fb])
    doc = json.loads(p.dumps())
    assert doc["schema"] == "ldmpick.profile/4"
    back = parse_profile_text(p.dumps())
    m = back.model("flux-dev")
    assert [v.knobs for v in m.knobs] == [TAYLOR, "cache=fbcache(threshold=0.05)"]
    assert m.knob_variant(TAYLOR).cached_step.median_ms == pytest.approx(20.0)
    assert m.knob_variant("cache=fbcache(threshold=0.05)").cached_step is None


def test_a_version_3_profile_still_reads_without_knobs():
    doc = json.loads(flux_profile().dumps())
    doc["schema"] = "ldmpick.profile/3"
    for m in doc["models"]:
        m.pop("knobs")
    back = parse_profile_text(json.dumps(doc))
    assert back.model("flux-dev").knobs == []
    assert json.loads(back.dumps())["schema"] == "ldmpick.profile/4"


@pytest.mark.parametrize("edit, message", [
    (lambda v: v.update(cached_step=None), "a cached_step is measured exactly for a fixed schedule"),
    (lambda v: v.update(schedule="sometimes"), "schedule"),
    (lambda v: v.update(pattern="FFxF"), "pattern must be the timed run's steps"),
    (lambda v: v.update(runs=0), "runs must be at least 1"),
])
def test_a_bad_knob_variant_is_refused_in_one_line(edit, message):
    doc = json.loads(flux_profile([taylor_variant()]).dumps())
    edit(doc["models"][0]["knobs"][0])
    with pytest.raises(ProfileError, match=message) as info:
        parse_profile_text(json.dumps(doc))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------- profile --knobs


@pytest.fixture(scope="module")
def tiny_flux_profile(tmp_path_factory):
    """A tiny random Flux, registered and profiled on the CPU with a fixed-schedule cache, bf16, an adaptive cache
    and a set that cannot run here."""
    pytest.importorskip("diffusers")
    from family_pipelines import build_family_pipeline, tiny_resolution

    tmp = tmp_path_factory.mktemp("knobs")
    folder = build_family_pipeline("flux", tmp / "flux")
    home = tmp / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("LDMPICK_HOME", str(home))
    r = runner.invoke(app, ["models", "add", "tinyflux", str(folder)])
    assert r.exit_code == 0, r.output
    out = tmp / "p.json"
    sets = f"{TAYLOR};precision=bf16;cache=fbcache(threshold=0.1);compile=full"
    r = runner.invoke(app, ["profile", "--models", "tinyflux", "--device", "cpu", "--resolution",
                            str(tiny_resolution("flux")), "--warmup", "1", "--repeats", "3", "--max-seconds", "1",
                            "--no-pipeline-call", "--knobs", sets, "--out", str(out)])
    yield r, out, folder, home
    mp.undo()


def test_profile_knobs_measures_full_and_cached_steps_of_a_fixed_schedule(tiny_flux_profile):
    from ldmpick.knobs import parse_knob
    from ldmpick.knobs.cache import KIND as CACHE

    r, out, _, _ = tiny_flux_profile
    assert r.exit_code == 0, r.output
    raw = json.loads(out.read_text())
    assert raw["schema"] == "ldmpick.profile/4"
    m = parse_profile_text(out.read_text()).model("tinyflux")
    taylor = m.knob_variant(TAYLOR)
    assert taylor is not None and taylor.schedule == "fixed"
    schedule = CACHE.schedule(parse_knob(TAYLOR), len(taylor.pattern))
    assert taylor.pattern == schedule.pattern() == "FFcFcccFcccF"
    assert taylor.runs >= 2
    # every timed call counted once, as its schedule classes it (cached cheaper is not asserted: tiny random models)
    assert taylor.denoiser_step.n == taylor.runs * len(schedule.full)
    assert taylor.cached_step.n == taylor.runs * len(schedule.cached)
    assert "TaylorSeerCacheConfig enabled" in taylor.notes and taylor.compile_ms is None
    # NVML's energy meter: none off NVIDIA GPUs, so no energy block is written
    assert m.energy is None and raw["models"][0]["energy"] is None


def test_profile_knobs_bf16_on_the_cpu_and_an_adaptive_cache_as_a_full_step(tiny_flux_profile):
    r, out, _, _ = tiny_flux_profile
    assert r.exit_code == 0, r.output
    prof = parse_profile_text(out.read_text())
    m = prof.model("tinyflux")
    bf16 = m.knob_variant("precision=bf16")
    assert bf16.schedule == "every-step" and bf16.cached_step is None and bf16.denoiser_step.n >= 2
    assert "torch.bfloat16" in bf16.notes
    fb = m.knob_variant("cache=fbcache(threshold=0.1)")
    assert fb.schedule == "adaptive" and fb.cached_step is None and "skip rate comes from data" in fb.notes
    # a list that cannot run here is skipped with a note, never a crash
    assert m.knob_variant("compile=full") is None
    assert "tinyflux: knobs compile=full not measured (compile=full: " in prof.notes


@pytest.mark.parametrize("knobs, message", [
    ("cache=fbcash", "unknown cache knob 'fbcash'; did you mean 'fbcache'?"),
    ("precision=bf16;;cache=fbcache", "has an empty knob list"),
    ("none", "'none' is the plain step"),
    ("precision=bf16;precision=bfloat16", "the knob list precision=bf16 is given twice"),
    ("cache=taylorseer(interval=0)", "interval must be between 1 and 100"),
])
def test_bad_knobs_text_is_refused_in_one_line_before_any_output(knobs, message, tmp_path):
    r = runner.invoke(app, ["profile", "--models", "ldm-39m", "--device", "cpu", "--knobs", knobs,
                            "--out", str(tmp_path / "p.json")])
    assert r.exit_code == 2, r.output
    assert message in r.stderr
    assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p.json").exists()


# ---------------------------------------------------------------------------------------------- recommend --knobs


@pytest.fixture
def knob_profile(tmp_path):
    """FLUX.1-dev with TaylorSeer (N=4, O=2: published on DrawBench ImageReward) at about a tenth of a full step
    when cached, and a TaylorSeer setting with no published row (interval 3): unmeasured quality."""
    unmeasured = "cache=taylorseer(interval=3,order=2,warmup=2,scope=blocks)"
    variants = [taylor_variant(), KnobVariant(unmeasured, _stats(190.0), "fixed", _stats(20.0),
                                               pattern="FFcFccFccFcc", runs=1)]
    p = tmp_path / "knobs.json"
    p.write_text(flux_profile(variants).dumps())
    return p, unmeasured


def _recommend(path, *extra):
    return runner.invoke(app, ["recommend", "--budget", "4s", "--profile", str(path), "--metric",
                               "drawbench-imagereward", "--models", "flux-dev", "--json", *extra])


def test_recommend_ranks_a_knob_variant_with_published_effect_data(knob_profile):
    from ldmpick.knobs import parse_knob
    from ldmpick.knobs.cache import KIND as CACHE

    path, _ = knob_profile
    r = _recommend(path)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    best = doc["best"]
    assert best["knobs"] == TAYLOR and best["model"] == "flux-dev"
    # latency: fixed parts + the schedule's exact mix of full and cached steps (+ the sampler's overhead)
    steps = best["steps"]
    full = len(CACHE.schedule(parse_knob(TAYLOR), steps).full)
    plain = next(c for c in doc["top"] if c["knobs"] == "none")
    assert best["steps"] > plain["steps"]  # the cache buys steps within the same budget
    # the p90 plan: each part at its p90 (samples 0.97..1.05 x the median: p90 is 1.034 x)
    p90 = LatencyStats.from_samples([f for f in (0.97, 0.99, 1.0, 1.01, 1.05)]).at(90)
    want = (60.0 + 150.0 + full * 190.0 + (steps - full) * 20.0 + steps * 0.3) * p90 / 1e3
    assert best["latency"] == pytest.approx(want, rel=1e-6)
    # quality: the law's prediction at those steps moved by the published effect (FoCa, 50 steps: -0.0039)
    assert best["basis"].endswith("+knob-published") or best["basis"].endswith("+knob-transferred")
    assert "TaylorSeer" in doc["explanation"] or TAYLOR in doc["explanation"]
    assert "the best plain configuration that fits" in doc["explanation"]


def test_recommend_lists_an_unmeasured_knob_with_the_command_that_measures_it(knob_profile):
    path, unmeasured = knob_profile
    r = _recommend(path)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert all(c["knobs"] != unmeasured for c in doc["top"] + doc["frontier"])
    entry = next(u for u in doc["unranked"] if u.get("knobs") == unmeasured)
    assert entry["command"].startswith("no ldmpick command measures it yet") and unmeasured in entry["command"]
    human = runner.invoke(app, ["recommend", "--budget", "4s", "--profile", str(path), "--metric",
                                "drawbench-imagereward", "--models", "flux-dev"])
    assert human.exit_code == 0, human.output
    assert f"unranked: flux-dev with {unmeasured}" in human.stderr


def test_recommend_knobs_none_ranks_plain_configurations_only(knob_profile):
    path, _ = knob_profile
    r = _recommend(path, "--knobs", "none")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert all(c["knobs"] == "none" for c in doc["top"] + doc["frontier"] + [doc["best"]])


def test_recommend_bad_knobs_text_is_one_line(knob_profile):
    path, _ = knob_profile
    r = _recommend(path, "--knobs", "cache=fbcash")
    assert r.exit_code == 2 and r.stdout == ""
    assert "unknown cache knob 'fbcash'; did you mean 'fbcache'?" in r.stderr


# ---------------------------------------------------------------------------------------------- generate --knobs


def test_generate_knobs_applies_the_cache_and_records_it(tiny_flux_profile, tmp_path):
    from PIL import Image

    from family_pipelines import tiny_resolution

    _, _, _, home = tiny_flux_profile
    knobs = "cache=taylorseer(interval=2,order=1,warmup=1,scope=attention)"
    mp = pytest.MonkeyPatch()
    mp.setenv("LDMPICK_HOME", str(home))
    try:
        out = tmp_path / "images"
        r = runner.invoke(app, ["generate", "a red cube", "--model", "tinyflux", "--steps", "4", "--sampler",
                                "flow-euler", "--resolution", str(tiny_resolution("flux")), "--device", "cpu",
                                "--seed", "1", "--knobs", knobs, "--out", str(out), "--json"])
    finally:
        mp.undo()
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    assert record["settings"]["knobs"] == knobs
    assert any(n.startswith(f"knob {knobs}: TaylorSeerCacheConfig enabled") for n in record["notes"])
    png = sorted(out.glob("*.png"))[0]
    assert Image.open(png).text["knobs"] == knobs


@pytest.mark.parametrize("args, message", [
    (["--knobs", "cache=fbcash"], "unknown cache knob 'fbcash'; did you mean 'fbcache'?"),
    (["--knobs", "compile=full"], "mode 'compile' needs a CUDA device"),  # --mode compile's own rule
    (["--knobs", "precision=bf16", "--dtype", "fp32"], "--dtype fp32 and --knobs precision=bf16 name two precisions"),
])
def test_generate_bad_knobs_are_refused_in_one_line(tiny_flux_profile, tmp_path, args, message):
    _, _, _, home = tiny_flux_profile
    mp = pytest.MonkeyPatch()
    mp.setenv("LDMPICK_HOME", str(home))
    try:
        r = runner.invoke(app, ["generate", "a red cube", "--model", "tinyflux", "--steps", "2", "--sampler",
                                "flow-euler", "--device", "cpu", "--out", str(tmp_path / "o"), *args])
    finally:
        mp.undo()
    assert r.exit_code == 2, r.output
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not list((tmp_path / "o").glob("*.png"))


# ---------------------------------------------------------------------------------------------- energy


class FakeMeter:
    """Stands in for NVML's counter (no NVIDIA GPU here): 1 J per block, so each part's joules per call is
    1 / calls (the sampler's also per step)."""

    device = "Fake GPU"

    def __init__(self):
        self.closed = False

    def block(self, synchronize=None):
        from contextlib import contextmanager

        from ldmpick.hardware.energy import EnergyBlock, EnergyReading

        @contextmanager
        def run():
            out = EnergyBlock()
            yield out
            out.reading = EnergyReading(1.0, 1.0, self.device)

        return run()

    def close(self):
        self.closed = True


def test_profile_writes_an_energy_block_only_when_the_meter_reads_all_four_parts(tiny_flux_profile, monkeypatch,
                                                                                 tmp_path):
    from family_pipelines import tiny_resolution
    from ldmpick.hardware import energy

    _, _, _, home = tiny_flux_profile
    monkeypatch.setenv("LDMPICK_HOME", str(home))
    meter = FakeMeter()
    monkeypatch.setattr(energy.EnergyMeter, "open", classmethod(lambda cls, device="cuda", uuid=None: meter))
    monkeypatch.setattr(energy, "MAX_CALLS", 3)  # (calls per block: a second of tiny calls is thousands)
    out = tmp_path / "p.json"
    r = runner.invoke(app, ["profile", "--models", "tinyflux", "--device", "cpu", "--resolution",
                            str(tiny_resolution("flux")), "--warmup", "1", "--repeats", "3", "--max-seconds", "1",
                            "--no-pipeline-call", "--out", str(out)])
    assert r.exit_code == 0, r.output
    block = parse_profile_text(out.read_text()).model("tinyflux").energy
    assert block is not None and block["device"] == "Fake GPU"
    assert set(block) == {"denoiser_step_j", "text_encoder_j", "vae_decode_j", "sampler_step_j", "device"}
    assert all(0 < block[k] <= 1.0 for k in block if k != "device")
    assert meter.closed


def test_plot_draws_the_frontier_with_and_without_knobs(knob_profile, tmp_path):
    """plot --knobs auto: the selector's frontier with knobs in the choice beside the plain one (issue 28.4)."""
    path, _ = knob_profile
    out = tmp_path / "f.svg"
    args = ["plot", "--profile", str(path), "--metric", "drawbench-imagereward", "--models", "flux-dev", "-o", str(out)]
    r = runner.invoke(app, [*args, "--knobs", "auto", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    with_knobs = doc["knob_frontier"]
    assert any(f["knobs"] == TAYLOR for f in with_knobs)  # a knob configuration is on the frontier
    assert [f["latency_ms"] for f in with_knobs] == sorted(f["latency_ms"] for f in with_knobs)
    assert "Pareto frontier with knobs" in out.read_text()
    plain = runner.invoke(app, [*args, "--json"])
    assert plain.exit_code == 0 and "knob_frontier" not in json.loads(plain.stdout)
    bad = runner.invoke(app, [*args, "--knobs", "cache=nope"])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and not (tmp_path / "g.svg").exists()
