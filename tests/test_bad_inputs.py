"""The catalogue of bad inputs (issue 6): each gets one clear line on stderr, a non-zero exit, no traceback.

Every case runs the real CLI through typer's CliRunner. Exit 2 = the user's input was wrong; 1 = runtime failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldmpick.cli import app

from conftest import write_config_folder
from test_profile_file import make_profile

runner = CliRunner()


def _folder_without_unet_config(tmp: Path) -> str:
    f = write_config_folder(tmp, "no-unet")
    (f / "unet" / "config.json").unlink()
    return str(f)


def _folder_with_config(tmp: Path, edit) -> str:
    f = write_config_folder(tmp, "edited")
    cfg = json.loads((f / "unet" / "config.json").read_text())
    edit(cfg)
    (f / "unet" / "config.json").write_text(json.dumps(cfg))
    return str(f)


def _profile_file(tmp: Path, text: str) -> str:
    p = tmp / "profile.json"
    p.write_text(text)
    return str(p)


# (id, argv builder taking a tmp folder, expected exit code, expected text in the one-line error)
CASES = [
    ("unknown model", lambda t: ["profile", "--models", "ldm-86m", "--device", "cpu"], 2,
     "unknown model 'ldm-86m'; did you mean 'ldm-866m'?"),
    ("empty model list", lambda t: ["profile", "--models", " , ", "--device", "cpu"], 2, "empty model list"),
    ("unknown sampler", lambda t: ["profile", "--samplers", "dpm++", "--device", "cpu"], 2, "unknown sampler 'dpm++'"),
    ("empty sampler list", lambda t: ["profile", "--samplers", ",", "--device", "cpu"], 2, "empty sampler list"),
    ("resolution not a multiple of 8", lambda t: ["profile", "--resolution", "500", "--device", "cpu"], 2,
     "not a multiple of 8"),
    ("resolution zero", lambda t: ["profile", "--resolution", "0", "--device", "cpu"], 2, "out of range"),
    ("resolution negative", lambda t: ["profile", "--resolution", "-512", "--device", "cpu"], 2, "out of range"),
    ("resolution not a number", lambda t: ["profile", "--resolution", "big"], 2, "Invalid value for '--resolution'"),
    ("cuda without a GPU", lambda t: ["profile", "--device", "cuda"], 2, "no CUDA GPU is available here"),
    ("cudagraph on cpu", lambda t: ["profile", "--device", "cpu", "--mode", "cudagraph"], 2, "needs a CUDA device"),
    ("unknown dtype", lambda t: ["profile", "--device", "cpu", "--dtype", "int4"], 2, "unknown dtype 'int4'"),
    ("batch zero", lambda t: ["profile", "--device", "cpu", "--batch", "0"], 2, "--batch must be between 1 and 64"),
    ("folder without unet/config.json", lambda t: ["profile", "--device", "cpu", "--models", _folder_without_unet_config(t)],
     2, "has no unet component"),
    ("config missing a key", lambda t: ["profile", "--device", "cpu", "--models",
                                        _folder_with_config(t, lambda c: c.pop("block_out_channels"))],
     2, "lacks the key 'block_out_channels'"),
    ("config key of the wrong type", lambda t: ["profile", "--device", "cpu", "--models",
                                                _folder_with_config(t, lambda c: c.update(in_channels="four"))],
     2, "key 'in_channels' has the wrong type"),
    ("config with bad channel list", lambda t: ["profile", "--device", "cpu", "--models",
                                                _folder_with_config(t, lambda c: c.update(block_out_channels=[0, -1]))],
     2, "list of positive integers"),
    ("profile output folder missing", lambda t: ["profile", "--device", "cpu", "--out", str(t / "nope" / "p.json")], 2,
     "does not exist"),
    ("profile output is a folder", lambda t: ["profile", "--device", "cpu", "--out", str(t)], 2, "is a folder"),
    ("resume with nothing to resume", lambda t: ["profile", "--device", "cpu", "--resume", "--out", str(t / "p.json")], 2,
     "no partial profile"),
    ("step list with an empty item", lambda t: ["law", "--steps", "1,,2"], 2,
     "--steps must be comma-separated integers like '1,2,4,8', got '1,,2'"),
    ("metric in capitals", lambda t: ["recommend", "--budget", "2s", "--metric", "FID"], 2,
     "unknown metric 'FID'; did you mean 'fid'?"),
    ("import empty profile", lambda t: ["profiles", "import", _profile_file(t, "")], 2, "is empty"),
    ("import truncated profile", lambda t: ["profiles", "import", _profile_file(t, make_profile().dumps()[:300])], 2,
     "not valid JSON"),
    ("import non-JSON", lambda t: ["profiles", "import", _profile_file(t, "<html>")], 2, "not valid JSON"),
    ("import unknown schema version", lambda t: ["profiles", "import", _profile_file(
        t, make_profile().dumps().replace("ldmpick.profile/4", "ldmpick.profile/9"))], 2,
     "unsupported profile schema version 'ldmpick.profile/9'"),
    ("import NaN latency", lambda t: ["profiles", "import", _profile_file(
        t, make_profile().dumps().replace('"median_ms": 12.3', '"median_ms": NaN', 1))], 2, "NaN is not a valid JSON number"),
    ("import negative latency", lambda t: ["profiles", "import", _profile_file(
        t, make_profile().dumps().replace('"median_ms": 12.3', '"median_ms": -12.3', 1))], 2, "is negative"),
    ("import missing file", lambda t: ["profiles", "import", str(t / "missing.json")], 2, "does not exist"),
    ("import a partial profile", lambda t: ["profiles", "import", _profile_file(
        t, make_profile().dumps().replace('"complete": true', '"complete": false'))], 2, "partial (interrupted) profile"),
    ("show unknown profile", lambda t: ["profiles", "show", "no-such-profile"], 2, "no profile named 'no-such-profile'"),
    ("export unknown format", lambda t: ["profiles", "export", _profile_file(t, make_profile().dumps()), "--format", "xml"],
     2, "unknown format 'xml'"),
    ("diff with a missing file", lambda t: ["profiles", "diff", _profile_file(t, make_profile().dumps()),
                                            str(t / "other.json")], 2, "does not exist"),
    ("unknown command", lambda t: ["profil"], 2, "No such command 'profil'"),
    ("unknown option", lambda t: ["profile", "--bogus"], 2, "No such option: --bogus"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(case, tmp_path: Path):
    _, argv, code, message = case
    result = runner.invoke(app, argv(tmp_path))
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path):
    result = runner.invoke(app, ["--debug", "profiles", "import", str(tmp_path / "missing.json")])
    assert result.exit_code != 0
    assert result.exception is not None and "does not exist" in str(result.exception)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_output_folder(tmp_path: Path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    src = _profile_file(tmp_path, make_profile().dumps())
    result = runner.invoke(app, ["profiles", "export", src, "--out", str(ro / "x.json")])
    assert result.exit_code == 1 and "cannot write to" in result.stderr


def test_unwritable_output_folder_is_a_runtime_error(tmp_path: Path, monkeypatch):
    """Whatever the reason a folder cannot take a file (read-only mount, full disk), one line, exit 1."""
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    src = _profile_file(tmp_path, make_profile().dumps())
    result = runner.invoke(app, ["profiles", "export", src, "--out", str(tmp_path / "x.json")])
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: cannot write to '{tmp_path}': Permission denied\n"


# ---------------------------------------------------------------------------------------------- fuzzing

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_fuzz_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=16) | \
    st.integers(-10**12, 10**12).map(str) | st.sampled_from(["0", "-3", str(10**9), "1e400", "nan", "8", "512", "64"])


def _clean(result) -> None:
    """Either it worked, or one 'error:' line and exit 2 (bad input): never a traceback, never exit 1."""
    if result.exit_code == 0:
        return
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.splitlines()[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.output


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(_fuzz_text)
def test_fuzz_resolution_option(text):
    _clean(runner.invoke(app, ["recommend", "--budget", "30s", "--resolution", text, "--json"]))
    _clean(runner.invoke(app, ["profile", "--device", "cpu", "--models", "no-such-model", "--resolution", text]))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_fuzz_text)
def test_fuzz_steps_options(text):
    _clean(runner.invoke(app, ["recommend", "--budget", "30s", "--max-steps", text, "--json"]))
    _clean(runner.invoke(app, ["generate", "a cat", "--model", "ldm-39m", "--sampler", "ddim", "--steps", text,
                               "--device", "cpu"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_fuzz_text)
def test_fuzz_budget_option(text):
    _clean(runner.invoke(app, ["recommend", "--budget", text, "--json"]))


@pytest.mark.parametrize("args, message", [
    (["--guidance", "nan"], "--guidance must be between 0 and 100 (got nan)"),
    (["--guidance", "-1"], "--guidance must be between 0 and 100"),
    (["--seed", "-1"], "--seed must be between 0"),
    (["--n", "0"], "--n must be between 1 and 64"),
    (["--n", "-2"], "--n must be between 1 and 64"),
    (["--steps", "0"], "--steps must be between 1 and 1000"),
    (["--steps", "-3"], "--steps must be between 1 and 1000"),
    (["--resolution", "-32"], "out of range"),
    (["--threads", "0"], "Invalid value for '--threads'"),
    (["--budget", "nan"], "is not a number"),
    (["--budget", "-1s"], "must be positive"),
])
def test_generate_refuses_bad_values_before_loading_anything(args, message, tmp_path, monkeypatch):
    import ldmpick.generation.runner as generation

    def never(*a, **k):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(generation, "load_pipeline", never)
    argv = ["generate", "x", "--model", "demo-c8", "--out", str(tmp_path / "o"), *args]
    if "--steps" not in args and "--budget" not in args:
        argv += ["--steps", "2"]
    if "--budget" in args:
        argv.remove("--model")
        argv.remove("demo-c8")
    r = runner.invoke(app, argv)
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.output
    assert message in r.stderr, r.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
