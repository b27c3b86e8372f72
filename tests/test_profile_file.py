"""Profile files: round trip, validation of shared files, exporters, diff, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.files.errors import ProfileError
from ldmpick.profiles.export import diff_profiles, export_csv, export_markdown
from ldmpick.profiles.schema import (
    SCHEMA,
    LatencyStats,
    ModelLatency,
    Profile,
    SamplerOverhead,
    Settings,
    load_profile,
    parse_profile_text,
)
from ldmpick.files.storage import atomic_write_text

runner = CliRunner()


def make_profile(scale: float = 1.0, device_name: str = "Test GPU", resolution: int = 512) -> Profile:
    def st(ms: float) -> LatencyStats:
        return LatencyStats.from_samples([ms * scale * f for f in (0.97, 0.99, 1.0, 1.01, 1.05)])

    return Profile(
        settings=Settings(device="cuda", dtype="fp16", resolution=resolution, batch=1, cfg=True, mode="cudagraph",
                          warmup=3, repeats=20, max_seconds_per_model=20.0, threads=8),
        device={"kind": "cuda", "name": device_name, "memory_bytes": 80 * 2**30, "cpu_cores": 16},
        models=[
            ModelLatency("ldm-39m", "ok", 38_800_000, st(4.8), peak_memory_bytes=10**9, source="ldm-39m"),
            ModelLatency("ldm-866m", "ok", 865_900_000, st(12.3), peak_memory_bytes=3 * 10**9, source="ldm-866m"),
            ModelLatency("ldm-5b", "does_not_fit", 4_900_000_000, None, error="out of memory"),
        ],
        samplers=[SamplerOverhead("ddim", 1, st(2.3)), SamplerOverhead("heun", 2, st(0.4))],
        created="2026-11-23T03:00:00Z",
        command="ldmpick profile --models ldm-39m,ldm-866m,ldm-5b",
    ).share_fixed_parts(st(6.0), st(24.0))


def test_round_trip_is_lossless():
    p = make_profile()
    again = parse_profile_text(p.dumps())
    assert again.to_json() == p.to_json()
    assert again.model("ldm-866m").unet_step.median_ms == pytest.approx(12.3)
    assert again.model("ldm-5b").status == "does_not_fit"


def test_export_import_round_trip_via_cli(tmp_path: Path):
    src = tmp_path / "mine.json"
    src.write_text(make_profile().dumps())
    r = runner.invoke(app, ["profiles", "import", str(src)])
    assert r.exit_code == 0, r.output
    pid = make_profile().id
    r = runner.invoke(app, ["profiles", "export", pid, "--out", str(tmp_path / "shared.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "shared.json").read_text()) == make_profile().to_json()
    # listed, shown, re-import refused without --force
    r = runner.invoke(app, ["profiles", "list", "--json"])
    assert [row["id"] for row in json.loads(r.stdout) if row["where"] == "local"] == [pid]
    r = runner.invoke(app, ["profiles", "show", pid[:16], "--json"])  # [:10] also prefixes a shipped id
    assert r.exit_code == 0 and json.loads(r.stdout)["id"] == pid
    r = runner.invoke(app, ["profiles", "import", str(src)])
    assert r.exit_code == 2 and "already exists" in r.stderr
    assert runner.invoke(app, ["profiles", "import", str(src), "--force"]).exit_code == 0


def test_csv_and_markdown_exports():
    p = make_profile()
    rows = export_csv(p).strip().splitlines()
    assert rows[0].startswith("kind,name,status,family,median_ms")
    assert any(r.startswith("denoiser_step,ldm-866m,ok,sd,12.3") for r in rows)
    assert any(r.startswith("denoiser_step,ldm-5b,does_not_fit,") for r in rows)
    assert any(r.startswith("sampler_step,heun,ok,") and r.endswith(",2") for r in rows)
    md = export_markdown(p)
    assert "| denoiser_step | ldm-866m | ok | 12.300 |" in md
    r = runner.invoke(app, ["profiles", "export", "x.json", "--format", "yaml"])
    assert r.exit_code == 2 and "unknown format 'yaml'" in r.stderr


def test_diff_is_ratio_model_by_model(tmp_path: Path):
    a, b = make_profile(), make_profile(scale=2.0, device_name="Slower GPU")
    rows = {(r.kind, r.name): r for r in diff_profiles(a, b)}
    assert rows[("denoiser_step", "ldm-866m")].ratio == pytest.approx(2.0)
    assert rows[("denoiser_step", "ldm-5b")].ratio is None
    assert rows[("vae_decode", "ldm-866m")].ratio == pytest.approx(2.0)
    (tmp_path / "a.json").write_text(a.dumps())
    (tmp_path / "b.json").write_text(b.dumps())
    r = runner.invoke(app, ["profiles", "diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json"])
    assert r.exit_code == 0, r.output
    ratios = {row["name"]: row["ratio"] for row in json.loads(r.stdout)["rows"]}
    assert ratios["ldm-39m"] == pytest.approx(2.0)


def _mutate(fn) -> str:
    d = make_profile().to_json()
    fn(d)
    return json.dumps(d)


BAD_PROFILES = {
    "empty": ("", "is empty"),
    "whitespace": ("   \n", "is empty"),
    "truncated": (make_profile().dumps()[:200], "not valid JSON"),
    "not json": ("hello", "not valid JSON"),
    "a list": ("[1, 2]", "must be a JSON object"),
    "no schema": (json.dumps({"models": []}), "no 'schema' field"),
    "future version": (_mutate(lambda d: d.update(schema="ldmpick.profile/5")), "unsupported profile schema version 'ldmpick.profile/5'"),
    "other schema": (_mutate(lambda d: d.update(schema="hyperfine")), "not an ldmpick profile"),
    "NaN latency": (make_profile().dumps().replace('"median_ms": 12.3', '"median_ms": NaN', 1), "NaN is not a valid JSON number"),
    "negative latency": (_mutate(lambda d: d["models"][0]["denoiser_step"].update(median_ms=-1.0)), "is negative"),
    "string latency": (_mutate(lambda d: d["models"][0]["denoiser_step"].update(median_ms="fast")), "finite number"),
    "bad status": (_mutate(lambda d: d["models"][0].update(status="great")), "status must be one of"),
    "ok without timing": (_mutate(lambda d: d["models"][0].update(denoiser_step=None)), "needs denoiser_step"),
    "bad mode": (_mutate(lambda d: d["settings"].update(mode="turbo")), "settings.mode must be one of"),
    "bad device": (_mutate(lambda d: d["settings"].update(device="/etc/passwd")), "is not cpu, cuda"),
    "bool batch": (_mutate(lambda d: d["settings"].update(batch=True)), "settings.batch must be an integer"),
    "duplicate models": (_mutate(lambda d: d["models"].append(d["models"][0])), "duplicate model names"),
    "unordered stats": (_mutate(lambda d: d["models"][0]["denoiser_step"].update(p10_ms=1e6)), "does not hold"),
    "bad date": (_mutate(lambda d: d.update(created="yesterday")), "not an ISO 8601"),
    "deep nesting": ('{"schema": ' + "[" * 5000 + "]" * 5000 + "}", "nested more than"),
}


@pytest.mark.parametrize("case", sorted(BAD_PROFILES))
def test_malformed_profiles_are_refused_with_one_line(case: str, tmp_path: Path):
    text, message = BAD_PROFILES[case]
    with pytest.raises(ProfileError, match=message):
        parse_profile_text(text)
    f = tmp_path / "bad.json"
    f.write_text(text)
    r = runner.invoke(app, ["profiles", "import", str(f)])
    assert r.exit_code == 2
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and message.split("'")[0] in r.stderr
    assert "Traceback" not in r.output


def test_huge_file_is_refused_without_reading_it(tmp_path: Path):
    f = tmp_path / "huge.json"
    with open(f, "wb") as fh:
        fh.truncate(101 * 1024 * 1024)
    with pytest.raises(ProfileError, match="larger than"):
        load_profile(f)


def test_non_utf8_and_missing_files(tmp_path: Path):
    f = tmp_path / "bin.json"
    f.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile(f)
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "nope.json")


def test_schema_constant():
    assert make_profile().to_json()["schema"] == SCHEMA == "ldmpick.profile/4"


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path, monkeypatch):
    target = tmp_path / "profile.json"
    target.write_text("old content")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new content")
    assert target.read_text() == "old content"
    assert [p.name for p in tmp_path.iterdir()] == ["profile.json"]  # no temp file left behind


def test_atomic_write_interrupted_mid_write_leaves_nothing(tmp_path: Path, monkeypatch):
    target = tmp_path / "profile.json"
    real_fsync = os.fsync

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "x" * 10000)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert list(tmp_path.iterdir()) == []


def test_export_to_missing_folder_is_a_clear_error(tmp_path: Path):
    src = tmp_path / "p.json"
    src.write_text(make_profile().dumps())
    r = runner.invoke(app, ["profiles", "export", str(src), "--out", str(tmp_path / "no" / "such" / "x.json")])
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_a_version_1_file_still_reads_with_its_shared_fixed_parts():
    """Schema 1 (UNet only, one text encoder and VAE for every model) is read: each model gets the fixed parts."""
    d = make_profile().to_json()
    d["schema"] = "ldmpick.profile/1"
    d["fixed"] = {"text_encoder": d["models"][0]["text_encoder"], "vae_decode": d["models"][0]["vae_decode"]}
    for m in d["models"]:
        m["unet_params"], m["unet_step"] = m.pop("denoiser_params"), m.pop("denoiser_step")
        for key in ("family", "cfg", "distilled", "samplers", "text_encoder", "text_encoders", "vae_decode"):
            m.pop(key)
    old = parse_profile_text(json.dumps(d))
    assert old.model("ldm-866m").denoiser_step.median_ms == pytest.approx(12.3)
    assert all(m.text_encoder.median_ms == pytest.approx(6.0) and m.vae_decode.median_ms == pytest.approx(24.0)
               for m in old.models)
    assert old.model("ldm-39m").samplers is None and old.model("ldm-39m").family == "sd"
    assert parse_profile_text(old.dumps()).to_json()["schema"] == "ldmpick.profile/4"  # saved again: version 4


# ---------------------------------------------------------------------------------------------- hostile imports


def _import(path) -> object:
    from ldmpick.files.storage import profiles_dir

    r = runner.invoke(app, ["profiles", "import", str(path)])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert not (profiles_dir().exists() and list(profiles_dir().glob("*.json"))), "nothing may be imported"
    return r


def test_import_refuses_special_and_oversize_files(tmp_path: Path):
    """Issue 11 item 5: /dev/zero would grow without bound, a FIFO would hang; both are refused at once."""
    assert "is not a regular file" in _import("/dev/zero").stderr
    fifo = tmp_path / "shared.json"
    os.mkfifo(fifo)
    assert "is not a regular file" in _import(fifo).stderr
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(11 * 1024 * 1024)
    assert "larger than 10 MB; refusing it" in _import(big).stderr


def test_import_refuses_a_lone_surrogate(tmp_path: Path):
    """Issue 11 item 6: a name with an unpaired surrogate would break every later 'profiles show'."""
    f = tmp_path / "s.json"
    f.write_text(make_profile().dumps().replace('"ldm-39m"', '"ldm-\\ud800"', 1))
    assert "unpaired UTF-16 surrogate (U+D800)" in _import(f).stderr


def test_an_imported_profile_cannot_take_over_the_defaults(tmp_path: Path, monkeypatch):
    """Issue 11 item 7: a profile dated in the future is refused (it would be everyone's newest); one with a
    shipped profile's id is refused (it would shadow it); a profile with too many entries is refused."""
    future = tmp_path / "future.json"
    future.write_text(_mutate(lambda d: d.update(created="9999-12-31T00:00:00Z")))
    assert ("created '9999-12-31T00:00:00Z' is in the future; refusing it" in _import(future).stderr)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "reference.json").write_text(make_profile().dumps())
    monkeypatch.setattr("ldmpick.profiles.store.shipped_profiles_dir", lambda: shipped)
    same = tmp_path / "same.json"
    same.write_text(make_profile(scale=0.01).dumps())  # same id, faster numbers
    assert "has the id of the shipped profile 'reference'" in _import(same).stderr
    many = tmp_path / "many.json"
    many.write_text(_mutate(lambda d: d.update(models=[dict(d["models"][0], name=f"m{i}") for i in range(1000)])))
    assert "models has 1000 entries; a profile holds at most 64" in _import(many).stderr
    samples = tmp_path / "samples.json"
    samples.write_text(_mutate(lambda d: d["models"][0]["denoiser_step"].update(samples_ms=[4.8] * 20_000)))
    assert "samples_ms must be a list of at most 10000 numbers" in _import(samples).stderr


def test_import_refuses_another_model_under_a_built_in_name(tmp_path: Path):
    """A shared profile whose 'ldm-866m' has 12M parameters is not ldmpick's ldm-866m: recommend would predict its
    quality as the 866M model's. Refused with one line naming both counts; under its own name it imports."""
    renamed = tmp_path / "renamed.json"
    renamed.write_text(_mutate(lambda d: d["models"][1].update(denoiser_params=12_000_000)))
    assert "its model 'ldm-866m' has 12.0M parameters, ldmpick's 'ldm-866m' has 865.9M" in _import(renamed).stderr
    mine = tmp_path / "mine.json"
    mine.write_text(_mutate(lambda d: d["models"][1].update(name="my-866m", source="my-866m",
                                                             denoiser_params=12_000_000)))
    r = runner.invoke(app, ["profiles", "import", str(mine)])
    assert r.exit_code == 0, r.output


def test_import_accepts_a_byte_order_mark(tmp_path: Path):
    f = tmp_path / "bom.json"
    f.write_bytes(b"\xef\xbb\xbf" + make_profile().dumps().encode())
    r = runner.invoke(app, ["profiles", "import", str(f)])
    assert r.exit_code == 0, r.output
    assert load_profile(f).to_json() == make_profile().to_json()


# ---------------------------------------------------------------------------------------------- export injection


def test_exports_neutralise_spreadsheet_formulas_and_escape_markdown():
    """Issue 11 item 15: a name like '=cmd|...' is text in a spreadsheet, and '|' does not break a Markdown row."""
    import csv
    import io

    p = make_profile()
    p.models[0].name = "=cmd|' /C calc'!A0"
    p.models[1].name = "+sum|x"
    p.models[2].family = "@evil"
    p.samplers[0].name = "-2+3"
    p.device["name"] = "GPU | with pipe"
    rows = list(csv.DictReader(io.StringIO(export_csv(p))))
    names = [r["name"] for r in rows]
    assert "'=cmd|' /C calc'!A0" in names and "'+sum|x" in names and "'-2+3" in names
    assert all(not v.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for v in r.values() if v), rows
    assert any(r["family"] == "'@evil" for r in rows)
    # numbers stay numbers (a negative number would be neutralised too, but latencies are never negative)
    assert any(r["median_ms"] == "12.3" for r in rows)
    md = export_markdown(p)
    row = next(line for line in md.splitlines() if "cmd" in line)
    assert row.count(" | ") == 7 and "=cmd\\|' /C calc'!A0" in row  # 8 cells, the pipe escaped
    assert "GPU \\| with pipe" in md.splitlines()[0]
