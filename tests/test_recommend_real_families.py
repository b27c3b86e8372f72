"""`ldmpick recommend` across real families (FLUX.1, Sana, SANA-Sprint, SD3.5-Large-Turbo) on a constructed profile:
every (model, sampler, steps) that fits is ranked with its interval and basis, a model with no point on the scale
is listed as unranked with the command that would measure it, and the default metric says which one to use."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.profiles.schema import LatencyStats, ModelLatency, Profile, SamplerOverhead, Settings

runner = CliRunner()

REAL = "flux-schnell,flux-dev,sana-1.6b,sana-sprint-1.6b,sd3.5-large-turbo"
# H100-like denoiser steps at 1024 px (ms) and each model's sampler; parameter counts as published (none measured)
MODELS = {
    "flux-schnell": (190.0, 11_900_000_000, "flux", True, ["flow-euler"]),
    "flux-dev": (190.0, 11_900_000_000, "flux", False, ["flow-euler"]),
    "sana-1.6b": (45.0, 1_600_000_000, "sana", False, ["flow-euler", "flow-dpmpp-2m"]),
    "sana-sprint-1.6b": (40.0, 1_600_000_000, "sana", True, ["scm"]),
    "sd3.5-large-turbo": (160.0, 8_100_000_000, "sd3", True, ["flow-euler"]),
    "sd3.5-large": (160.0, 8_100_000_000, "sd3", False, ["flow-euler"]),
    "ldm-866m": (30.0, 865_910_724, "sd", False, ["ddim"]),
}


def _stats(ms: float) -> LatencyStats:
    return LatencyStats.from_samples([ms * f for f in (0.97, 0.99, 1.0, 1.01, 1.05)])


def real_profile(names: list[str]) -> Profile:
    samplers = sorted({s for n in names for s in MODELS[n][4]})
    return Profile(
        settings=Settings(device="cuda", dtype="bf16", resolution=1024, batch=1, cfg=False, mode="eager", warmup=3,
                          repeats=20, max_seconds_per_model=20, threads=8),
        device={"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "memory_bytes": 80 * 2**30},
        models=[ModelLatency(n, "ok", MODELS[n][1], _stats(MODELS[n][0]), family=MODELS[n][2],
                             distilled=MODELS[n][3], samplers=MODELS[n][4]) for n in names],
        samplers=[SamplerOverhead(s, 1, _stats(0.3)) for s in samplers],
        created="2026-12-08T00:00:00Z",
    ).share_fixed_parts(_stats(60.0), _stats(150.0))


@pytest.fixture
def profile_file(tmp_path):
    p = tmp_path / "real.json"
    p.write_text(real_profile(list(MODELS)).dumps())
    return p


def _recommend(profile_file, *extra):
    return runner.invoke(app, ["recommend", "--budget", "2s", "--profile", str(profile_file), "--json", *extra])


def test_geneval_ranks_every_real_family_with_interval_and_basis(profile_file):
    r = _recommend(profile_file, "--metric", "geneval", "--models", REAL, "--top", "10")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    ranked = {c["model"] for c in doc["top"]}
    assert ranked == set(REAL.split(",")), ranked  # every model has a candidate within 2 s
    for c in doc["top"] + doc["frontier"] + [doc["best"]]:
        low, high = c["interval"]
        assert low <= c["quality"] <= high, c
        assert c["basis"] in ("published", "published-interpolated", "published-held", "transferred",
                              "calibrated-response"), c
        if c["basis"] == "transferred":
            assert c["basis_detail"].startswith("transferred from"), c
    flux = next(c for c in doc["top"] if c["model"] == "flux-dev")
    # FLUX.1-dev is published only at 50 steps: what fits 2 s is moved along a step response, and says so
    assert flux["steps"] < 50 and flux["basis"] == "transferred"
    assert flux["interval"][1] - flux["interval"][0] > 0.02  # wider than a published point's
    assert doc["best"]["model"] in ("sana-sprint-1.6b", "flux-schnell", "sd3.5-large-turbo")  # distilled models win
    assert "GenEval" in doc["explanation"]


def test_a_model_without_a_point_on_the_scale_is_unranked_with_the_command_that_measures_it(profile_file):
    r = _recommend(profile_file, "--metric", "geneval", "--models", REAL + ",sd3.5-large")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert all(c["model"] != "sd3.5-large" for c in doc["top"] + doc["frontier"])
    (u,) = doc["unranked"]
    assert u["model"] == "sd3.5-large"
    # configs only here: the command names its weights by hub id (measured once they are in the cache)
    assert u["command"] == ("ldmpick calibrate --models stabilityai/stable-diffusion-3.5-large --scorer clip "
                            "--steps 4,8,16,28,50")
    assert any(e.startswith("sd3.5-large: no quality data on this scale (GenEval)") and u["command"] in e
               for e in doc["excluded"])


def test_the_default_metric_names_the_one_that_ranks_real_families(profile_file):
    r = runner.invoke(app, ["recommend", "--budget", "2s", "--profile", str(profile_file), "--models", REAL])
    assert r.exit_code == 2, r.output
    last = r.stderr.splitlines()[-1]
    assert last.startswith("error: no candidate configurations") and "--metric geneval has a point for 5 of 5" in last


def test_with_the_default_metric_the_paper_family_is_ranked_and_the_notice_names_geneval(profile_file):
    r = runner.invoke(app, ["recommend", "--budget", "2s", "--profile", str(profile_file), "--json",
                            "--models", "ldm-866m,flux-dev,sana-sprint-1.6b"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["best"]["model"] == "ldm-866m" and {u["model"] for u in doc["unranked"]} == {"flux-dev",
                                                                                             "sana-sprint-1.6b"}
    assert "note: real families are ranked on published scales: --metric geneval has a point for 2 of 2" in r.stderr


def test_transferred_predictions_never_go_below_the_fewest_steps_of_their_sweeps(profile_file):
    r = _recommend(profile_file, "--metric", "geneval", "--models", "flux-dev,sana-1.6b")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert min(c["steps"] for c in doc["frontier"]) >= 4  # the flow sweeps (SD3-Medium) start at 4 steps


def test_human_output_explains_a_transferred_pick(profile_file):
    r = runner.invoke(app, ["recommend", "--budget", "2s", "--profile", str(profile_file), "--metric", "geneval",
                            "--models", "flux-dev"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "flux-dev's published point moved along the step response of" in text and "80% interval" in text, text


def test_a_scorer_scale_ranks_only_what_was_calibrated_on_it(profile_file, ldmpick_home):
    pytest.importorskip("ldmpick.quality.scorer_scales")
    from ldmpick.quality.table import TABLE_COLUMNS, user_table_path

    scorer = "clip-score:clip-vit-large-patch14-0a1b2c3d:parti-48:1024px"
    rows = [f"flux-dev,,flow-euler,{k},3.5,1024,{scorer},{v},48,parti-48,calibrated:parti-48,calibrated:test"
            for k, v in ((4, 24.0), (8, 29.0), (16, 31.0), (28, 31.6), (50, 31.8))]
    user_table_path().parent.mkdir(parents=True, exist_ok=True)
    user_table_path().write_text(",".join(TABLE_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    assert runner.invoke(app, ["fit"]).exit_code == 0
    r = _recommend(profile_file, "--metric", scorer, "--models", "flux-dev,sana-1.6b")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert {c["model"] for c in doc["top"]} == {"flux-dev"} and doc["best"]["basis"] == "calibrated:parti-48"
    assert 4 <= doc["best"]["steps"] <= 9  # 2 s affords about 9 steps of a 12B model here
    assert [u["model"] for u in doc["unranked"]] == ["sana-1.6b"]
