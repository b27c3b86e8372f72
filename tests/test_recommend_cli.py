"""`ldmpick recommend`, `fit` and `law` through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.profiles.store import list_profile_files, shipped_profiles_dir

from test_selector import H100_EAGER, H100_GRAPH, make_profile

runner = CliRunner()


def test_recommend_works_on_a_fresh_machine_with_the_shipped_profile():
    assert list_profile_files(shipped_profiles_dir())
    r = runner.invoke(app, ["recommend", "--budget", "2s", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["best"]["latency"] <= 2.0
    assert doc["source"]["profile_choice"] in ("shipped-match", "shipped-default")
    assert "ldmpick profile" in r.stderr  # the notice says how to measure this machine
    parts = doc["best"]["parts"]
    assert parts["text_encoder"] + parts["denoise"] + parts["vae_decode"] == pytest.approx(doc["best"]["latency"])


def test_recommend_human_output_has_the_pieces(tmp_path):
    p = tmp_path / "h100.json"
    p.write_text(make_profile(H100_GRAPH, mode="cudagraph").dumps())
    r = runner.invoke(app, ["recommend", "--budget", "500ms", "--profile", str(p)])
    assert r.exit_code == 0, r.output
    for piece in ("Recommended within 500 ms", "predicted FID", "Top", "Pareto frontier", "text encoder"):
        assert piece in r.stdout, piece
    assert "measured on another device" in r.stderr or "using profile" in r.stderr


def test_flops_cost_model_reproduces_the_paper_without_a_profile():
    r = runner.invoke(app, ["recommend", "--cost-model", "flops", "--budget", "3", "--samplers", "ddim", "--json"])
    assert r.exit_code == 0, r.output
    best = json.loads(r.stdout)["best"]
    assert (best["model"], best["sampler"], best["steps"]) == ("ldm-83m", "ddim", 23)


def test_eager_h100_profile_gives_a_different_answer_than_flops(tmp_path):
    p = tmp_path / "eager.json"
    p.write_text(make_profile(H100_EAGER).dumps())
    r = runner.invoke(app, ["recommend", "--budget", "0.96s", "--profile", str(p), "--samplers", "ddim", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["best"]["model"] != "ldm-83m"


@pytest.mark.parametrize("args, message", [
    (["--budget", "abc"], "not a number"),
    (["--budget", "-1s"], "must be positive"),
    (["--budget", "2 parsecs"], "unknown unit"),
    (["--budget", "1ms"], "below the fastest possible configuration"),
    (["--budget", "2s", "--percentile", "0"], "--percentile must be between 1 and 99"),
    (["--budget", "2s", "--metric", "lpips"], "unknown metric 'lpips'"),
    (["--budget", "2s", "--cost-model", "watts"], "unknown cost model 'watts'"),
    (["--budget", "2s", "--max-steps", "0"], "--max-steps must be between 1 and 10000"),
    (["--budget", "2s", "--max-steps", "1000000000"], "--max-steps must be between 1 and 10000"),
    (["--budget", "2s", "--samplers", "ddim2"], "unknown sampler 'ddim2'"),
    (["--budget", "2s", "--models", "ldm-1t"], "unknown model 'ldm-1t'"),
    (["--budget", "2s", "--models", "ldm-83"], "unknown model 'ldm-83'; did you mean 'ldm-83m'?"),
    (["--budget", "2s", "--models", "ldm-83m,demo-c8"], "no profile measures all of ldm-83m, demo-c8 (ldm-83m: '"),
    (["--budget", "2s", "--resolution", "1024"], "'ldmpick profile --resolution 1024'"),
    (["--budget", "2s", "--profile", "nope"], "no profile named 'nope'"),
    (["--budget", "3s", "--cost-model", "flops"], "sampling-cost units"),
    (["--budget", "3", "--cost-model", "flops", "--models", "my-model"], "knows only the paper's family"),
])
def test_recommend_bad_input_is_one_line(args, message):
    r = runner.invoke(app, ["recommend"] + args)
    assert r.exit_code == 2, r.output
    assert r.stderr.splitlines()[-1].startswith("error: ") and message in r.stderr.splitlines()[-1]
    assert "Traceback" not in r.output


def test_recommend_does_not_import_torch_or_diffusers():
    code = ("import sys; from ldmpick.cli import app\n"
            "try:\n    app(['recommend', '--budget', '3s', '--json'])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'scipy', 'pandas') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout


def test_fit_writes_a_versioned_law_that_recommend_then_uses(tmp_path, ldmpick_home):
    r = runner.invoke(app, ["fit"])
    assert r.exit_code == 0, r.output
    law_file = ldmpick_home / "data" / "quality_law.json"
    doc = json.loads(law_file.read_text())
    assert doc["schema"] == "ldmpick.law/1" and doc["provenance"]["command"].startswith("ldmpick")
    r = runner.invoke(app, ["law", "--json"])
    assert r.exit_code == 0 and str(law_file) in r.stderr
    grid = json.loads(r.stdout)["grid"]
    assert grid["ddim"]["ldm-866m"]["50"] == pytest.approx(21.55, abs=0.01)
    r = runner.invoke(app, ["law"])
    assert "Predicted FID — dpmpp-2m" in r.stdout


def test_fit_with_a_bad_table_is_one_line(tmp_path):
    t = tmp_path / "mine.csv"
    t.write_text("model,steps\nx,1\n")
    r = runner.invoke(app, ["fit", "--table", str(t)])
    assert r.exit_code == 2 and "missing columns" in r.stderr


def test_mode_must_match_the_profile(tmp_path):
    p = tmp_path / "eager.json"
    p.write_text(make_profile(H100_EAGER).dumps())
    r = runner.invoke(app, ["recommend", "--budget", "1s", "--profile", str(p), "--mode", "cudagraph"])
    assert r.exit_code == 2 and "'ldmpick profile --mode cudagraph'" in r.stderr
    r = runner.invoke(app, ["recommend", "--budget", "1s", "--profile", str(p), "--mode", "turbo"])
    assert r.exit_code == 2 and "unknown execution mode 'turbo'" in r.stderr


def test_user_anchor_row_moves_a_registered_model(tmp_path, ldmpick_home):
    """A quality anchor declared in the user's table is used for that model name after 'ldmpick fit'."""
    from ldmpick.quality.table import TABLE_COLUMNS, user_table_path

    user_table_path().parent.mkdir(parents=True, exist_ok=True)
    user_table_path().write_text(",".join(TABLE_COLUMNS) + "\n" +
                                 "ldm-866m,,dpmpp-2m,25,7.5,512,fid,9.0,30000,mine,anchor:test,anchor:test\n")
    assert runner.invoke(app, ["fit"]).exit_code == 0
    r = runner.invoke(app, ["law", "--json"])
    assert json.loads(r.stdout)["anchors"]["ldm-866m"]["fid"] == 9.0
    prof = tmp_path / "g.json"
    prof.write_text(make_profile(H100_GRAPH, mode="cudagraph").dumps())
    r = runner.invoke(app, ["recommend", "--budget", "2s", "--profile", str(prof), "--samplers", "dpmpp-2m", "--json"])
    best = json.loads(r.stdout)["best"]
    assert best["model"] == "ldm-866m" and best["basis"] == "anchor" and best["quality"] < 10


def test_the_id_in_the_notice_can_be_passed_back_as_profile():
    r = runner.invoke(app, ["recommend", "--budget", "3s", "--json"])
    pid = json.loads(r.stdout)["source"]["profile"]
    r = runner.invoke(app, ["recommend", "--budget", "3s", "--profile", pid, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["source"]["profile"] == pid


def test_one_step_is_said_as_one_step_everywhere_in_the_explanation():
    """At a budget where only 1-step configurations fit, the explanation reads '1 step', never '1 steps'."""
    from ldmpick.models.samplers import steps_text

    assert (steps_text(1), steps_text(8), steps_text(1, "unipc")) == ("1 step", "8 steps", "1 unipc step")
    from ldmpick.models.catalogue import DEMO_MODELS
    from ldmpick.costs.latency import cost_rows
    from ldmpick.profiles.choice import choose_profile

    models = list(DEMO_MODELS)
    rows = cost_rows(choose_profile(None, models=models).profile, models, ["ddim", "dpmpp-2m", "euler", "unipc"],
                     90.0, [])
    one, two = (min(r.fixed + k * r.per_step for r in rows) for k in (1, 2))
    budget_ms = (one + two) / 2 * 1e3  # a 1-step configuration fits, no 2-step one does
    r = runner.invoke(app, ["recommend", "--budget", f"{budget_ms:.2f}ms", "--models", ",".join(models)])
    assert r.exit_code == 0, r.output
    assert " at 1 step " in r.stdout and "1 steps" not in r.stdout and "1 dpmpp-2m steps" not in r.stdout
    assert "-parameter denoiser)" in r.stdout  # not "UNet params": transformer families have no UNet


def test_a_sampler_that_cannot_run_the_models_is_named_with_why_and_never_suggested_for_measuring():
    """heun cannot rescale the demo models' zero-terminal-SNR betas: asking for it alone used to end in 'no models or
    samplers', which sent people looking for a missing model, and then in advice to profile heun, which profile
    refuses."""
    r = runner.invoke(app, ["recommend", "--budget", "100ms", "--models", "demo-c8,demo-c16,demo-c80",
                            "--samplers", "heun"])
    assert r.exit_code == 2 and r.stderr.splitlines()[-1].startswith("error: "), r.output
    assert ("sampler heun: does not fit demo-c8, demo-c16, demo-c80 (its diffusers class cannot rescale the betas"
            in r.stderr), r.stderr
    assert "--samplers heun" not in r.stderr and "not measured" not in r.stderr, r.stderr
    # with a sampler that fits, heun is still named as left out
    r = runner.invoke(app, ["recommend", "--budget", "100ms", "--models", "demo-c8", "--samplers", "heun,ddim",
                            "--json"])
    assert r.exit_code == 0 and any(e.startswith("sampler heun: does not fit demo-c8")
                                    for e in json.loads(r.stdout)["excluded"]), r.output


def test_law_refuses_a_sampler_the_model_cannot_run_instead_of_suggesting_a_calibration_that_fails():
    r = runner.invoke(app, ["law", "--model", "demo-c16", "--sampler", "heun", "--steps", "4"])
    assert r.exit_code == 2 and r.stderr.splitlines()[-1].startswith("error: sampler 'heun' does not fit 'demo-c16'")
    assert "ldmpick calibrate" not in r.stdout + r.stderr
    r = runner.invoke(app, ["law", "--model", "demo-c16", "--sampler", "ddim", "--steps", "4", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["predictions"][0]["value"] > 0, r.output


def test_law_names_a_folder_as_its_calibration_rows_do(tmp_path):
    """law --model tr/mymodel looks the quality up under the name calibrate keeps the folder's rows by, not under the
    literal path (which no row ever has)."""
    import shutil

    from ldmpick.models.catalogue import DEMO_MODELS_DIR

    folder = tmp_path / "tr" / "mymodel"
    shutil.copytree(DEMO_MODELS_DIR / "demo-c8", folder)
    r = runner.invoke(app, ["law", "--model", str(folder), "--sampler", "ddim", "--steps", "4", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model"] == "mymodel"


@pytest.mark.parametrize("option, message", [("--models", "empty model list"), ("--samplers", "empty sampler list")])
def test_an_empty_list_is_an_error_not_the_default(option, message):
    """'--models ""' (an unset shell variable) meant every model in recommend but was an error in profile."""
    r = runner.invoke(app, ["recommend", "--budget", "2s", option, ""])
    assert r.exit_code == 2 and r.stderr.splitlines()[-1].startswith(f"error: {message}"), r.output


def test_a_budget_below_the_default_models_points_to_the_demo_family():
    r = runner.invoke(app, ["recommend", "--budget", "60ms", "--profile", "cpu-amd-epyc-2core-128px-fp32-eager"])
    assert r.exit_code == 2 and "is below the fastest possible configuration" in r.stderr, r.output
    assert "--models demo-c8,demo-c16,demo-c80" in r.stderr
    r = runner.invoke(app, ["recommend", "--budget", "60ms", "--models", "demo-c8,demo-c16,demo-c80", "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["recommend", "--budget", "1ms", "--models", "demo-c8,demo-c16,demo-c80"])
    assert r.exit_code == 2 and "raise the budget" in r.stderr and "--models demo" not in r.stderr, r.output
