"""`ldmpick profile` and `ldmpick models` end to end on CPU with tiny config-only models."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.profiles.schema import load_profile
from ldmpick.profiles.store import list_profile_files
from ldmpick.files.storage import profiles_dir

runner = CliRunner()


def test_profile_writes_a_valid_profile_to_the_user_folder(tiny_models):
    small, large = tiny_models
    r = runner.invoke(app, ["profile", "--models", f"{small},{large}", "--device", "cpu", "--resolution", "32",
                            "--samplers", "ddim,euler", "--repeats", "5", "--max-seconds", "2", "--json"])
    assert r.exit_code == 0, r.output
    files = list_profile_files(profiles_dir())
    assert len(files) == 1
    p = load_profile(files[0])
    assert json.loads(r.stdout) == p.to_json()
    assert p.settings.resolution == 32 and p.settings.mode == "eager" and p.settings.dtype == "fp32"
    assert p.command.startswith("ldmpick ") or p.command == "ldmpick "  # CliRunner has no real argv
    assert [m.name for m in p.models] == ["tiny-small", "tiny-large"]
    assert not list(profiles_dir().glob("*.partial.json"))


def test_profile_to_explicit_file_and_bad_outputs(tiny_models, tmp_path):
    small, _ = tiny_models
    out = tmp_path / "p.json"
    args = ["profile", "--models", str(small), "--device", "cpu", "--resolution", "32", "--samplers", "ddim",
            "--repeats", "3", "--max-seconds", "1"]
    assert runner.invoke(app, args + ["--out", str(out)]).exit_code == 0
    assert load_profile(out).models[0].ok
    r = runner.invoke(app, args + ["--out", str(tmp_path / "missing" / "p.json")])
    assert r.exit_code == 2 and "does not exist" in r.stderr
    r = runner.invoke(app, args + ["--resume", "--out", str(tmp_path / "q.json")])
    assert r.exit_code == 2 and "no partial profile" in r.stderr


def test_profile_bad_inputs_are_one_line_errors(tiny_models):
    cases = [
        (["--models", "ldm-39x"], "unknown model 'ldm-39x'; did you mean 'ldm-39m'?"),
        (["--models", ","], "empty model list"),
        (["--device", "cuda"], "no CUDA GPU is available"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--resolution", "500"], "not a multiple of 8"),
        (["--samplers", "eulr"], "did you mean 'euler'"),
        (["--mode", "cudagraph", "--device", "cpu"], "needs a CUDA device"),
    ]
    for extra, message in cases:
        r = runner.invoke(app, ["profile", "--device", "cpu"] + extra if "--device" not in extra else ["profile"] + extra)
        assert r.exit_code == 2, (extra, r.output)
        assert r.stderr.startswith("error: ") and message in r.stderr, (extra, r.stderr)
        assert r.stderr.count("\n") == 1


def test_models_list_computes_parameter_counts():
    r = runner.invoke(app, ["models", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert len([n for n in rows if n.startswith("ldm-")]) == 11
    assert rows["ldm-866m"]["unet_params_m"] == 865.9
    assert rows["ldm-39m"]["unet_params_m"] == 38.8
    assert rows["ldm-2b"]["unet_params_m"] == 2191.7
    assert not rows["ldm-866m"]["weights"]
    r = runner.invoke(app, ["models", "list"])
    assert "865.9M" in r.stdout


def _quick(models: str) -> list[str]:
    return ["profile", "--models", models, "--device", "cpu", "--resolution", "32", "--samplers", "ddim",
            "--warmup", "0", "--repeats", "3", "--max-seconds", "1"]


def test_interrupted_rerun_refuses_and_offers_resume_or_restart(tiny_models, monkeypatch):
    """Issue 11 item 2: a rerun of an interrupted 'profile' does not silently overwrite its partial file."""
    import ldmpick.measurement.profiler as profiling

    small, large = tiny_models
    args = _quick(f"{small},{large}")
    real = profiling.measure_denoiser

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(profiling, "measure_denoiser", interrupted)
    r = runner.invoke(app, args)
    assert r.exit_code == 130 and "rerun with --resume (the same command)" in r.stderr, r.output
    (partial,) = profiles_dir().glob("*.partial.json")
    kept = partial.read_text()
    monkeypatch.setattr(profiling, "measure_denoiser", real)
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert r.stderr == (f"error: an interrupted profile run is kept in '{partial}'; continue it with --resume, "
                        "or discard it with --restart\n")
    assert partial.read_text() == kept  # untouched
    r = runner.invoke(app, args + ["--resume", "--restart"])
    assert r.exit_code == 2 and "give --resume or --restart, not both" in r.stderr
    r = runner.invoke(app, args + ["--resume"])
    assert r.exit_code == 0 and "resuming from" in r.stderr, r.output
    assert not partial.exists()
    # --restart discards a kept partial and measures afresh
    monkeypatch.setattr(profiling, "measure_denoiser", interrupted)
    runner.invoke(app, args)
    monkeypatch.setattr(profiling, "measure_denoiser", real)
    assert runner.invoke(app, args + ["--restart"]).exit_code == 0
    assert not list(profiles_dir().glob("*.partial.json")) and len(list_profile_files(profiles_dir())) == 2


def test_runs_in_the_same_second_get_their_own_ids_and_partials(tiny_models, monkeypatch):
    """Issue 11 item 3: two runs in the default folder in the same second (one clock) never share an id or a
    partial file; a second run of the very same request while the first measures is refused, not merged."""
    from datetime import datetime, timezone

    import ldmpick.measurement.profiler as profiling
    from ldmpick.jobs import profile as profile_job

    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 11, 28, 3, 0, 0, tzinfo=timezone.utc)

    monkeypatch.setattr(profiling, "datetime", FrozenClock)
    small, large = tiny_models
    # run A is measuring (it holds its partial) when run B, of other models, starts and finishes in the same second
    req_a = profile_job.build_request(models=str(small), device="cpu", dtype=None, resolution=32, batch=1, cfg=True,
                                      mode=None, samplers="ddim", warmup=0, repeats=3, max_seconds=1.0, threads=None,
                                      rounds=1, command="")
    out_a = profile_job.plan_output(None, req_a)
    with profile_job.claimed(out_a):
        out_a.partial.write_text("run A's measurements so far")
        r = runner.invoke(app, _quick(str(small)))  # the very same request as A: refused, A's partial intact
        assert r.exit_code == 1 and "another 'ldmpick profile' run is measuring into" in r.stderr, r.output
        assert runner.invoke(app, _quick(str(large))).exit_code == 0
        assert out_a.partial.read_text() == "run A's measurements so far"
    out_a.partial.unlink()
    assert runner.invoke(app, _quick(str(large))).exit_code == 0  # and again, same request, same second
    profiles = [load_profile(f) for f in list_profile_files(profiles_dir())]
    assert len(profiles) == 2 and len({p.id for p in profiles}) == 2
    assert {p.created for p in profiles} == {"2026-11-28T03:00:00Z"}
    assert all(p.id.startswith("20261128030000-") for p in profiles)


BAD_OPTIONS = [
    (["--max-seconds", "nan"], "--max-seconds must be a number of seconds in (0, 86400] (got nan)"),
    (["--max-seconds", "inf"], "--max-seconds must be a number of seconds in (0, 86400] (got inf)"),
    (["--max-seconds", "0"], "--max-seconds must be a number of seconds"),
    (["--threads", "-1"], "Invalid value for '--threads'"),  # refused at parse time (cli.options.ThreadsOpt, min 1)
    (["--threads", "0"], "Invalid value for '--threads'"),
    (["--repeats", "0"], "--repeats must be between 1 and 10000 (got 0)"),
    (["--repeats", "100000"], "--repeats must be between 1 and 10000 (got 100000)"),
    (["--warmup", "-1"], "--warmup must be between 0 and 1000 (got -1)"),
    (["--rounds", "0"], "--rounds must be between 1 and 100"),
    (["--batch", "0"], "--batch must be between 1 and 64 (got 0)"),
    (["--resolution", "-32"], "--resolution -32 is out of range"),
    (["--resolution", "0"], "--resolution 0 is out of range"),
    (["--resolution", "100000"], "--resolution 100000 is out of range"),
    (["--models", "demo-c8,ldm-39m"], "the models have different native resolutions (demo-c8 32 px, ldm-39m 512 px); "
                                      "give --resolution"),
]


@pytest.mark.parametrize("extra,message", BAD_OPTIONS, ids=[" ".join(e) for e, _ in BAD_OPTIONS])
def test_bad_options_are_refused_before_any_work(extra, message, monkeypatch):
    """Issue 11 item 10: a bad option value is a one-line error (exit 2) before anything is built or measured."""
    import ldmpick.measurement.profiler as profiling

    def no_work(*a, **kw):
        raise AssertionError("a model was built before the options were checked")

    monkeypatch.setattr(profiling, "ModuleFactory", no_work)
    args = ["profile", "--device", "cpu", "--models", "demo-c8"] + extra
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (profiles_dir().exists() and list(profiles_dir().iterdir()))
