"""The first-run commands as a new user meets them, on the real host (``host_device``: no pinned identity) and on a
machine of another CPU model and core count than the shipped profiles were measured on. CI runs this module a
second time under a foreign identity (a private /proc/cpuinfo and another core count: ``.ci/run``), so a test that
depends on the host's CPU cannot come back unseen."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ldmpick.cli import app

runner = CliRunner()

BAD_GENERATE = [
    (["--guidance", "nan"], "--guidance must be between 0 and 100"),
    (["--n", "0"], "--n must be between 1 and 64"),
    (["--steps", "0"], "--steps must be between 1 and 1000"),
    (["--resolution", "-32"], "out of range"),
    (["--budget", "-1s"], "must be positive"),
]


def _one_line_error(r, message: str) -> None:
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.output


def _generate_argv(args: list[str], tmp_path) -> list[str]:
    argv = ["generate", "x", "--out", str(tmp_path / "o"), *args]
    if "--budget" not in args:
        argv += ["--model", "demo-c8"] + ([] if "--steps" in args else ["--steps", "2"])
    return argv


def _recommend_answers() -> dict:
    r = runner.invoke(app, ["recommend", "--budget", "2s", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["best"]["latency"] <= 2.0 and doc["unit"] == "s", doc["best"]
    return doc


@pytest.mark.host_device
def test_readme_first_command_answers_on_this_host():
    _recommend_answers()


@pytest.mark.host_device
@pytest.mark.parametrize("args, message", BAD_GENERATE)
def test_bad_generate_options_are_one_line_on_this_host(args, message, tmp_path):
    _one_line_error(runner.invoke(app, _generate_argv(args, tmp_path)), message)


def test_a_new_user_elsewhere_gets_the_shipped_default_with_a_warning(foreign_device):
    r = runner.invoke(app, ["recommend", "--budget", "2s"])
    assert r.exit_code == 0, r.output
    assert "no profile of this device" in r.stderr and "NOT this machine's" in r.stderr, r.stderr
    doc = _recommend_answers()
    assert doc["source"]["profile_choice"] == "shipped-default", doc["source"]


@pytest.mark.parametrize("args, message", BAD_GENERATE)
def test_bad_options_elsewhere_are_still_one_line(foreign_device, args, message, tmp_path):
    """On a machine with no profile of its own the profile notice must not come before the error."""
    _one_line_error(runner.invoke(app, _generate_argv(args, tmp_path)), message)
    _one_line_error(runner.invoke(app, ["recommend", "--budget", "2s", "--top", "0"]), "--top must be at least 1")
    _one_line_error(runner.invoke(app, ["plot", "--budget", "2s", "--percentile", "200", "-o", str(tmp_path / "p.png")]),
                    "--percentile must be between 1 and 99")
    assert not (tmp_path / "p.png").exists()
