"""After an upgrade that retrains the demo family, what a user measured of the old models (same names, other
weights) must not be taken for the new ones: their calibrated quality rows are left out of fits, and a law the user
refitted on an older shipped quality table is passed over, with a notice saying how to refit."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ldmpick.models.catalogue import resolve_model
from ldmpick.cli import app
from ldmpick.quality.law import load_law, passed_over_user_law, shipped_law_path, user_law_path
from ldmpick.quality.table import QualityPoint, load_tables, table_text, user_table_path

runner = CliRunner()


def old_demo_rows(params: int) -> list[QualityPoint]:
    return [QualityPoint("demo-c8", params, s, k, 2.0, 32, "fid", 900.0 / k, 512, "demo-world-32px",
                         "calibrated:demo-world-32px", "calibrated:an-old-profile")
            for s in ("ddim", "dpmpp-2m") for k in (1, 2, 4, 8)]


def test_calibrations_of_another_model_under_a_demo_name_are_left_out_of_the_fit():
    user_table_path().parent.mkdir(parents=True, exist_ok=True)
    user_table_path().write_text(table_text(old_demo_rows(51_000), "an older release's calibration"), "utf-8")
    user_rows = load_tables([])[-1][0]
    assert user_rows == []
    r = runner.invoke(app, ["fit", "--json"])  # the fit says what it left out, and why
    assert r.exit_code == 0, r.output
    assert "left out the rows of demo-c8" in r.stderr and "another model under a built-in name" in r.stderr
    # the same rows with the installed model's parameter count are the user's own calibration, and count
    installed = resolve_model("demo-c8").denoiser_params
    user_table_path().write_text(table_text(old_demo_rows(installed), "mine"), "utf-8")
    assert len(load_tables([])[-1][0]) == 8


def test_a_law_refitted_on_an_older_shipped_table_is_passed_over_with_a_notice():
    law = json.loads(shipped_law_path().read_text(encoding="utf-8"))
    law["provenance"]["shipped_table_sha256"] = "0" * 64  # fitted on another table
    user_law_path().parent.mkdir(parents=True, exist_ok=True)
    user_law_path().write_text(json.dumps(law), encoding="utf-8")
    assert load_law()[1] == shipped_law_path() and passed_over_user_law(load_law()[1])
    r = runner.invoke(app, ["recommend", "--budget", "2s", "--json"])
    assert r.exit_code == 0, r.output
    assert "fitted on another ldmpick's shipped quality table" in r.stderr and "ldmpick fit" in r.stderr
    # refitting makes it the user's current law again, and the notice goes
    assert runner.invoke(app, ["fit", "--json"]).exit_code == 0
    assert load_law()[1] == user_law_path() and not passed_over_user_law(load_law()[1])
    r = runner.invoke(app, ["recommend", "--budget", "2s", "--json"])
    assert r.exit_code == 0 and "fitted on another" not in r.stderr


def test_the_shipped_law_was_fitted_on_the_shipped_table():
    """The shipped law records the table it was fitted on; a table edited without refitting ('ldmpick fit --out
    ldmpick/data/quality_law.json') would ship predictions of other data."""
    from ldmpick.quality.table import shipped_table_digest

    law = json.loads(shipped_law_path().read_text(encoding="utf-8"))
    assert law["provenance"]["shipped_table_sha256"] == shipped_table_digest()
