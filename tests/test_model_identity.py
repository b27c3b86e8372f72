"""Which model a name or folder is, command by command: generate picks its profile by --model as recommend does,
a folder works wherever a model is named, a folder named like a built-in model is not that model, a registered
folder that is gone says so, and a profile of fewer samplers than another says what it leaves out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_profile_choice import ALL_DEMO, demo_profile, save_local, shipped  # noqa: F401 (shipped: a fixture)
from typer.testing import CliRunner

from ldmpick.models.catalogue import DEMO_MODELS_DIR, local_model_name, model_label, resolve_model, save_registry
from ldmpick.cli import app
from ldmpick.planning.plan import plan_generation
from ldmpick.profiles.choice import choose_profile
from ldmpick.profiles.schema import LatencyStats, SamplerOverhead
from ldmpick.profiles.store import save_profile

runner = CliRunner()
CPU = "cpu:Test CPU:4"
ALL_THREE = [*ALL_DEMO, "demo-c80"]


def plan(tmp_path: Path, **kw):
    return plan_generation(["a red circle"], out=tmp_path / "out", device="cpu", **kw)


def one_line_error(r, message: str) -> None:
    assert r.exit_code != 0, r.output
    last = r.stderr.splitlines()[-1]  # after any notice of which profile was used
    assert last.startswith("error: ") and message in last, r.stderr
    assert "Traceback" not in r.output


# ---------------------------------------------------------------------------------------------- A


def test_generate_plans_on_the_profile_that_measures_the_asked_model(shipped, tmp_path):  # noqa: F811
    """A newer local profile of demo-c8/c16 must not hide the shipped one of demo-c80 from generate --model
    demo-c80 (it did: 'has no measurement of model demo-c80', and no prediction without --budget)."""
    save_profile(demo_profile(ALL_THREE, 32, "2026-01-01T00:00:00Z"), shipped / "demo.json")
    save_local(demo_profile(ALL_DEMO, 32, "2026-06-01T00:00:00Z"))
    notes: list[str] = []
    p = plan(tmp_path, model="demo-c80", sampler="ddim", steps=2, notify=notes.append)
    assert p.profile is not None and "demo-c80" in p.profile.model_names(), notes
    assert p.latency is not None
    p = plan(tmp_path, model="demo-c80", budget="10s", notify=notes.append)
    assert p.selection.best.model == "demo-c80" and p.latency is not None


def test_generate_without_a_model_names_the_models_its_profile_leaves_out(shipped, tmp_path):  # noqa: F811
    save_profile(demo_profile(ALL_THREE, 32, "2026-01-01T00:00:00Z"), shipped / "demo.json")
    local = save_local(demo_profile(ALL_DEMO, 32, "2026-06-01T00:00:00Z"))
    notes: list[str] = []
    p = plan(tmp_path, budget="10s", notify=notes.append)
    assert p.profile.id == local.id
    assert any(n.startswith("note: not considered: demo-c80: not measured by profile") for n in notes), notes


# ---------------------------------------------------------------------------------------------- B


def test_a_folder_is_named_as_its_profile_names_it(shipped, tmp_path):  # noqa: F811
    """profile --models tr/mymodel stores 'mymodel'; recommend / generate --models tr/mymodel (relative or
    absolute) find that profile (they said: unknown model 'tr/mymodel'; did you mean 'mymodel'?)."""
    folder = tmp_path / "tr" / "mymodel"
    shutil.copytree(DEMO_MODELS_DIR / "demo-c8", folder)
    assert resolve_model(str(folder)).name == model_label(str(folder)) == "mymodel"
    save_local(demo_profile(["mymodel"], 32, "2026-06-01T00:00:00Z", params={"mymodel": 70_000}))
    c = choose_profile(None, device_key_now=CPU, models=[str(folder)])
    assert c.models == ["mymodel"] and "mymodel" in c.profile.model_names()
    r = runner.invoke(app, ["recommend", "--budget", "10s", "--models", str(folder)])
    assert "unknown model" not in r.stderr and "that measures mymodel" in r.stderr, r.stderr
    # an unprofiled folder: the command to measure it names the folder, not the label
    other = tmp_path / "tr" / "unprofiled"
    shutil.copytree(DEMO_MODELS_DIR / "demo-c8", other)
    r = runner.invoke(app, ["recommend", "--budget", "10s", "--models", str(other)])
    one_line_error(r, f"'ldmpick profile --models {other}'")


# ---------------------------------------------------------------------------------------------- C


def test_a_folder_named_like_a_built_in_model_is_not_that_model(shipped, tmp_path):  # noqa: F811
    """A retrained tr/demo-c8 (same parameter count as the shipped one) must not inherit the shipped demo-c8's
    profile or calibrated quality (it recorded "model": "demo-c8" and the shipped FID)."""
    save_profile(demo_profile(ALL_THREE, 32, "2026-01-01T00:00:00Z"), shipped / "demo.json")
    folder = tmp_path / "tr" / "demo-c8"
    shutil.copytree(DEMO_MODELS_DIR / "demo-c8", folder)
    assert local_model_name(folder) == "demo-c8@tr" == resolve_model(str(folder)).name
    assert local_model_name(DEMO_MODELS_DIR / "demo-c8") == "demo-c8"  # the installed folder is the model
    # a released model's name is kept: a real checkpoint of it gets its published quality (another model under the
    # name is caught by its parameter count, which a retrained demo model shares with the shipped one)
    assert local_model_name(tmp_path / "m" / "sdxl-base") == "sdxl-base"
    p = plan(tmp_path, model=str(folder), sampler="ddim", steps=2)
    assert p.settings.model == "demo-c8@tr" and p.latency is None and p.quality is None
    with pytest.raises(Exception, match="no profile measures all of demo-c8@tr"):
        plan(tmp_path, model=str(folder), budget="10s")
    # profiled under its own name, it is planned on its own measurement
    mine = save_local(demo_profile(["demo-c8@tr"], 32, "2026-06-01T00:00:00Z", params={"demo-c8@tr": 70_000}))
    p = plan(tmp_path, model=str(folder), sampler="ddim", steps=2)
    assert p.profile.id == mine.id and p.latency is not None and p.quality is None


# ---------------------------------------------------------------------------------------------- D


def test_a_registered_folder_that_is_gone_says_so(tmp_path):
    save_registry({"mm": str(tmp_path / "gone")})
    msg = (f"registered model 'mm' points to '{tmp_path / 'gone'}', which no longer exists (re-add it with "
           "'ldmpick models add mm FOLDER --force' or 'ldmpick models remove mm')")
    r = runner.invoke(app, ["generate", "hi", "--model", "mm", "--steps", "1", "--out", str(tmp_path / "o")])
    one_line_error(r, msg)
    r = runner.invoke(app, ["models", "list", "--json"])
    row = next(x for x in json.loads(r.stdout) if x["name"] == "mm")
    assert row["problem"] == msg and not row["weights"]


# ---------------------------------------------------------------------------------------------- E


def _with_samplers(p, names: list[str]):
    p.samplers = [SamplerOverhead(s, 1, LatencyStats.from_samples([0.1, 0.101, 0.099])) for s in names]
    return p


def test_a_profile_of_fewer_samplers_says_what_it_leaves_out(shipped):  # noqa: F811
    save_profile(_with_samplers(demo_profile(ALL_DEMO, 32, "2026-01-01T00:00:00Z"), ["ddim", "euler", "unipc"]),
                 shipped / "demo.json")
    local = save_local(_with_samplers(demo_profile(ALL_DEMO, 32, "2026-06-01T00:00:00Z"), ["ddim"]))
    r = runner.invoke(app, ["recommend", "--budget", "10s", "--models", "demo-c8", "--json"])
    assert r.exit_code == 0, r.output
    excluded = json.loads(r.stdout)["excluded"]
    assert any(e.startswith(f"samplers euler, unipc: not measured by profile '{local.id}' for demo-c8 (measure with "
                            "'ldmpick profile --models demo-c8 --samplers ") for e in excluded), excluded
    r = runner.invoke(app, ["recommend", "--budget", "10s", "--models", "demo-c8", "--samplers", "unipc"])
    one_line_error(r, f"sampler unipc: not measured by profile '{local.id}'")


def test_a_sampler_another_profile_measured_is_not_asked_for_where_it_cannot_run(shipped):  # noqa: F811
    """Another profile measured lcm (its version-1 entries fit every measured sampler); the demo models are not
    consistency-distilled, so 'measure lcm for demo-c8' is not advice to give."""
    save_profile(_with_samplers(demo_profile(ALL_DEMO, 32, "2026-01-01T00:00:00Z"), ["ddim", "euler", "lcm"]),
                 shipped / "demo.json")
    save_local(_with_samplers(demo_profile(ALL_DEMO, 32, "2026-06-01T00:00:00Z"), ["ddim", "euler"]))
    r = runner.invoke(app, ["recommend", "--budget", "10s", "--models", "demo-c8", "--json"])
    assert r.exit_code == 0, r.output
    assert not any("lcm" in e and "not measured" in e for e in json.loads(r.stdout)["excluded"])
