"""`ldmpick models add / remove / list`: the registry round trip, and its errors (one line, exit 2)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ldmpick.models.catalogue import load_registry, registry_path, resolve_model
from ldmpick.cli import app
from tiny_pipeline import build_tiny_pipeline

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


def listed(name: str) -> dict:
    r = runner.invoke(app, ["models", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    return rows.get(name, {})


def one_line_error(r, message: str) -> None:
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr, r.stderr


def test_add_list_remove_round_trip(tiny):
    r = runner.invoke(app, ["models", "add", "my-sd", str(tiny)])
    assert r.exit_code == 0, r.output
    assert "registered 'my-sd'" in r.stderr and "safetensors weights" in r.stderr
    assert load_registry() == {"my-sd": str(tiny.resolve())}
    assert json.loads(registry_path().read_text())["schema"] == "ldmpick.registry/1"
    row = listed("my-sd")
    assert row["weights"] is True and row["kind"] == "local" and row["source"] == str(tiny.resolve())
    assert row["unet_params"] == resolve_model(str(tiny)).unet_params > 0
    spec = resolve_model("my-sd")
    assert spec.name == "my-sd" and spec.path == tiny.resolve()

    one_line_error(runner.invoke(app, ["models", "add", "my-sd", str(tiny)]),
                   f"'my-sd' is already registered (as '{tiny.resolve()}'); use --force to replace it")
    assert runner.invoke(app, ["models", "add", "my-sd", str(tiny), "--force"]).exit_code == 0

    r = runner.invoke(app, ["models", "remove", "my-sd"])
    assert r.exit_code == 0 and "removed 'my-sd'" in r.stderr
    assert load_registry() == {} and listed("my-sd") == {}
    assert tiny.is_dir()  # files untouched


def test_config_only_folder_registers_with_a_note(tmp_path):
    from conftest import write_config_folder

    folder = write_config_folder(tmp_path, "cfg-only")
    r = runner.invoke(app, ["models", "add", "cfg", str(folder)])
    assert r.exit_code == 0, r.output
    assert "no usable weights (can be profiled, not generated with)" in r.stderr
    r = runner.invoke(app, ["generate", "x", "--model", "cfg", "--sampler", "ddim", "--steps", "1",
                            "--out", str(tmp_path / "o")])
    one_line_error(r, f"'{folder.resolve() / 'unet'}' has no .safetensors weights")


@pytest.mark.parametrize(("args", "message"), [
    (["add", "ldm-39m", "."], "'ldm-39m' is a built-in family name; choose another name"),
    (["add", "a/b", "."], "model name 'a/b' must be 1-64 letters, digits"),
    (["add", "x", "/definitely/not/here"], "'/definitely/not/here' is neither an existing folder nor a hub id"),
    (["add", "x", "someone/not-cached"], "hub model 'someone/not-cached' is not in the local Hugging Face cache"),
    (["remove", "ldm-39m"], "'ldm-39m' is a built-in model (shipped with ldmpick) and cannot be removed"),
    (["remove", "demo-c8"], "'demo-c8' is a built-in model (shipped with ldmpick) and cannot be removed"),
    (["remove", "flux-dev"], "'flux-dev' is a built-in model (shipped with ldmpick) and cannot be removed"),
    (["remove", "ghost"], "no model named 'ghost' is registered (none are; see 'ldmpick models add')"),
])
def test_registry_errors(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf" / "hub"))
    one_line_error(runner.invoke(app, ["models", *args]), message)


def test_remove_unknown_suggests_a_registered_name(tiny):
    assert runner.invoke(app, ["models", "add", "my-sd", str(tiny)]).exit_code == 0
    one_line_error(runner.invoke(app, ["models", "remove", "my-sb"]),
                   "unknown registered model 'my-sb'; did you mean 'my-sd'? (valid: my-sd)")


def test_folder_without_unet_config_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(runner.invoke(app, ["models", "add", "e", str(tmp_path / "empty")]),
                   "has no model_index.json (not a diffusers pipeline folder)")


# ---------------------------------------------------------------------------------------------- nothing half-registered

BAD_CONFIGS = [
    ("text encoder 26 GB wide", "text_encoder", {"hidden_size": 65536}, "'hidden_size' is 65536, beyond any real model"),
    ("20000 layers per block", "unet", {"layers_per_block": 20000}, "'layers_per_block' is 20000, beyond any real"),
    ("negative channels", "vae", {"latent_channels": -4}, "'latent_channels' must not be negative"),
    ("channels a word", "vae", {"block_out_channels": ["a"]}, "'block_out_channels' must be an integer or a list"),
    ("2000 levels", "unet", {"block_out_channels": [8] * 2000}, "'block_out_channels' has 2000 entries"),
    ("unknown activation", "text_encoder", {"hidden_act": "nope"}, "cannot build CLIPTextModel from its config"),
    ("mismatched blocks", "unet", {"down_block_types": ["DownBlock2D"]}, "cannot build UNet2DConditionModel"),
    ("no such VAE class", "model_index", {"vae": ["diffusers", "NoSuchVAE"]}, "diffusers has no class 'NoSuchVAE'"),
]


@pytest.mark.parametrize("component,edit,message", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_a_model_that_fails_its_checks_is_not_registered(tmp_path, component, edit, message):
    from conftest import write_config_folder

    folder = write_config_folder(tmp_path, "bad")
    path = folder / ("model_index.json" if component == "model_index" else f"{component}/config.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    one_line_error(runner.invoke(app, ["models", "add", "bad", str(folder)]), message)
    assert load_registry() == {} and not registry_path().exists()
    assert listed("ldm-39m")  # models list still works


def test_absurd_sizes_are_refused_before_anything_is_built(tmp_path, monkeypatch):
    from conftest import write_config_folder

    from ldmpick.models.families import base

    def never(*args):
        raise AssertionError("a module was built")

    monkeypatch.setattr(base, "_count_params", never)
    folder = write_config_folder(tmp_path, "wide")
    cfg = json.loads((folder / "text_encoder" / "config.json").read_text())
    (folder / "text_encoder" / "config.json").write_text(json.dumps({**cfg, "hidden_size": 65536}))
    one_line_error(runner.invoke(app, ["models", "add", "wide", str(folder)]), "refusing a config of absurd size")
    one_line_error(runner.invoke(app, ["profile", "--models", str(folder), "--device", "cpu"]), "absurd size")


def test_a_huge_model_that_passes_the_field_limits_is_refused_by_its_parameter_count(tmp_path, monkeypatch):
    from conftest import write_config_folder

    from ldmpick.models.families import base

    monkeypatch.setattr(base, "MAX_COMPONENT_PARAMS", 10_000)  # the tiny UNet has more
    one_line_error(runner.invoke(app, ["models", "add", "big", str(write_config_folder(tmp_path, "big"))]),
                   "parameters (at most 0 B); refusing a config of absurd size")
    assert load_registry() == {}


@pytest.mark.parametrize("content,message", [
    ("{", "is not valid JSON"),
    ('{"models": {"a": 1}}', "is malformed"),
    ('{"models": [1]}', "is malformed"),
    ('{"models": {"a": NaN}}', "NaN is not a valid JSON number"),
    ("[" * 100000, "nested more than"),
    ('{"models": {"\\ud800": "x"}}', "unpaired UTF-16 surrogate"),
])
def test_a_malformed_registry_is_a_one_line_error(content, message):
    registry_path().parent.mkdir(parents=True, exist_ok=True)
    registry_path().write_text(content)
    r = runner.invoke(app, ["models", "list"])
    one_line_error(r, message)
    assert "fix or delete it" in r.stderr


def test_a_registry_that_is_a_fifo_is_refused_not_waited_on():
    import os

    registry_path().parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(registry_path())
    one_line_error(runner.invoke(app, ["models", "list"]), "not a regular file")
