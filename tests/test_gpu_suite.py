"""The GPU suite (bench/gpu_suite.py, bench/GPU.md) runs on the CPU too, on the tiny demo models, so it cannot rot
between the sessions that draw a device: every part ends ok or skipped for a reason, what it leaves is what the
device tool can bring back (at most 8 plain files, no folders), and a suite cut off by its budget keeps the parts
that finished."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "bench" / "gpu_suite.py"


def _run(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SUITE), "--device", "cpu", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=600)


def _check_bundle(out: Path) -> dict:
    entries = list(out.iterdir())
    assert len(entries) <= 8 and not any(p.is_dir() for p in entries), entries
    doc = json.loads((out / "suite.json").read_text())
    assert doc["schema"] == "ldmpick.gpu-suite/1" and doc["fingerprint"]["kind"] == "cpu"
    return doc


@pytest.mark.slow
def test_the_cpu_smoke_run_of_every_part(tmp_path):
    out = tmp_path / "suite"
    r = _run(out)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = _check_bundle(out)
    status = {p["name"]: p["status"] for p in doc["parts"]}
    assert status == {"reference_profiles": "ok", "prediction": "ok", "budget_promise": "ok", "generate": "ok",
                      "repeatability": "ok", "real_families": "skipped", "families_2026": "skipped",
                      "knobs": "skipped"}, doc["parts"]
    from ldmpick.profiles.schema import load_profile

    prof = load_profile(out / "profile_eager.json")  # the reference profile part writes a real, loadable profile
    assert prof.model("demo-c8").ok and prof.settings.mode == "eager"
    promise = next(p for p in doc["parts"] if p["name"] == "budget_promise")["result"]
    # bench_budget_promise.py: fresh generate runs, one image without warm-up and five prompts warm
    assert promise["bench"] == "budget_promise"
    row = promise["results"][0]
    assert row["one_image_no_warmup"]["images"] == 1 and row["five_prompts_warm"]["images"] == 5, row


def test_a_suite_cut_off_by_its_budget_keeps_what_finished(tmp_path):
    out = tmp_path / "suite"
    r = _run(out, "--budget-s", "11", "--parts", "generate,repeatability")
    doc = _check_bundle(out)
    parts = {p["name"]: p for p in doc["parts"]}
    assert list(parts) == ["generate", "repeatability"], doc["parts"]
    assert parts["repeatability"]["status"] in ("skipped", "timed_out"), parts["repeatability"]
    assert r.returncode in (0, 1)


def test_bad_arguments_are_refused_before_anything_runs(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    r = _run(tmp_path / "full")
    assert r.returncode == 2 and "is not empty" in r.stderr
    r = _run(tmp_path / "new", "--parts", "nope")
    assert r.returncode == 2 and "unknown part" in r.stderr
