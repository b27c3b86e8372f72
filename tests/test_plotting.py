"""The quality-vs-latency plot: files written, the Pareto frontier, what is ignored, refusals, law-only mode."""

from __future__ import annotations

import random
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ldmpick.files.errors import UsageError
from ldmpick.plots.figure import PlotPoint, PlotSummary, plot_quality_vs_latency
from ldmpick.profiles.schema import LatencyStats, ModelLatency, Profile, SamplerOverhead, Settings, load_profile
from ldmpick.quality.law import load_law
from ldmpick.quality.table import QualityPoint
from ldmpick.planning.selector import pareto_frontier as one_frontier

REPO = Path(__file__).resolve().parent.parent
SHIPPED_PROFILE = REPO / "profiles" / "cpu-amd-epyc-2core-128px-fp32-eager.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _stats(ms: float) -> LatencyStats:
    return LatencyStats.from_samples([ms])


def make_profile() -> Profile:
    """Latency = steps x UNet step exactly: no text encoder, no VAE, no sampler overhead."""
    return Profile(
        settings=Settings(device="cpu", dtype="fp32", resolution=128, batch=1, cfg=True, mode="eager", warmup=1,
                          repeats=3, max_seconds_per_model=10),
        device={"kind": "cpu", "name": "Test CPU", "cores": 2},
        models=[ModelLatency("ldm-39m", "ok", 38_800_580, _stats(10.0)),
                ModelLatency("ldm-866m", "ok", 865_910_724, _stats(40.0))],
        samplers=[SamplerOverhead("ddim", 1, _stats(0.0)), SamplerOverhead("dpmpp-2m", 1, _stats(0.0))],
        created="2026-01-01T00:00:00Z",
    ).share_fixed_parts(None, None)


def qp(model: str, sampler: str, steps: int, value: float, series: str = "calibrated:test", metric: str = "fid",
       params: int | None = None) -> QualityPoint:
    return QualityPoint(model=model, unet_params=params, sampler=sampler, steps=steps, guidance=7.5, resolution=128,
                        metric=metric, value=value, num_samples=100, dataset="test", series=series, source="test")


# (model, sampler, steps, fid); latency = steps x (10 ms for ldm-39m, 40 ms for ldm-866m)
MEASURED = [
    ("ldm-39m", "ddim", 10, 40.0), ("ldm-39m", "ddim", 20, 30.0), ("ldm-39m", "ddim", 50, 28.0),
    ("ldm-39m", "dpmpp-2m", 10, 35.0), ("ldm-39m", "dpmpp-2m", 20, 29.0), ("ldm-39m", "dpmpp-2m", 50, 28.5),
    ("ldm-866m", "ddim", 5, 33.0), ("ldm-866m", "ddim", 10, 24.0), ("ldm-866m", "ddim", 25, 20.0),
    ("ldm-866m", "dpmpp-2m", 5, 31.0), ("ldm-866m", "dpmpp-2m", 10, 22.0), ("ldm-866m", "dpmpp-2m", 25, 19.5),
]
# worked out by hand: at 100 ms dpm beats ddim; at 200 ms ldm-39m dpm (29) beats all; at 400 ms ldm-866m dpm (22)
# beats ddim (24); the 500 ms points (28, 28.5) are beaten by 22 at 400 ms; 19.5 at 1000 ms is the best
HAND_FRONTIER = [("ldm-39m", "dpmpp-2m", 10), ("ldm-39m", "dpmpp-2m", 20), ("ldm-866m", "dpmpp-2m", 10),
                 ("ldm-866m", "dpmpp-2m", 25)]
STEP_MS = {"ldm-39m": 10.0, "ldm-866m": 40.0}


def measured_points() -> list[QualityPoint]:
    return [qp(*row) for row in MEASURED]


def brute_force_frontier(rows: list[tuple[str, str, int, float, float]]) -> set[tuple[str, str, int]]:
    """(model, sampler, steps, latency, value) not dominated: no other at least as fast and good, better in one."""
    keep = set()
    for r in rows:
        dominated = any(o[3] <= r[3] and o[4] <= r[4] and (o[3] < r[3] or o[4] < r[4]) for o in rows)
        if not dominated:
            keep.add(r[:3])
    return keep


def test_png_is_written_and_frontier_is_the_non_dominated_set(tmp_path: Path):
    out = tmp_path / "plot.png"
    summary = plot_quality_vs_latency(measured_points(), make_profile(), out=out, budget_ms=300)
    assert isinstance(summary, PlotSummary)
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert summary.path == out and summary.series == 4 and summary.points == 12 and summary.basis == "measured"
    got = [(f["model"], f["sampler"], f["steps"]) for f in summary.frontier]
    assert got == HAND_FRONTIER
    rows = [(m, s, k, k * STEP_MS[m], v) for m, s, k, v in MEASURED]
    assert set(got) == brute_force_frontier(rows)
    first = summary.frontier[0]
    assert first == {"model": "ldm-39m", "sampler": "dpmpp-2m", "steps": 10, "latency_ms": 100.0, "value": 35.0}
    assert summary.to_json()["frontier"] == summary.frontier


def test_svg_is_written_and_parses(tmp_path: Path):
    out = tmp_path / "plot.SVG"
    plot_quality_vs_latency(measured_points(), make_profile(), out=out, budget_ms=250, title="test plot")
    root = ET.fromstring(out.read_bytes())
    assert root.tag.endswith("svg")
    text = out.read_text(encoding="utf-8")
    assert "budget 250 ms" in text and "Pareto frontier" in text


def test_points_the_profile_does_not_cover_are_ignored(tmp_path: Path):
    extra = [
        qp("ldm-5b", "ddim", 10, 5.0, params=5_000_000_000),  # model not in the profile
        qp("ldm-39m", "euler", 10, 5.0),  # sampler not in the profile
        qp("ldm-39m", "ddim", 10, 5.0, series="mei2024-table1"),  # not calibrated
        qp("ldm-39m", "ddim", 10, 5.0, metric="clip"),  # another metric
    ]
    summary = plot_quality_vs_latency(measured_points() + extra, make_profile(), out=tmp_path / "p.png")
    assert summary.points == 12 and summary.series == 4
    assert [(f["model"], f["sampler"], f["steps"]) for f in summary.frontier] == HAND_FRONTIER
    with pytest.raises(UsageError, match="nothing to plot: no calibrated fid points"):
        plot_quality_vs_latency(extra, make_profile(), out=tmp_path / "q.png")


def test_model_and_sampler_filters(tmp_path: Path):
    summary = plot_quality_vs_latency(measured_points(), make_profile(), out=tmp_path / "p.png",
                                      models=["ldm-39m"], samplers=["ddim"])
    assert summary.series == 1 and summary.points == 3
    assert [(f["steps"], f["value"]) for f in summary.frontier] == [(10, 40.0), (20, 30.0), (50, 28.0)]


def test_law_curves_are_drawn_next_to_measured_points(tmp_path: Path):
    law, _ = load_law()
    summary = plot_quality_vs_latency(measured_points(), make_profile(), law=law, out=tmp_path / "p.png")
    assert summary.series == 8 and summary.points == 12 and summary.basis == "measured"
    assert [(f["model"], f["sampler"], f["steps"]) for f in summary.frontier] == HAND_FRONTIER


def test_law_only_mode_with_the_shipped_law_and_profile(tmp_path: Path):
    law, _ = load_law()
    profile = load_profile(SHIPPED_PROFILE)
    out = tmp_path / "law.png"
    summary = plot_quality_vs_latency([], profile, law=law, out=out, budget_ms=20_000)
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert summary.basis == "law"
    non_distilled = [s.name for s in profile.samplers if s.name != "lcm" and s.name in law.curves]
    assert summary.series == len(profile.models) * len(non_distilled)
    assert summary.points == summary.series * 50
    lat = [f["latency_ms"] for f in summary.frontier]
    val = [f["value"] for f in summary.frontier]
    assert summary.frontier and lat == sorted(lat) and all(a > b for a, b in zip(val, val[1:]))
    assert all(f["sampler"] != "lcm" for f in summary.frontier)


@pytest.mark.parametrize("name", ["plot.pdf", "plot", "plot.png.txt"])
def test_unknown_suffix_is_refused(tmp_path: Path, name: str):
    with pytest.raises(UsageError, match=r"unknown format .*\(use \.png or \.svg\)"):
        plot_quality_vs_latency(measured_points(), make_profile(), out=tmp_path / name)
    assert not (tmp_path / name).exists()


def test_missing_folder_and_empty_data_are_refused(tmp_path: Path):
    with pytest.raises(UsageError, match="does not exist"):
        plot_quality_vs_latency(measured_points(), make_profile(), out=tmp_path / "nope" / "p.png")
    with pytest.raises(UsageError, match="is a folder; give a file name such as"):  # not "unknown format '(none)'"
        plot_quality_vs_latency(measured_points(), make_profile(), out=tmp_path)
    with pytest.raises(UsageError) as err:
        plot_quality_vs_latency([], make_profile(), out=tmp_path / "p.png")
    assert str(err.value).startswith("nothing to plot: no calibrated fid points") and "\n" not in str(err.value)
    assert "ldmpick calibrate" in str(err.value)
    with pytest.raises(UsageError, match="budget must be positive"):
        plot_quality_vs_latency(measured_points(), make_profile(), out=tmp_path / "p.png", budget_ms=0)
    assert list(tmp_path.iterdir()) == []


def pareto_frontier(points, lower_is_better=True):
    """The one frontier (the selector's) over plotted points."""
    return one_frontier(points, lower_is_better, cost=lambda p: p.latency_ms, value=lambda p: p.value)


def test_pareto_frontier_equals_brute_force_on_random_points():
    rng = random.Random(1234)
    for _ in range(200):
        pts = [PlotPoint("m", "s", i, float(rng.randint(1, 8)), float(rng.randint(1, 8)))
               for i in range(rng.randint(1, 12))]
        got = pareto_frontier(pts)
        rows = [(p.model, p.sampler, p.steps, p.latency_ms, p.value) for p in pts]
        # identical (latency, value) points: the frontier keeps one of them, brute force keeps all
        assert {(p.latency_ms, p.value) for p in got} == {(r[3], r[4]) for r in rows
                                                          if r[:3] in brute_force_frontier(rows)}
        assert len(got) == len({(p.latency_ms, p.value) for p in got})
        flipped = pareto_frontier([PlotPoint(p.model, p.sampler, p.steps, p.latency_ms, -p.value) for p in pts])
        higher = pareto_frontier(pts, lower_is_better=False)
        assert [(p.latency_ms, -p.value) for p in flipped] == [(p.latency_ms, p.value) for p in higher]


def test_clip_is_higher_is_better(tmp_path: Path):
    rows = [("ldm-39m", "ddim", 10, 0.25), ("ldm-39m", "ddim", 20, 0.24), ("ldm-866m", "ddim", 5, 0.29),
            ("ldm-866m", "ddim", 10, 0.30)]
    pts = [qp(m, s, k, v, metric="clip") for m, s, k, v in rows] + measured_points()  # fid points: ignored
    summary = plot_quality_vs_latency(pts, make_profile(), out=tmp_path / "clip.svg", metric="clip")
    assert summary.points == 4
    assert [(f["model"], f["steps"]) for f in summary.frontier] == [("ldm-39m", 10), ("ldm-866m", 5),
                                                                   ("ldm-866m", 10)]
    with pytest.raises(UsageError, match="unknown metric 'lpips'"):
        plot_quality_vs_latency(pts, make_profile(), out=tmp_path / "x.png", metric="lpips")


def test_importing_plotting_does_not_import_torch_or_matplotlib():
    code = ("import sys, ldmpick.plots.figure; "
            "bad = [m for m in ('torch', 'diffusers', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
