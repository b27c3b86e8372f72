"""`ldmpick profile` and `ldmpick models` end to end on CPU with tiny config-only models."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.profile_model import load_profile
from ldmpick.profile_store import list_profile_files
from ldmpick.storage import profiles_dir

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
