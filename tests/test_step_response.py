"""Step responses that transfer: fitted to every published sweep, applied to a model with one published point,
labelled with what they rest on, with intervals whose held-out coverage is what the docs say."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.quality.law import load_law, shipped_law_path
from ldmpick.quality.response_fit import Sweep, fit_response, fit_step_responses
from ldmpick.quality.scales import SCALES, series_from_points
from ldmpick.quality.step_response import BelowSweeps, Response, ScaleUnit, StepResponses
from ldmpick.quality.table import load_published, read_table, shipped_table_path

runner = CliRunner()


@pytest.fixture(scope="module")
def law():
    return load_law(shipped_law_path())[0]


@pytest.fixture(scope="module")
def fitted():
    rows: list = []
    points = read_table(shipped_table_path().read_text(encoding="utf-8"), "t")
    return fit_step_responses(points, series_from_points(load_published()), [], rows), rows


def test_a_response_is_recovered_from_sweeps_that_follow_it():
    unit = ScaleUnit(0.1, False, "test")
    sweeps = [Sweep(f"s{i}", f"m{i}", "x", "flow/1", "flow-euler",
                    [(k, (off - 2.0 * k ** -1.5) * 0.1) for k in (4, 8, 16, 32)]) for i, off in enumerate((3.0, 5.0))]
    r = fit_response(sweeps, {"x": unit})
    assert r.p == pytest.approx(1.5) and r.A == pytest.approx(2.0, rel=1e-3)
    assert (r.min_steps, r.max_steps, r.models) == (4, 32, ["m0", "m1"])


def test_held_out_points_fall_inside_the_80_percent_interval_at_least_70_percent_of_the_time(fitted):
    resp, rows = fitted
    total = covered = 0
    for kind in ("other-model", "other-scale"):
        c = resp.coverage[kind]
        assert c["points"] >= 50 and c["covered"] / c["points"] >= 0.70, (kind, c)
        total, covered = total + c["points"], covered + c["covered"]
    assert len(rows) == total and sum(r["covered"] for r in rows) == covered
    # FLUX.1-dev's two DrawBench scales and SD3-Medium's two RAS scales are among them, both ways
    held = {(r["scale"], r["kind"]) for r in rows}
    assert {("drawbench-clip", "other-scale"), ("drawbench-imagereward", "other-scale"),
            ("ras-coco-fid", "other-scale")} <= held


def test_the_shipped_law_carries_the_responses_the_docs_show(law, fitted):
    resp, _ = fitted
    assert law.responses is not None
    assert law.responses.coverage == resp.coverage and law.responses.widths == resp.widths
    assert set(law.responses.groups) >= {"flow/1", "distilled", "unet/1", "unet/2"}
    for scale in ("drawbench-imagereward", "drawbench-clip", "ras-coco-fid", "ras-coco-clip"):
        assert scale in SCALES and law.responses.units[scale].basis.startswith("borrowed from")


def query(*args):
    r = runner.invoke(app, ["law", "--json", *args])
    assert r.exit_code == 0, r.output
    return {p["steps"]: p for p in json.loads(r.stdout)["predictions"]}


def test_flux_dev_below_its_published_50_steps_is_transferred_with_its_basis():
    got = query("--model", "flux-dev", "--sampler", "flow-euler", "--metric", "geneval", "--steps", "1,2,4,8,20,28,50")
    assert got[50]["basis"] == "published" and got[50]["value"] == pytest.approx(0.67)
    for k in (1, 2):  # below the fewest steps of any flow sweep (SD3-Medium's 4)
        assert got[k]["value"] is None and "below the fewest steps any sweep it rests on covers (4)" in got[k]["basis"]
    for k in (20, 28):  # FLUX.1-dev's own DrawBench sweeps (11-50 steps), another scale
        assert got[k]["basis"] == "transferred"
        assert got[k]["basis_detail"].startswith("transferred from flux-dev's own drawbench-clip, "
                                                 "drawbench-imagereward sweeps (11-50 steps, another scale)")
    for k in (4, 8):  # below 11: the flow sweeps of its kind
        assert got[k]["basis_detail"].startswith("transferred from the flow-matching order-1 sweeps of flux-dev, "
                                                 "sd3-medium (4-50 steps")
    values = [got[k]["value"] for k in (4, 8, 20, 28, 50)]
    assert values == sorted(values)  # fewer steps never predicted better
    width = {k: got[k]["interval"][1] - got[k]["interval"][0] for k in (8, 20, 28, 50)}
    assert width[8] > width[20] > width[28] > width[50]  # the further it moved, the wider


def test_sana_below_20_steps_is_transferred_and_a_second_order_sampler_says_what_stands_in():
    got = query("--model", "sana-1.6b", "--sampler", "flow-dpmpp-2m", "--metric", "mjhq-fid", "--steps", "4,8,20")
    assert got[20]["basis"] == "published" and got[20]["value"] == pytest.approx(5.76)
    assert got[8]["basis"] == "transferred" and got[8]["value"] > 5.76  # a worse FID at fewer steps
    assert any("no flow-matching order-2 sweep is published" in f for f in got[8]["flags"])


def test_a_distilled_model_uses_its_own_sweeps(law):
    p = law.predict("sd3.5-large-turbo", "flow-euler", 3, "geneval")
    assert p is not None and p.basis == "transferred" and "sd3.5-large-turbo's own" in p.detail
    assert 0.53 <= p.value <= 0.72 and p.low < p.value < p.high


def test_below_the_sweeps_a_transfer_is_refused():
    r = Response(A=1.0, p=1.0, min_steps=4, max_steps=50, models=["m"])
    resp = StepResponses(groups={"flow/1": r}, units={"geneval": ScaleUnit(0.1, False, "t")})
    with pytest.raises(BelowSweeps, match=r"covers \(4\)"):
        resp.transfer("x", "flow-euler", 3, "geneval", 50, 0.6, "flow-euler")
    t = resp.transfer("x", "flow-euler", 4, "geneval", 50, 0.6, "flow-euler")
    assert t.basis == "transferred" and t.value == pytest.approx(0.6 - 0.1 * (1 / 4 - 1 / 50))
    assert t.low < t.value < t.high


def test_old_law_files_without_responses_still_read(law):
    from ldmpick.quality.law import QualityLaw

    doc = law.to_json()
    doc.pop("step_response")
    old = QualityLaw.from_json(doc)
    assert old.responses is None and old.predict("flux-dev", "flow-euler", 28, "geneval") is None
    assert old.predict("flux-dev", "flow-euler", 50, "geneval").basis == "published"


def test_fit_turns_your_calibrated_rows_into_the_models_step_response(ldmpick_home):
    """Calibrated rows of flux-dev at several step counts (its own FID scale) become its measured step response,
    which then moves its GenEval prediction (labelled)."""
    from ldmpick.quality.table import TABLE_COLUMNS, user_table_path

    rows = [f"flux-dev,,flow-euler,{k},3.5,1024,fid,{fid},256,my-prompts,calibrated:test,calibrated:test"
            for k, fid in ((4, 80.0), (8, 40.0), (16, 30.0), (28, 27.0), (50, 26.0))]
    user_table_path().parent.mkdir(parents=True, exist_ok=True)
    user_table_path().write_text(",".join(TABLE_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    r = runner.invoke(app, ["fit"])
    assert r.exit_code == 0, r.output
    got = query("--model", "flux-dev", "--sampler", "flow-euler", "--metric", "geneval", "--steps", "4,8,28")
    for k in (4, 8, 28):
        assert got[k]["basis"] == "calibrated-response", got[k]
        assert got[k]["basis_detail"].startswith("calibrated step response (my-prompts, fid, 4-50 steps)")
    assert got[4]["value"] < got[8]["value"] < got[28]["value"] < 0.67


SCORER = "clip-score:clip-vit-large-patch14-0a1b2c3d:parti-48:1024px"


def test_a_scorer_calibration_is_its_own_scale_and_moves_the_published_scales(ldmpick_home):
    """One model at five step counts on a reference-free scorer's scale ('calibrate --scorer clip'): ranked on
    that scale alone (never merged with the paper's clip), and its step response moves its published GenEval."""
    pytest.importorskip("ldmpick.quality.scorer_scales")
    from ldmpick.quality.table import TABLE_COLUMNS, user_table_path

    rows = [f"flux-dev,,flow-euler,{k},3.5,1024,{SCORER},{v},48,parti-48,calibrated:parti-48,calibrated:test"
            for k, v in ((4, 24.0), (8, 29.0), (16, 31.0), (28, 31.6), (50, 31.8))]
    user_table_path().parent.mkdir(parents=True, exist_ok=True)
    user_table_path().write_text(",".join(TABLE_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    r = runner.invoke(app, ["fit"])
    assert r.exit_code == 0, r.output
    own = query("--model", "flux-dev", "--sampler", "flow-euler", "--metric", SCORER, "--steps", "4,16,50")
    assert [own[k]["value"] for k in (4, 16, 50)] == pytest.approx([24.0, 31.0, 31.8], abs=0.05)
    assert own[16]["basis"] == "calibrated:parti-48" and "parti-48" in own[16]["scale"]
    clip = query("--model", "flux-dev", "--sampler", "flow-euler", "--metric", "clip", "--steps", "16")
    assert clip[16]["value"] is None  # the paper's CLIP stays the paper's family's
    got = query("--model", "flux-dev", "--sampler", "flow-euler", "--metric", "geneval", "--steps", "8,28")
    assert got[8]["basis"] == "calibrated-response"
    assert got[8]["basis_detail"].startswith(f"calibrated step response (parti-48, {SCORER}, 4-50 steps)")
    assert got[8]["value"] < got[28]["value"] < 0.67


def test_law_shows_the_responses_and_their_held_out_coverage(law):
    r = runner.invoke(app, ["law"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "Step responses: R(k) = -A·k^-p in scale units" in text and "flow-matching order-1" in text
    c = law.responses.coverage["other-model"]
    assert f"cover {c['covered']} of {c['points']} held-out published points" in text
