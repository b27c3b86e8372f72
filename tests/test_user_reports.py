"""Defects a new user found on the installed wheel, each pinned by a test (scratch LDMPICK_HOME, no GPU, no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldmpick.models.catalogue import resolve_model
from ldmpick.cli import app
from ldmpick.quality.table import QualityPoint, load_tables, table_text, user_table_path

runner = CliRunner()


# ---------------------------------------------------------------------------------- 1: forgetting your calibration

def small_calibration(model: str, dataset: str = "demo-world-32px") -> list[QualityPoint]:
    """What 'ldmpick calibrate --models MODEL --samplers ddim,euler --steps 1,2,4,8 --samples 8' adds."""
    params = resolve_model(model).denoiser_params
    return [QualityPoint(model, params, s, k, 2.0, 32, metric, 900.0 / k if metric == "fid" else 0.5, 8,
                         dataset, f"calibrated:{dataset}", "calibrated:a-test-profile")
            for s in ("ddim", "euler") for k in (1, 2, 4, 8) for metric in ("fid", "prompt_acc")]


def write_user_table(points: list[QualityPoint]) -> None:
    user_table_path().parent.mkdir(parents=True, exist_ok=True)
    user_table_path().write_text(table_text(points, "mine"), "utf-8")


DEMO = ["recommend", "--budget", "60ms", "--models", "demo-c8,demo-c16,demo-c80", "--json"]


def test_fit_forget_removes_your_rows_of_a_model_and_the_demo_works_again():
    write_user_table(small_calibration("demo-c8") + small_calibration("ldm-83m", "my-prompts"))
    assert runner.invoke(app, ["fit"]).exit_code == 0
    r = runner.invoke(app, DEMO)
    assert r.exit_code == 2 and "different scales" in r.stderr
    assert "drop your own rows with 'ldmpick fit --forget demo-c8'" in r.stderr  # the way out is named
    r = runner.invoke(app, ["fit", "--forget", "demo-c8", "--json"])
    assert r.exit_code == 0, r.output
    assert "forgot 16 rows" in r.stderr and "demo-c8: 16" in r.stderr and "law written to" in r.stderr
    user_rows = load_tables([])[-1][0]
    assert {p.model for p in user_rows} == {"ldm-83m"} and len(user_rows) == 16  # the other model's rows stay
    r = runner.invoke(app, DEMO)
    assert r.exit_code == 0, r.output
    # demo-c8's shipped rows count again (unipc and dpmpp-2m: the small calibration measured only ddim and euler)
    r = runner.invoke(app, ["recommend", "--budget", "60ms", "--models", "demo-c8", "--samplers", "unipc", "--json"])
    assert r.exit_code == 0, r.output


def test_fit_forget_of_an_unknown_model_or_one_without_rows_is_one_line_and_writes_nothing():
    write_user_table(small_calibration("demo-c8"))
    before = user_table_path().read_bytes()
    for names, message in (("demo-c9", "unknown model 'demo-c9'; did you mean 'demo-c8'?"),
                           ("demo-c8,demo-c16", "no rows of 'demo-c16' to forget"),
                           (",", "empty model list")):
        r = runner.invoke(app, ["fit", "--forget", names])
        assert r.exit_code == 2, r.output
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert user_table_path().read_bytes() == before
    user_table_path().unlink()
    r = runner.invoke(app, ["fit", "--forget", "demo-c8"])
    assert r.exit_code == 2 and "no quality table of your own" in r.stderr


def test_fit_forget_checks_the_rest_of_the_command_before_removing_anything(tmp_path):
    """--forget with an --out that cannot be written (or that would leave your own law fitted on the forgotten rows),
    or with a --table that does not exist, removed the rows and then failed."""
    write_user_table(small_calibration("demo-c8"))
    before = user_table_path().read_bytes()
    for extra, message in ((["--out", str(tmp_path / "law.json")], "leave out --out"),
                           (["--out", str(tmp_path / "no" / "law.json")], "leave out --out"),
                           (["--table", str(tmp_path / "missing.csv")], "missing.csv")):
        r = runner.invoke(app, ["fit", "--forget", "demo-c8", *extra])
        assert r.exit_code == 2 and message in r.stderr and "forgot" not in r.stderr, r.output
        assert user_table_path().read_bytes() == before


def test_fit_forget_takes_a_folder_as_the_other_commands_do(tmp_path):
    """A retrained tr/demo-c8 is calibrated as 'demo-c8@tr'; --forget tr/demo-c8 finds those rows."""
    import shutil
    from dataclasses import replace

    from ldmpick.models.catalogue import DEMO_MODELS_DIR

    folder = tmp_path / "tr" / "demo-c8"
    shutil.copytree(DEMO_MODELS_DIR / "demo-c8", folder)
    write_user_table([replace(p, model="demo-c8@tr") for p in small_calibration("demo-c8")])
    r = runner.invoke(app, ["fit", "--forget", str(folder)])
    assert r.exit_code == 0 and "forgot 16 rows" in r.stderr and "demo-c8@tr: 16" in r.stderr, r.output


# ---------------------------------------------------------------------------- 2: an ambiguous profile prefix

def import_a_local_copy_of_a_shipped_profile(tmp_path) -> str:
    """Import the shipped 128 px profile as if measured on 2026-11-25 (another id); returns its id."""
    import json

    from ldmpick.profiles.store import list_profile_files, shipped_profiles_dir

    shipped = next(p for p in list_profile_files(shipped_profiles_dir()) if "128px" in p.name)
    doc = json.loads(shipped.read_text("utf-8"))
    doc["created"] = "2026-11-25T10:00:00Z"
    doc.pop("id", None)
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(doc), "utf-8")
    r = runner.invoke(app, ["profiles", "import", str(mine)])
    assert r.exit_code == 0, r.output
    return json.loads(runner.invoke(app, ["profiles", "list", "--json"]).stdout)[0]["id"]


def test_a_prefix_of_local_and_shipped_profiles_is_ambiguous_and_an_exact_id_still_wins(tmp_path):
    import json

    local_id = import_a_local_copy_of_a_shipped_profile(tmp_path)
    assert local_id.startswith("20261125")
    rows = json.loads(runner.invoke(app, ["profiles", "list", "--json"]).stdout)
    assert len(rows) >= 2 and all(row["id"].startswith("2026") for row in rows)  # the shipped ones and the local
    r = runner.invoke(app, ["profiles", "export", "2026"])
    assert r.exit_code == 2, r.output
    assert "ambiguous" in r.stderr and f"{len(rows)} profiles match" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    for row in rows:  # every match is listed, local and shipped
        assert f"{row['where']} {row['id']}" in r.stderr
    # an exact id (or a prefix of one profile only) names that profile, local or shipped
    for row in rows:
        for ref in (row["id"], row["id"][:-1]):
            r = runner.invoke(app, ["profiles", "export", ref])
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["id"] == row["id"]
    r = runner.invoke(app, ["profiles", "export", "20261125"])  # the local one only
    assert r.exit_code == 0 and json.loads(r.stdout)["id"] == local_id
    # a shipped profile's file name still works
    r = runner.invoke(app, ["profiles", "show", "cpu-amd-epyc-2core-demo", "--json"])
    assert r.exit_code == 0, r.output
    # recommend --profile goes by the same rule (one lookup, profile_store.find_profile)
    r = runner.invoke(app, ["recommend", "--budget", "2s", "--profile", "2026"])
    assert r.exit_code == 2 and f"is ambiguous: {len(rows)} profiles match" in r.stderr, r.output


# ------------------------------------------------------------------------- 3: empty --out, a file in the way

def test_an_out_path_through_a_file_names_the_file(tmp_path):
    (tmp_path / "afile").write_text("")
    for args in (["fit", "--out", str(tmp_path / "afile" / "law.json")],
                 ["fit", "--out", str(tmp_path / "afile" / "sub" / "law.json")],
                 ["profiles", "export", "cpu-amd-epyc-2core-demo", "--out", str(tmp_path / "afile" / "p.json")]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, r.output
        assert r.stderr.strip() == f"error: --out: '{tmp_path / 'afile'}' is a file, not a folder"
    r = runner.invoke(app, ["fit", "--out", str(tmp_path / "nope" / "law.json")])  # a missing folder is still that
    assert r.exit_code == 2 and f"folder '{tmp_path / 'nope'}' does not exist" in r.stderr


def test_output_folder_and_empty_out_checks(tmp_path):
    from ldmpick.files.errors import UsageError
    from ldmpick.files.output_paths import check_output_folder, output_path

    (tmp_path / "afile").write_text("")
    with pytest.raises(UsageError, match=r"'.*afile' is a file, not a folder"):
        check_output_folder(tmp_path / "afile" / "sub")
    with pytest.raises(UsageError, match=r"--out '.*afile' is a file, not a folder"):
        check_output_folder(tmp_path / "afile")
    with pytest.raises(UsageError, match="creates only the last level"):
        check_output_folder(tmp_path / "missing" / "deeper")
    assert check_output_folder(tmp_path / "new") == tmp_path / "new" and not (tmp_path / "new").exists()
    for empty in ("", "  "):
        with pytest.raises(UsageError, match="--out is empty"):
            output_path(empty)
    assert output_path(".") == Path(".")


GENERATE = ["generate", "x", "--model", "demo-c8", "--sampler", "ddim", "--steps", "1"]


def test_generate_refuses_an_empty_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, [*GENERATE, "-o", ""])
    assert r.exit_code == 2 and "--out is empty" in r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder


def test_generate_into_a_folder_below_a_file_names_the_file(tmp_path):
    (tmp_path / "afile").write_text("")
    r = runner.invoke(app, [*GENERATE, "-o", str(tmp_path / "afile" / "sub")])
    assert r.exit_code == 2 and f"'{tmp_path / 'afile'}' is a file, not a folder" in r.stderr


# ------------------------------------------------------------------ 4: importing a CSV, an unknown sampler name

def test_importing_a_csv_says_it_is_not_a_json_profile_without_guessing_a_truncated_download(tmp_path):
    r = runner.invoke(app, ["profiles", "export", "cpu-amd-epyc-2core-demo", "--format", "csv",
                            "--out", str(tmp_path / "x.csv")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["profiles", "import", str(tmp_path / "x.csv")])
    assert r.exit_code == 2, r.output
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in r.output
    assert f"'{tmp_path / 'x.csv'}' is not a JSON profile (not valid JSON: it begins 'kind,name,status," in line
    assert "truncated" not in line
    # JSON cut short still reads as what it most likely is
    r = runner.invoke(app, ["profiles", "export", "cpu-amd-epyc-2core-demo", "--out", str(tmp_path / "x.json")])
    assert r.exit_code == 0, r.output
    (tmp_path / "cut.json").write_text((tmp_path / "x.json").read_text("utf-8")[:500], "utf-8")
    r = runner.invoke(app, ["profiles", "import", str(tmp_path / "cut.json")])
    assert r.exit_code == 2 and "truncated download?" in r.stderr
    for cut in (499, 501, 502, 503):  # wherever it is cut, in a string or between tokens
        (tmp_path / "cut.json").write_text((tmp_path / "x.json").read_text("utf-8")[:cut], "utf-8")
        r = runner.invoke(app, ["profiles", "import", str(tmp_path / "cut.json")])
        assert r.exit_code == 2 and "truncated download?" in r.stderr, (cut, r.stderr)
    # a mistake in the middle of a whole file is not a truncated download
    text = (tmp_path / "x.json").read_text("utf-8")
    (tmp_path / "typo.json").write_text(text.replace(",", ";", 1), "utf-8")
    r = runner.invoke(app, ["profiles", "import", str(tmp_path / "typo.json")])
    assert r.exit_code == 2 and "is not valid JSON (line" in r.stderr and "truncated" not in r.stderr, r.stderr


def test_importing_a_profile_with_an_unknown_sampler_is_refused_with_the_known_ones(tmp_path):
    import json

    from ldmpick.models.samplers import SAMPLERS
    from ldmpick.files.storage import profiles_dir

    shipped = json.loads(runner.invoke(app, ["profiles", "export", "cpu-amd-epyc-2core-demo"]).stdout)
    shipped["created"] = "2026-11-25T10:00:00Z"  # another id than the shipped one
    shipped.pop("id", None)
    overhead = dict(shipped["samplers"][0], name="bogus")
    fits = dict(shipped["models"][0], samplers=["ddim", "bogus"])
    for n, doc in enumerate((dict(shipped, samplers=[*shipped["samplers"], overhead]),
                             dict(shipped, models=[fits, *shipped["models"][1:]]))):
        path = tmp_path / f"bogus{n}.json"
        path.write_text(json.dumps(doc), "utf-8")
        r = runner.invoke(app, ["profiles", "import", str(path)])
        assert r.exit_code == 2, r.output
        assert f"'{path}': unknown sampler 'bogus'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert f"(valid: {', '.join(sorted(SAMPLERS))})" in r.stderr
    assert not list(profiles_dir().glob("*.json"))  # nothing was imported
    (tmp_path / "good.json").write_text(json.dumps(shipped), "utf-8")
    assert runner.invoke(app, ["profiles", "import", str(tmp_path / "good.json")]).exit_code == 0


# ------------------------------------------------------------------- 2026-12-07: a second new-user trial

def _demo_copy(root: Path, parent: str, name: str) -> Path:
    import shutil

    from ldmpick.models.catalogue import DEMO_MODELS, DEMO_MODELS_DIR

    dest = root / parent / name
    shutil.copytree(DEMO_MODELS_DIR / DEMO_MODELS["demo-c8"], dest)
    return dest


@pytest.mark.parametrize("command", ["profile", "calibrate"])
def test_two_folders_of_one_name_are_refused_before_measuring(tmp_path, command):
    a, b = _demo_copy(tmp_path, "runA", "final"), _demo_copy(tmp_path, "runB", "final")
    out = tmp_path / "p.json"
    extra = ["--out", str(out)] if command == "profile" else ["--samples", "2", "--steps", "1"]
    r = runner.invoke(app, [command, "--models", f"{a},{b}", *extra])
    assert r.exit_code == 2
    assert "both be recorded as 'final'" in r.stderr and "ldmpick models add NAME" in r.stderr
    assert not out.exists()  # nothing was measured or written


def test_one_model_asked_twice_in_two_forms_is_refused(tmp_path):
    a = _demo_copy(tmp_path, "m", "tiny")
    assert runner.invoke(app, ["models", "add", "tiny", str(a)]).exit_code == 0
    r = runner.invoke(app, ["profile", "--models", f"tiny,{a}", "--out", str(tmp_path / "p.json")])
    assert r.exit_code == 2 and "are the same model ('tiny'): name it once" in r.stderr


def test_recommend_and_plot_pass_over_your_profile_of_an_uncalibrated_model_and_say_so(tmp_path):
    mine = _demo_copy(tmp_path, "m", "mine")
    r = runner.invoke(app, ["profile", "--models", str(mine), "--repeats", "1", "--warmup", "0",
                            "--max-seconds", "1", "--samplers", "ddim"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["recommend", "--budget", "2s", "--json"])
    assert r.exit_code == 0, r.stderr  # it failed: 'no candidate configurations: mine: no quality data'
    assert "was passed over: none of its models (mine) has quality data" in r.stderr
    import json

    assert json.loads(r.stdout)["best"]["model"].startswith("ldm-")
    r = runner.invoke(app, ["plot", "--budget", "2s", "--out", str(tmp_path / "p.png")])
    assert r.exit_code == 0, r.stderr
    # asked by name, your profile is used, and what it lacks is said
    r = runner.invoke(app, ["recommend", "--budget", "2s", "--models", str(mine)])
    assert r.exit_code == 2 and "mine: no quality data" in r.stderr


def test_prompt_accuracy_without_models_uses_the_demo_profile_that_has_it():
    r = runner.invoke(app, ["recommend", "--budget", "50ms", "--metric", "prompt-acc", "--json"])
    assert r.exit_code == 0, r.stderr
    import json

    assert json.loads(r.stdout)["best"]["model"].startswith("demo-")


def test_measure_hints_name_a_folder_as_typed_quoted_and_never_a_model_without_weights(tmp_path):
    folder = _demo_copy(tmp_path, "my runs", "demo-c8")  # a folder named like a demo model, a space in its path
    prof = tmp_path / "p.json"
    r = runner.invoke(app, ["profile", "--models", str(folder), "--repeats", "1", "--warmup", "0",
                            "--max-seconds", "1", "--samplers", "ddim", "--out", str(prof)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["recommend", "-b", "200ms", "-p", str(prof), "--models", str(folder)])
    import shlex

    assert r.exit_code == 2
    # the label 'demo-c8@my runs' resolves to nothing; the folder, quoted for the shell, does
    assert f"'ldmpick calibrate --models {shlex.quote(str(folder))} --samplers ddim'" in r.stderr
    r = runner.invoke(app, ["recommend", "-b", "2s", "--metric", "prompt-acc", "--models", "ldm-39m"])
    assert r.exit_code == 2 and "configs only, no weights to measure it with" in r.stderr
    assert "calibrate --models ldm-39m" not in r.stderr  # (it failed: 'model ldm-39m has no weights')


def test_flops_cost_model_leaves_out_flow_samplers_and_refuses_options_it_ignores():
    r = runner.invoke(app, ["recommend", "-b", "3", "--cost-model", "flops"])
    assert r.exit_code == 0 and "flow-euler" not in r.stderr
    r = runner.invoke(app, ["recommend", "-b", "3", "--cost-model", "flops", "--resolution", "64", "--percentile", "50"])
    assert r.exit_code == 2 and "--resolution, --percentile do not apply to --cost-model flops" in r.stderr


@pytest.mark.parametrize("flag", ["--resolution", "--batch"])
def test_recommend_refuses_a_non_positive_resolution_or_batch(flag):
    r = runner.invoke(app, ["recommend", "-b", "2s", flag, "0"])
    assert r.exit_code == 2 and f"{flag} must be a positive number" in r.stderr
    assert "ldmpick profile" not in r.stderr  # it advised 'ldmpick profile --resolution 0'


def test_export_into_the_profile_folder_is_refused_and_the_stored_profile_kept(tmp_path):
    from ldmpick.files.storage import profiles_dir

    mine = _demo_copy(tmp_path, "m", "mine")
    assert runner.invoke(app, ["profile", "--models", str(mine), "--repeats", "1", "--warmup", "0",
                               "--max-seconds", "1", "--samplers", "ddim"]).exit_code == 0
    (stored,) = profiles_dir().glob("*.json")
    before = stored.read_bytes()
    r = runner.invoke(app, ["profiles", "export", stored.stem, "-f", "csv", "-o", str(stored)])
    assert r.exit_code == 2 and "in the profile folder" in r.stderr and "profiles import" in r.stderr
    assert stored.read_bytes() == before  # (it was replaced by CSV, and the measurement was lost)
    r = runner.invoke(app, ["profiles", "export", stored.stem, "-f", "csv", "-o", str(tmp_path / "p.csv")])
    assert r.exit_code == 0 and (tmp_path / "p.csv").read_text().count("\n") > 2


def test_empty_profile_reference_is_named_as_such():
    r = runner.invoke(app, ["profiles", "export", ""])
    assert r.exit_code == 2 and "empty profile reference" in r.stderr  # it said "profile '.' is a folder"


def test_diff_of_profiles_at_different_resolutions_says_so():
    r = runner.invoke(app, ["profiles", "list", "--json"])
    import json

    rows = [x for x in json.loads(r.stdout) if x["where"] == "shipped" and x["problem"] is None]
    by_px = {x["settings"].split("px")[0]: x["id"] for x in rows}
    assert len(by_px) >= 2
    a, b = list(by_px.values())[:2]
    r = runner.invoke(app, ["profiles", "diff", a, b])
    assert r.exit_code == 0 and "measured at different settings" in r.stderr


def test_a_partial_profile_used_by_file_is_flagged(tmp_path):
    import json

    from ldmpick.profiles.store import find_profile

    doc = json.loads(find_profile("20261123041825").read_text())
    doc["complete"] = False
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(doc))
    for command in (["profiles", "show", str(partial)], ["recommend", "-b", "2s", "-p", str(partial)]):
        r = runner.invoke(app, command)
        assert r.exit_code == 0 and "partial profile" in r.stderr, command


def test_profile_refuses_a_fifo_out_before_measuring(tmp_path):
    import os

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    r = runner.invoke(app, ["profile", "--models", "demo-c8", "--repeats", "1", "--out", str(fifo)])
    assert r.exit_code == 2 and "not a regular file" in r.stderr
    assert "measured" not in r.stderr and not (tmp_path / "fifo.json.partial.json").exists()


def test_a_file_system_refusal_is_one_plain_line_and_exit_2():
    r = runner.invoke(app, ["recommend", "-b", "2s", "--models", "a" * 300])
    assert r.exit_code == 2, r.stderr
    assert "File name too long" in r.stderr and "Errno" not in r.stderr and "OSError" not in r.stderr


def test_does_not_fit_says_the_memory_the_rule_needs_not_only_the_weights(monkeypatch):
    from ldmpick.measurement import profiler as profiling

    monkeypatch.setattr(profiling, "available_memory_bytes", lambda device: 20 * 2**30)
    reason = profiling._too_big(4_000_000_000, "fp32", "cpu", "denoiser")  # 14.9 GiB of weights: 19.1 < 20 free
    assert reason is None
    reason = profiling._too_big(4_400_000_000, "fp32", "cpu", "denoiser")  # 16.4 GiB: 21.0 needed > 20 free
    assert reason is not None and "needs about 21.0 GiB (16.4 GiB of weights" in reason and "20.0 GiB free" in reason


def test_models_add_names_a_mistyped_folder_and_a_dangling_link_and_refuses_all(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    r = runner.invoke(app, ["models", "add", "x", "runs/fnial"])
    assert r.exit_code == 2 and "folder 'runs/fnial' does not exist" in r.stderr
    assert "huggingface-cli download" not in r.stderr  # it was taken for a hub id
    (tmp_path / "gone").symlink_to(tmp_path / "nothing")
    r = runner.invoke(app, ["models", "add", "y", "gone"])
    assert r.exit_code == 2 and "a link to something that does not exist" in r.stderr
    r = runner.invoke(app, ["models", "add", "all", str(_demo_copy(tmp_path, "m", "mine"))])
    assert r.exit_code == 2 and "'all' means every model" in r.stderr


def test_a_second_profile_run_to_the_same_out_is_told_to_pick_another_out(tmp_path):
    from ldmpick.jobs.profile import ProfileOutput, claimed

    out = ProfileOutput(tmp_path / "p.json", tmp_path / "p.json.partial.json")
    with claimed(out):
        with pytest.raises(Exception) as err:
            with claimed(out):
                pass
    assert "give another --out" in str(err.value)


def test_plot_latencies_are_at_recommends_percentile_by_default(tmp_path):
    import json

    def frontier(*extra):
        r = runner.invoke(app, ["plot", "-b", "60ms", "--models", "demo-c8,demo-c16,demo-c80", "-o",
                                str(tmp_path / "p.png"), "--json", *extra])
        assert r.exit_code == 0, r.stderr
        return {(f["model"], f["sampler"], f["steps"]): f["latency_ms"] for f in json.loads(r.stdout)["frontier"]}

    p90, p90_named, p50 = frontier(), frontier("--percentile", "90"), frontier("--percentile", "50")
    assert p90 == p90_named  # the default is recommend's p90 (it was the median: points left of the budget line
    shared = set(p90) & set(p50)  # were configurations recommend rejects)
    assert shared and all(p90[k] >= p50[k] for k in shared) and any(p90[k] > p50[k] for k in shared)
    r = runner.invoke(app, ["plot", "--percentile", "0", "-o", str(tmp_path / "q.png")])
    assert r.exit_code == 2 and "--percentile must be between 1 and 99" in r.stderr


def test_generate_budget_prefers_a_profile_measured_with_the_guidance_it_runs_with(tmp_path):
    """A no-CFG profile of the demo models (half the denoiser work) was chosen over the shipped CFG one, and the run
    then guided at 4 with a prediction half the real cost."""
    import json

    from ldmpick.profiles.store import find_profile

    shipped = find_profile("20261128110507")
    doc = json.loads(shipped.read_text())
    doc["settings"]["cfg"] = False
    for m in doc["models"]:  # as 'ldmpick profile --no-cfg' writes it: each step measured without the doubled batch
        m["cfg"] = False
    doc["created"] = "2026-12-01T00:00:00Z"
    nocfg = tmp_path / "nocfg.json"
    nocfg.write_text(json.dumps(doc))
    r = runner.invoke(app, ["profiles", "import", str(nocfg)])
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(app, ["generate", "a red circle", "--budget", "60ms", "-o", str(tmp_path / "o"), "--seed", "1"])
    assert r.exit_code == 0, r.stderr
    assert "20261128110507" in r.stderr and "this run: True" not in r.stderr
    r = runner.invoke(app, ["generate", "a red circle", "--budget", "60ms", "--guidance", "1", "-o",
                            str(tmp_path / "o1"), "--seed", "1"])
    assert r.exit_code == 0, r.stderr
    assert "2026120100" in r.stderr  # unguided: the profile measured without CFG


def test_demo_training_never_writes_into_the_package_and_never_over_a_finished_model_of_another_recipe(tmp_path):
    from ldmpick.models.catalogue import DEMO_MODELS_DIR
    from ldmpick.calibration.image_quality import judge_dir

    for command in (["demo", "train-judge", "-o", str(judge_dir()), "--images", "128", "--steps", "1"],
                    ["demo", "train", "-o", str(DEMO_MODELS_DIR), "--channels", "8"]):
        r = runner.invoke(app, command)
        assert r.exit_code == 2 and "inside the installed ldmpick package" in r.stderr, command
    (tmp_path / "afile").write_text("x")
    r = runner.invoke(app, ["demo", "train", "-o", str(tmp_path / "afile")])
    assert r.exit_code == 2 and "is a file, not a folder" in r.stderr  # (it trained the VAE first)

    out = tmp_path / "dtr"
    tiny = ["demo", "train", "-o", str(out), "--images", "32", "--vae-steps", "2", "--batch", "4", "--channels", "8"]
    assert runner.invoke(app, [*tiny, "--unet-steps", "6"]).exit_code == 0
    weights = (out / "demo-c8" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    r = runner.invoke(app, [*tiny, "--unet-steps", "6"])  # the same command again: kept, not retrained
    assert r.exit_code == 0 and "already trained" in r.stderr
    r = runner.invoke(app, [*tiny, "--unet-steps", "2"])  # another recipe: refused (it replaced the model)
    assert r.exit_code == 2 and "trained with another recipe (unet_steps differ)" in r.stderr
    r = runner.invoke(app, [*tiny[:-1], "16", "--unet-steps", "2", "--vae-steps", "3"])  # would replace the VAE
    assert r.exit_code == 2 and "would replace it" in r.stderr
    assert (out / "demo-c8" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == weights


def test_train_judge_makes_its_out_folder(tmp_path):
    r = runner.invoke(app, ["demo", "train-judge", "-o", str(tmp_path / "new"), "--images", "128", "--steps", "1"])
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "new" / "world_judge.safetensors").is_file()


def test_calibrate_samplers_all_runs_each_model_with_the_samplers_that_fit_it():
    import json

    r = runner.invoke(app, ["calibrate", "--models", "demo-c8", "--samplers", "all", "--steps", "1", "--samples", "2",
                            "--batch", "2", "--no-fit", "--json"])
    assert r.exit_code == 0, r.stderr  # it failed: "sampler 'heun' does not fit 'demo-c8'"
    ran = {row["sampler"] for row in json.loads(r.stdout)["results"]}
    assert ran == {"ddim", "ddpm", "dpmpp-2m", "euler", "euler-a", "unipc"}


def test_generate_says_when_the_quality_is_for_another_guidance_and_a_negative_prompt_does_nothing(tmp_path):
    r = runner.invoke(app, ["generate", "a red circle", "--budget", "100ms", "--guidance", "1", "--negative-prompt",
                            "blue", "-o", str(tmp_path / "o"), "--seed", "3"])
    assert r.exit_code == 0, r.stderr
    assert "the predicted FID is for guidance 4" in r.stderr and "this run uses 1" in r.stderr
    assert "--negative-prompt has no effect at guidance 1" in r.stderr
    r = runner.invoke(app, ["generate", "a red circle", "--budget", "100ms", "-o", str(tmp_path / "p"), "--seed", "3"])
    assert r.exit_code == 0 and "the predicted FID is for guidance" not in r.stderr


def test_fit_out_never_replaces_a_file_that_is_not_a_law(tmp_path):
    victim = tmp_path / "prompts.txt"
    victim.write_text("a prompt\n")
    r = runner.invoke(app, ["fit", "--out", str(victim)])
    assert r.exit_code == 2 and "is not a law file" in r.stderr and victim.read_text() == "a prompt\n"
    law = tmp_path / "law.json"
    assert runner.invoke(app, ["fit", "--out", str(law)]).exit_code == 0
    assert runner.invoke(app, ["fit", "--out", str(law)]).exit_code == 0  # an earlier law is replaced


def test_calibrate_checks_your_quality_table_before_measuring():
    from ldmpick.calibration import driver as calib
    from ldmpick.jobs.calibrate import build_request

    user_table_path().parent.mkdir(parents=True, exist_ok=True)
    user_table_path().write_text("model,unet_params,sampler,steps\ndemo-c8,1,ddim,5\n", "utf-8")
    r = runner.invoke(app, ["calibrate", "--models", "demo-c8", "--samplers", "ddim", "--steps", "1", "--samples",
                            "2", "--batch", "2"])
    assert r.exit_code == 2 and "the results would go into that table" in r.stderr
    req = build_request(models="demo-c8", samplers="ddim", steps=[1], samples=2, seed=0, guidance=None, batch=2,
                        device=None, dtype=None, reference=None, prompts_file=None, inception_weights=None)
    assert not calib.partial_path(req).exists()  # nothing was measured


def test_fp16_on_the_cpu_is_refused_alike_by_profile_generate_and_calibrate(tmp_path):
    for command in (["calibrate", "--models", "demo-c8", "--samplers", "ddim", "--steps", "1", "--samples", "2",
                     "--dtype", "fp16", "--device", "cpu"],
                    ["generate", "x", "--model", "demo-c8", "--sampler", "ddim", "--steps", "1", "--dtype", "fp16",
                     "--device", "cpu", "-o", str(tmp_path / "o")],
                    ["profile", "--models", "demo-c8", "--dtype", "fp16", "--device", "cpu", "--out",
                     str(tmp_path / "p.json")]):
        r = runner.invoke(app, command)
        assert r.exit_code == 2 and "fp16 on the CPU is not supported" in r.stderr, command


def test_the_record_of_an_interrupted_run_says_it_is_incomplete(tmp_path, monkeypatch):
    import json

    from ldmpick.generation import record as generation_record

    args = ["generate", "a red circle", "--model", "demo-c8", "--sampler", "ddim", "--steps", "1", "--seed", "1"]
    r = runner.invoke(app, [*args, "-o", str(tmp_path / "done"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["complete"] is True

    def interrupted(self, result):
        raise KeyboardInterrupt

    monkeypatch.setattr(generation_record.GenerationRecord, "finish", interrupted)
    r = runner.invoke(app, [*args, "-o", str(tmp_path / "cut")])
    assert r.exit_code == 130
    (sidecar,) = (tmp_path / "cut").glob("*-run.json")
    doc = json.loads(sidecar.read_text())
    assert doc["complete"] is False and "scheduler_class" not in doc and doc["images"]


def test_a_dangling_link_as_out_folder_is_named_as_such(tmp_path):
    (tmp_path / "gone").symlink_to(tmp_path / "nothing")
    r = runner.invoke(app, ["generate", "x", "--model", "demo-c8", "--sampler", "ddim", "--steps", "1", "-o",
                            str(tmp_path / "gone")])
    assert r.exit_code == 2 and "a link to something that does not exist" in r.stderr


def test_a_library_oserror_keeps_its_message(monkeypatch):
    """diffusers/transformers raise EnvironmentError(message) for broken checkpoints: it has no errno, and the
    file-system form showed only 'OSError (OSError)'."""
    import ldmpick.planning.recommendation

    def broken(*args, **kwargs):
        raise EnvironmentError("Error no file named diffusion_pytorch_model.bin found in directory /m/unet.")

    monkeypatch.setattr(ldmpick.planning.recommendation, "recommend", broken)
    r = runner.invoke(app, ["recommend", "-b", "2s"])
    assert r.exit_code == 1 and "OSError: Error no file named diffusion_pytorch_model.bin" in r.stderr


def test_ldmpick_mode_in_the_environment_does_not_break_the_flops_cost_model(monkeypatch):
    monkeypatch.setenv("LDMPICK_MODE", "eager")
    assert runner.invoke(app, ["recommend", "-b", "10", "--cost-model", "flops"]).exit_code == 0
    r = runner.invoke(app, ["recommend", "-b", "10", "--cost-model", "flops", "--mode", "eager"])
    assert r.exit_code == 2 and "--mode does not apply" in r.stderr


def test_generate_with_model_and_budget_does_not_call_a_better_model_weightless(tmp_path):
    r = runner.invoke(app, ["generate", "a red circle", "--model", "demo-c8", "--budget", "2s", "-o",
                            str(tmp_path / "o"), "--seed", "1"])
    assert r.exit_code == 0, r.stderr
    assert "using demo-c8, as --model asks" in r.stderr and "which has no weights" not in r.stderr


def test_a_reader_that_goes_away_ends_the_run_quietly_with_141():
    """'ldmpick recommend ... | head -2' exited 1 (rich's broken-pipe exit), a runtime failure under pipefail."""
    import subprocess
    import sys

    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # gone before the first write: deterministic
    p = subprocess.run([sys.executable, "-m", "ldmpick.cli", "recommend", "--budget", "2s"], stdout=write_end,
                       stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    assert p.returncode == 141 and "Traceback" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr


def test_a_prompt_outside_the_demo_world_gets_a_note(tmp_path):
    r = runner.invoke(app, ["generate", "a red fox in the snow", "--budget", "100ms", "-o", str(tmp_path / "o"),
                            "--seed", "1"])
    assert r.exit_code == 0, r.stderr
    assert "the demo family knows only its shapes world, and not 'fox', 'snow'" in r.stderr
    r = runner.invoke(app, ["generate", "A small Blue cross at the top left on a white background", "--budget",
                            "100ms", "-o", str(tmp_path / "p"), "--seed", "1"])
    assert r.exit_code == 0 and "knows only its shapes world" not in r.stderr


HEADER = "model,unet_params,sampler,steps,guidance,resolution,metric,value,num_samples,dataset,series,source\n"


def test_fit_never_writes_a_law_it_cannot_read_back(tmp_path):
    """A calibration of a flow model (flow-euler) made 'fit' write a law that law/recommend then refused as
    malformed (an anchor with a sampler that has no published step curve)."""
    import json

    many = tmp_path / "flow_cal.csv"
    many.write_text(HEADER + "".join(f"sana-1.6b,,flow-euler,{s},4.5,1024,fid,{30 + 100 / s},256,mine,calibrated:mine,"
                                     "me\n" for s in (1, 2, 4, 8, 16, 32)))
    out = tmp_path / "law.json"
    assert runner.invoke(app, ["fit", "--table", str(many), "-o", str(out)]).exit_code == 0
    r = runner.invoke(app, ["law", "--law", str(out), "--model", "sana-1.6b", "--sampler", "flow-euler", "--steps",
                            "4,64", "--json"])
    assert r.exit_code == 0, r.stderr
    four, sixty_four = json.loads(r.stdout)["predictions"]
    assert four["basis"] == "calibrated:mine" and not four["flags"]
    assert "beyond the calibrated steps: measured up to 32" in sixty_four["flags"][0]  # (it said nothing)
    one = tmp_path / "one.csv"
    one.write_text(HEADER + "sana-1.6b,,flow-euler,4,4.5,1024,fid,40,256,mine,calibrated:mine,me\n")
    r = runner.invoke(app, ["fit", "--table", str(one), "-o", str(out)])
    assert r.exit_code == 0 and "not used: the rows of sana-1.6b flow-euler" in r.stderr
    assert runner.invoke(app, ["law", "--law", str(out)]).exit_code == 0


@pytest.mark.parametrize("row, message", [
    ("sd-1.5,,nosampler,4,7.5,512,fid,20,256,d,anchor:me,me", "unknown sampler 'nosampler'"),
    ("sd-1.5,,ddim,2.5,7.5,512,fid,20,256,d,anchor:me,me", "'steps' must be a whole number (got '2.5')"),
    ("sd-1.5,,ddim,4,7.5,512,fid,abc,256,d,anchor:me,me", "'value' must be a number (got 'abc')"),
])
def test_a_bad_table_row_is_named_plainly(tmp_path, row, message):
    table = tmp_path / "t.csv"
    table.write_text(HEADER + row + "\n")
    r = runner.invoke(app, ["fit", "--table", str(table), "-o", str(tmp_path / "law.json")])
    assert r.exit_code == 2 and message in r.stderr and not (tmp_path / "law.json").exists()


def test_the_paper_scale_note_is_not_given_for_a_model_without_quality_data(tmp_path):
    import json

    from ldmpick.profiles.store import find_profile

    doc = json.loads(find_profile("20261128110507").read_text())
    for m in doc["models"]:
        if m["name"] == "demo-c16":
            m["name"] = "my-unet"  # no quality data anywhere: on no scale
    prof = tmp_path / "mine.json"
    prof.write_text(json.dumps(doc))
    r = runner.invoke(app, ["recommend", "--budget", "60ms", "--profile", str(prof)])
    assert r.exit_code == 0, r.stderr
    assert "paper's scale" not in r.stderr  # (the pick is on the demo world's scale, as the explanation says)


def test_a_profile_whose_summary_contradicts_its_samples_is_refused(tmp_path):
    """Edited medians (0.5 ms) with 21 ms samples: 'profiles show' said 0.5 ms while recommend planned 21.6 ms."""
    import json

    from ldmpick.profiles.store import find_profile

    doc = json.loads(find_profile("20261128110507").read_text())
    step = next(m for m in doc["models"] if m["name"] == "demo-c80")["denoiser_step"]
    step.update(median_ms=0.5, p10_ms=0.4, p90_ms=0.6, min_ms=0.3, max_ms=0.7)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    r = runner.invoke(app, ["profiles", "import", str(edited)])
    assert r.exit_code == 2 and "but its samples_ms say" in r.stderr


def test_published_scales_say_where_their_data_starts_instead_of_no_data():
    import json

    r = runner.invoke(app, ["law", "--model", "sdxl-base", "--sampler", "ddim", "--steps", "1,50", "--metric",
                            "geneval", "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    one, fifty = doc["predictions"]
    # issue 27: below its one published point the value rests on its kind's step response, and says so, with a
    # wide interval; it is never held flat or extrapolated silently
    assert one["basis"] == "transferred" and "transferred from the epsilon/v UNet" in one["basis_detail"]
    assert one["interval"][0] <= one["value"] <= one["interval"][1] and one["value"] < fifty["value"]
    assert one["interval"][1] - one["interval"][0] > 10 * (fifty["interval"][1] - fifty["interval"][0])
    assert fifty["basis"] == "published" and "no_data" not in doc  # (it advised calibrating a configs-only model)


def test_a_run_at_another_resolution_than_the_profile_gets_no_prediction(tmp_path):
    import json

    r = runner.invoke(app, ["generate", "a red circle", "--model", "demo-c8", "--sampler", "ddim", "--steps", "2",
                            "--resolution", "64", "--seed", "1", "-o", str(tmp_path / "o"), "--json"])
    assert r.exit_code == 0, r.stderr
    assert "no latency prediction: profile" in r.stderr and "measured 32 px, this run is 64 px" in r.stderr
    assert json.loads(r.stdout)["prediction"] is None


def test_rows_added_without_a_refit_are_pointed_out():
    """After 'calibrate --no-fit', recommend said 'no quality data ... calibrate' where 'ldmpick fit' was missing."""
    write_user_table(small_calibration("demo-c8"))
    r = runner.invoke(app, DEMO)
    assert "changed after your law was fitted" in r.stderr and "'ldmpick fit'" in r.stderr
    assert runner.invoke(app, ["fit"]).exit_code == 0
    r = runner.invoke(app, DEMO)
    assert "changed after your law was fitted" not in r.stderr
