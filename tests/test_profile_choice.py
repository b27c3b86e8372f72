"""The one profile-choice policy (recommend, generate, plot, calibrate): explicit ref, $LDMPICK_PROFILE, then the
profile that measures the asked models at their native resolution, preferring this device and the user's own."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.files.errors import UsageError
from ldmpick.generation.runner import load_profile_for
from ldmpick.profiles.choice import NoProfileError, choose_profile
from ldmpick.profiles.schema import LatencyStats, ModelLatency, Profile, SamplerOverhead, Settings
from ldmpick.profiles.store import save_profile, stored_profile_path
from ldmpick.files.storage import profiles_dir

runner = CliRunner()
CPU = "cpu:Test CPU:4"


def demo_profile(models: list[str], resolution: int, created: str, device: str = "Test CPU",
                 params: dict[str, int] | None = None) -> Profile:
    """A profile of ``models`` with their installed parameter counts (or ``params``' for the names it has)."""
    from ldmpick.models.catalogue import resolve_model

    def count(m: str) -> int:
        return (params or {}).get(m) or resolve_model(m).denoiser_params

    def st(ms: float) -> LatencyStats:
        return LatencyStats.from_samples([ms, ms * 1.01, ms * 0.99])

    return Profile(
        settings=Settings(device="cpu", dtype="fp32", resolution=resolution, batch=1, cfg=True, mode="eager",
                          warmup=1, repeats=3, max_seconds_per_model=1.0, threads=2),
        device={"kind": "cpu", "name": device, "cpu_cores": 4},
        models=[ModelLatency(m, "ok", count(m), st(5.0 * (i + 1)), family="sd", cfg=None)
                for i, m in enumerate(models)],
        samplers=[SamplerOverhead("ddim", 1, st(0.1))],
        created=created,
    ).share_fixed_parts(st(0.5), st(1.0 * resolution / 32))


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    folder = tmp_path / "shipped"
    folder.mkdir()
    monkeypatch.setattr("ldmpick.profiles.store.shipped_profiles_dir", lambda: folder)
    return folder


def save_local(p: Profile) -> Profile:
    profiles_dir().mkdir(parents=True, exist_ok=True)
    save_profile(p, stored_profile_path(p))
    return p


ALL_DEMO = ["demo-c8", "demo-c16"]


def test_a_local_profile_at_512px_does_not_hide_the_shipped_native_one(shipped):
    """Issue 11 item 18: after profiling two demo models at 512 px, the demo commands still use the shipped 32 px
    profile that covers the asked models, and say so."""
    save_profile(demo_profile(ALL_DEMO, 32, "2026-01-01T00:00:00Z"), shipped / "demo.json")
    local = save_local(demo_profile(["demo-c8", "demo-c16"], 512, "2026-06-01T00:00:00Z"))
    c = choose_profile(None, device_key_now=CPU, models=ALL_DEMO)
    assert c.how == "shipped-match" and c.path.name == "demo.json"
    assert "that measures demo-c8, demo-c16" in c.notice
    # no models asked (generate --budget): the one at the models' native resolution
    c = choose_profile(None, device_key_now=CPU, usable=lambda p: True)
    assert c.path.name == "demo.json" and "native 32 px" in c.notice
    # asking for 512 px picks the local one
    c = choose_profile(None, device_key_now=CPU, resolution=512, usable=lambda p: True)
    assert c.how == "local" and c.profile.id == local.id


def test_own_profile_at_native_resolution_beats_the_shipped_one(shipped):
    save_profile(demo_profile(ALL_DEMO, 32, "2026-01-01T00:00:00Z"), shipped / "demo.json")
    mine = save_local(demo_profile(ALL_DEMO, 32, "2025-01-01T00:00:00Z"))
    c = choose_profile(None, device_key_now=CPU, models=["demo-c8"])
    assert c.how == "local" and c.profile.id == mine.id and c.this_device
    # another device's covering profile is used only with a warning that says so
    c = choose_profile(None, device_key_now="cpu:Other CPU:8", models=["demo-c8"])
    assert not c.this_device and "NOT this machine's" in c.notice


def test_a_profile_of_older_models_under_the_same_names_is_not_used_for_the_installed_ones(shipped):
    """After the demo family is retrained, a user's profile of the old demo-c8 (another parameter count) must not be
    preferred to the shipped profile of the installed demo-c8: its latencies are another model's."""
    save_profile(demo_profile(ALL_DEMO, 32, "2026-01-01T00:00:00Z"), shipped / "demo.json")
    old = save_local(demo_profile(ALL_DEMO, 32, "2026-06-01T00:00:00Z", params={"demo-c8": 51_000, "demo-c16": 9}))
    assert choose_profile(None, device_key_now=CPU, models=["demo-c8"]).path.name == "demo.json"
    assert choose_profile(None, device_key_now=CPU, usable=lambda p: True).path.name == "demo.json"
    (shipped / "demo.json").unlink()
    with pytest.raises(NoProfileError, match=f"no profile measures the installed 'demo-c8': '{old.id}' measured "
                                             "another model under that name"):
        choose_profile(None, device_key_now=CPU, models=["demo-c8"])
    # the same local profile with the installed counts is the user's own, and wins
    mine = save_local(demo_profile(ALL_DEMO, 32, "2026-07-01T00:00:00Z"))
    assert mine.id != old.id
    assert choose_profile(None, device_key_now=CPU, models=["demo-c8"]).profile.id == mine.id


def test_explicit_ref_and_environment_win(shipped, monkeypatch):
    save_profile(demo_profile(ALL_DEMO, 32, "2026-01-01T00:00:00Z"), shipped / "demo.json")
    other = save_local(demo_profile(["demo-c8"], 512, "2026-02-01T00:00:00Z", device="Other CPU"))
    c = choose_profile(other.id, device_key_now=CPU)
    assert c.how == "--profile" and "measured on another device (Other CPU)" in c.notice
    monkeypatch.setenv("LDMPICK_PROFILE", other.id)
    assert choose_profile(None, device_key_now=CPU).how == "LDMPICK_PROFILE"
    monkeypatch.setenv("LDMPICK_PROFILE", "no-such-profile")
    with pytest.raises(UsageError, match=r"^\$LDMPICK_PROFILE: no profile named 'no-such-profile'"):
        choose_profile(None, device_key_now=CPU)


def test_generation_and_calibration_use_the_same_policy(shipped, monkeypatch):
    """generate's lookup is choose_profile with a filter (models with weights / the asked models), and honours
    $LDMPICK_PROFILE like recommend (it used not to)."""
    with pytest.raises(NoProfileError):
        choose_profile(None, device_key_now=CPU)
    assert load_profile_for(None, "cpu") is None
    save_profile(demo_profile(ALL_DEMO, 32, "2026-01-01T00:00:00Z"), shipped / "demo.json")
    save_local(demo_profile(["demo-c8"], 512, "2026-06-01T00:00:00Z"))
    choice = load_profile_for(None, "cpu")
    assert choice is not None and choice.path.name == "demo.json"
    assert load_profile_for(None, "cpu", models=["demo-c80"]) is None  # no profile measures it
    other = save_local(demo_profile(["demo-c8"], 64, "2026-03-01T00:00:00Z", device="Other CPU"))
    monkeypatch.setenv("LDMPICK_PROFILE", other.id)
    assert load_profile_for(None, "cpu").profile.id == other.id


def test_recommend_says_which_profile_it_used(shipped):
    save_profile(demo_profile(ALL_DEMO, 32, "2026-01-01T00:00:00Z"), shipped / "demo.json")
    save_local(demo_profile(["demo-c8", "demo-c16"], 512, "2026-06-01T00:00:00Z"))
    r = runner.invoke(app, ["recommend", "--budget", "10s", "--models", "demo-c8,demo-c16", "--metric", "fid"])
    assert "demo-c8, demo-c16" in r.stderr and "has no model" not in r.stderr, r.stderr


def test_your_profile_of_this_device_without_cfg_beats_another_devices_with_it(shipped):
    """generate asks for a guided profile; a profile of this machine measured with --no-cfg must still win over
    another machine's (whose latencies are simply wrong here): the guidance mismatch is warned of, later."""
    from dataclasses import replace

    save_profile(demo_profile(ALL_DEMO, 32, "2026-01-01T00:00:00Z", device="Other CPU"), shipped / "demo.json")
    mine = demo_profile(ALL_DEMO, 32, "2025-01-01T00:00:00Z")
    mine = save_local(replace(mine, settings=replace(mine.settings, cfg=False)))
    c = choose_profile(None, device_key_now=CPU, models=["demo-c8"], cfg=True)
    assert c.how == "local" and c.profile.id == mine.id and c.this_device
    # on the same device, the guided one is preferred
    guided = save_local(demo_profile(ALL_DEMO, 32, "2024-01-01T00:00:00Z"))
    assert choose_profile(None, device_key_now=CPU, models=["demo-c8"], cfg=True).profile.id == guided.id


def test_the_passed_over_note_names_your_profile_when_another_devices_is_used(shipped):
    from ldmpick.profiles.choice import quality_data_for
    from ldmpick.quality.law import load_law

    other = demo_profile(ALL_DEMO, 32, "2026-01-01T00:00:00Z", device="Other CPU")
    save_local(other)
    mine = save_local(demo_profile(ALL_DEMO, 32, "2026-02-01T00:00:00Z"))
    law, _ = load_law()
    c = choose_profile(None, device_key_now=CPU, rankable=lambda p: p.id == other.id)
    assert c.profile.id == other.id and f"your profile '{mine.id}' of this device was passed over" in c.notice
    assert quality_data_for(law, "fid")(mine)  # (the demo models have calibrated FIDs: a real profile ranks)
