"""The quality law reproduces the paper's own facts, and its file round-trips."""

from __future__ import annotations

import json

import pytest

from ldmpick.errors import UsageError
from ldmpick.scaling_law import (
    QualityLaw,
    QualityPoint,
    fit_law,
    load_law,
    read_table,
    shipped_law_path,
    shipped_table_path,
)
from ldmpick.costs.flops import cost_rows as cost_rows_flops
from ldmpick.selector import select_config

TABLE1 = {"ldm-39m": 25.30, "ldm-83m": 24.30, "ldm-145m": 24.18, "ldm-223m": 23.76, "ldm-318m": 22.83,
          "ldm-430m": 22.35, "ldm-558m": 22.15, "ldm-704m": 21.82, "ldm-866m": 21.55, "ldm-2b": 20.98, "ldm-5b": 20.14}


@pytest.fixture(scope="module")
def law() -> QualityLaw:
    return load_law(shipped_law_path())[0]


def params(law: QualityLaw, name: str) -> int:
    return {m: n for m, n, _ in law.size_points}[name]


def test_table1_within_0_3_fid_at_50_ddim_steps(law):
    for name, fid in TABLE1.items():
        assert law.predict_fid(params(law, name), "ddim", 50).value == pytest.approx(fid, abs=0.3), name


def test_smooth_size_term_is_honest_about_its_fit(law):
    # the log-linear law alone misses Table 1 by up to ~0.45 FID: that is why sizes inside the table interpolate it
    assert 0.1 < law.smooth_rms < 0.4
    assert law.smooth_b > 0  # quality improves with size


def test_paper_cost_3_ddim_best_size_is_83m(law):
    sel = select_config(cost_rows_flops(law, None, ["ddim"]), law, 3.0)
    assert sel.best.model == "ldm-83m"
    assert sel.best.steps == 23  # 3 / 0.13
    # and the paper's step counts for the other sizes at that cost
    by_model = {c.model: c.steps for c in sel.top + sel.frontier}
    assert by_model.get("ldm-145m", 15) == 15


def test_small_models_win_small_costs_large_models_large_costs(law):
    rows = cost_rows_flops(law, None, ["ddim"])
    small = select_config(rows, law, 1.0).best
    large = select_config(rows, law, 400.0).best
    assert small.unet_params <= params(law, "ldm-145m")
    assert large.model == "ldm-5b"
    winners = [select_config(rows, law, b).best.unet_params
               for b in (0.5, 1, 2, 3, 6, 12, 25, 50, 100, 250, 500)]
    assert winners == sorted(winners)  # the best size grows with the budget


def test_dpm_solver_beats_ddim_at_the_same_steps_up_to_20(law):
    for name in TABLE1:
        for steps in range(1, 21):
            assert law.predict_fid(params(law, name), "dpmpp-2m", steps).value < \
                law.predict_fid(params(law, name), "ddim", steps).value, (name, steps)


def test_more_steps_never_hurt_and_the_deficit_vanishes(law):
    for sampler, curve in law.curves.items():
        values = [curve.deficit(s) for s in range(1, 200)]
        assert values == sorted(values, reverse=True), sampler
        assert curve.deficit(5000) < 0.05, sampler


def test_shipped_law_is_what_fit_produces_from_the_shipped_table(law):
    refit = fit_law([(read_table(shipped_table_path().read_text(), "t"), "t")])
    for name, curve in law.curves.items():
        assert refit.curves[name].C == pytest.approx(curve.C, rel=1e-4), name
        assert refit.curves[name].p == pytest.approx(curve.p, rel=1e-4), name
    assert refit.size_points == law.size_points
    assert law.provenance["command"].startswith("ldmpick fit")


def test_uncertainty_grows_outside_the_data(law):
    inside = law.predict_fid(params(law, "ldm-866m"), "ddim", 50)
    far = law.predict_fid(50 * params(law, "ldm-5b"), "ddim", 50)
    assert far.basis == "extrapolated" and far.sigma > inside.sigma > 0
    few = law.predict_fid(params(law, "ldm-866m"), "ddim", 2)
    assert few.sigma > inside.sigma  # few steps: the step curve's own uncertainty dominates


def test_anchor_shifts_predictions_for_a_model_outside_the_family():
    base = read_table(shipped_table_path().read_text(), "t")
    anchor = QualityPoint("my-sd", 859_520_964, "dpmpp-2m", 20, 7.5, 512, "fid", 9.5, 5000, "mine",
                          "calibrated:test-profile", "calibrated:test-profile")
    law = fit_law([(base, "t"), ([anchor], "user")])
    at_anchor = law.predict_fid(859_520_964, "dpmpp-2m", 20, model="my-sd")
    assert at_anchor.value == pytest.approx(9.5) and at_anchor.basis == "anchor"
    fewer = law.predict_fid(859_520_964, "dpmpp-2m", 8, model="my-sd")
    assert fewer.value > 9.5
    # an unanchored model of the same size is predicted on the paper's scale instead
    assert law.predict_fid(859_520_964, "dpmpp-2m", 20).value > 20


def test_clip_metric_prefers_larger_models_and_more_steps(law):
    small = law.predict_clip(params(law, "ldm-39m"), "ddim", 50).value
    big = law.predict_clip(params(law, "ldm-5b"), "ddim", 50).value
    assert big > small
    assert law.predict_clip(params(law, "ldm-866m"), "ddim", 3).value < law.predict_clip(params(law, "ldm-866m"), "ddim", 50).value


def test_law_file_round_trip_and_refusals(law, tmp_path):
    again = QualityLaw.from_json(json.loads(json.dumps(law.to_json())))
    assert again.predict_fid(params(law, "ldm-318m"), "unipc", 7).value == pytest.approx(
        law.predict_fid(params(law, "ldm-318m"), "unipc", 7).value)
    bad = law.to_json()
    bad["schema"] = "ldmpick.law/2"
    with pytest.raises(UsageError, match="not a quality law file"):
        QualityLaw.from_json(bad)
    broken = law.to_json()
    broken["curves"]["ddim"]["p"] = -1
    with pytest.raises(UsageError, match="invalid parameters"):
        QualityLaw.from_json(broken)
    f = tmp_path / "law.json"
    f.write_text("{")
    with pytest.raises(UsageError, match="unreadable"):
        load_law(f)


@pytest.mark.parametrize("row, message", [
    ("m,,ddim,0,7.5,512,fid,20,1,d,s,src", "steps >= 1"),
    ("m,,ddim,5,7.5,512,fid,nan,1,d,s,src", "finite"),
    ("m,,ddim,five,7.5,512,fid,20,1,d,s,src", "invalid literal"),
])
def test_bad_quality_rows_are_refused(row, message):
    header = "model,unet_params,sampler,steps,guidance,resolution,metric,value,num_samples,dataset,series,source"
    with pytest.raises(UsageError, match=message):
        read_table(header + "\n" + row + "\n", "t")


def test_between_the_paper_sizes_the_size_term_predicts_a_held_out_size_within_half_an_fid(law):
    """Table 1 is reproduced exactly by construction; this is the check that can fail: drop one interior size
    from the law, predict it from its neighbours, and compare with the paper (and with the law's own sigma)."""
    doc = law.to_json()
    errors = {}
    for i in range(1, len(doc["size"]["points"]) - 1):
        held = doc["size"]["points"][i]
        thinned = json.loads(json.dumps(doc))
        del thinned["size"]["points"][i]
        pred = QualityLaw.from_json(thinned).predict_fid(held["unet_params"], "ddim", 50)
        assert pred.basis == "interpolated"
        errors[held["model"]] = pred.value - held["fid"]
        assert abs(errors[held["model"]]) < 0.5, held["model"]
        assert abs(errors[held["model"]]) < 2 * pred.sigma, held["model"]  # the sigma is not over-confident
    assert max(abs(e) for e in errors.values()) > 0.05  # and the check is not vacuous


def test_fitted_law_records_its_provenance_and_versions(law):
    prov = law.provenance
    assert prov["command"] == "ldmpick fit --out ldmpick/data/quality_law.json"
    assert {"ldmpick", "python", "numpy", "scipy"} <= set(prov["versions"])
    assert "Mei et al. 2024 arXiv 2404.01367 Table 1" in prov["data"]


def test_step_curves_fit_their_published_points_within_a_quarter(law):
    """One power law per sampler over 1-20 steps of three protocols is a compromise; the law file lists every point
    it was fitted to with its fitted value, and the misses stay within 25% (largest at 2-4 steps)."""
    rows = law.provenance["step_curve_fit"]
    assert len(rows) == 18 and {r["sampler"] for r in rows} == {"ddim", "dpmpp-2m"}
    for r in rows:
        assert abs(r["fitted"] - r["fid"]) / r["fid"] < 0.25, r
    # in the region recommendations land in (8-20 steps, COCO, cfg 7.5: the paper's protocol) within 12.5%
    for r in rows:
        if r["series"].startswith("sd14"):
            assert abs(r["fitted"] - r["fid"]) / r["fid"] < 0.125, r
