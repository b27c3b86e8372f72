"""'ldmpick calibrate --scorer' end to end on the shipped demo-c8 with a tiny random CLIP scorer built in code (issue
27, deliverable 2): a time estimate before it starts, the same seeds and prompts at every step count, rows on the
scorer's own scale with the sample count in the user's quality table, resumable (a self-agreement reference is
never generated twice), and one-line errors for a bad scorer, a pickle-only checkpoint and options that do not go
together. The tiny scorer's numbers mean nothing: plumbing only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldmpick.calibration import driver as calib
from ldmpick.calibration import images as calib_images
from ldmpick.cli import app
from ldmpick.models.catalogue import resolve_model
from ldmpick.quality.table import read_table_file, user_table_path

from test_calibration import interrupt_after_first
from test_scorers import build_tiny_clip

runner = CliRunner()
GRID = ["--models", "demo-c8", "--samplers", "ddim", "--steps", "1,2,4", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("scorer") / "tiny-clip")


@pytest.fixture
def generated(monkeypatch):
    """Every generate_images call of the run: (steps, first seed, prompts)."""
    calls: list[tuple[int, int, list[str]]] = []
    real = calib_images.generate_images

    def spy(pipe, prompts, sampler, steps, guidance, seed, batch, resolution, extra=None):
        calls.append((steps, seed, list(prompts)))
        return real(pipe, prompts, sampler, steps, guidance, seed, batch, resolution, extra)

    monkeypatch.setattr(calib_images, "generate_images", spy)
    return calls


def _calibrate(*extra: str):
    return runner.invoke(app, ["calibrate", *GRID, *extra])


def test_calibrate_clip_scorer_writes_rows_on_its_own_scale_with_the_sample_count(tiny_clip, generated):
    r = _calibrate("--scorer", "clip", "--scorer-model", str(tiny_clip), "--samples", "6", "--batch", "4", "--json")
    assert r.exit_code == 0, r.output
    first = r.stderr.splitlines()[0]
    assert first.startswith("estimated ") and "18 image(s) in 3 configuration(s)" in first, r.stderr
    assert "from profile " in first and "scoring not included" in first
    doc = json.loads(r.stdout)
    results = doc["results"]
    assert [x["steps"] for x in results] == [1, 2, 4] and doc["dataset"] == "parti-48"
    rows = read_table_file(user_table_path())
    assert user_table_path().read_text(encoding="utf-8").startswith("# schema: ldmpick.quality/2")
    assert len(rows) == 3
    key = results[0]["scale"]
    assert key.startswith("clip-score:tiny-clip-") and key.endswith(":parti-48:32px")
    for row, res in zip(rows, results):
        assert row.metric == key and row.num_samples == 6 and row.dataset == "parti-48"
        assert row.series == "calibrated:parti-48" and row.source.startswith("calibrated:")
        assert row.value == pytest.approx(res["score"]) and 0 <= row.value <= 100 and res["fid"] is None
        assert res["samples"] == 6 and res["score_sd"] >= 0
        assert row.guidance == resolve_model("demo-c8").guidance  # the model's own default guidance
    # the same seeds and prompts at every step count: image i has seed i and prompt i of the set
    by_steps: dict[int, list[tuple[int, list[str]]]] = {}
    for steps, seed, prompts in generated:
        by_steps.setdefault(steps, []).append((seed, prompts))
    assert sorted(by_steps) == [1, 2, 4]
    assert by_steps[1] == by_steps[2] == by_steps[4]
    assert [s for s, _ in by_steps[1]] == [0, 4] and by_steps[1][0][1] == ["wood", "peace", "42", "derision"]
    # calibrating again replaces its rows; another scorer's rows are another scale, kept beside them
    assert _calibrate("--scorer", "clip", "--scorer-model", str(tiny_clip), "--samples", "6", "--no-fit").exit_code == 0
    assert len(read_table_file(user_table_path())) == 3


def test_rows_keep_the_guidance_and_default_to_one_image_per_prompt(tiny_clip):
    r = runner.invoke(app, ["calibrate", "--models", "demo-c8", "--samplers", "ddim", "--steps", "1", "--threads",
                            "1", "--scorer", "pickscore", "--scorer-model", str(tiny_clip), "--batch", "16",
                            "--guidance", "3", "--no-fit"])
    assert r.exit_code == 0, r.output
    (row,) = read_table_file(user_table_path())
    assert row.num_samples == 48 and row.guidance == 3.0 and row.metric.startswith("pickscore:tiny-clip-")
    assert "Measured pickscore on parti-48 (48 images per configuration" in " ".join(r.stdout.split())


def test_self_agreement_measures_the_reference_step_count_even_when_the_grid_leaves_it_out(tiny_clip, generated):
    r = _calibrate("--scorer", "self-agreement", "--scorer-model", str(tiny_clip), "--samples", "4",
                   "--reference-steps", "8", "--json", "--no-fit")
    assert r.exit_code == 0, r.output
    assert "16 image(s) in 4 configuration(s)" in r.stderr.splitlines()[0]
    assert sorted({steps for steps, _, _ in generated}) == [1, 2, 4, 8]
    results = json.loads(r.stdout)["results"]
    assert [x["steps"] for x in results] == [1, 2, 4]  # the reference is measured, not stored as a row
    assert all(x["scale"].endswith(":32px:ref8") and -1 <= x["score"] <= 1 for x in results)
    # with the reference in the grid (the default: the most of --steps), its own row agrees perfectly
    r = _calibrate("--scorer", "self-agreement", "--scorer-model", str(tiny_clip), "--samples", "4", "--json",
                   "--no-fit")
    assert r.exit_code == 0, r.output
    results = json.loads(r.stdout)["results"]
    assert results[-1]["steps"] == 4 and results[-1]["score"] == pytest.approx(1.0, abs=1e-5)
    assert results[-1]["scale"].endswith(":ref4")


def test_an_interrupted_scorer_calibration_resumes_and_never_regenerates_what_it_kept(tiny_clip, generated):
    args = ["--scorer", "self-agreement", "--scorer-model", str(tiny_clip), "--samples", "4", "--reference-steps",
            "8", "--no-fit", "--json"]
    from ldmpick.jobs import calibrate as job

    req = job.build_request(models="demo-c8", samplers="ddim", steps=[1, 2, 4], samples=4, seed=0, guidance=None,
                            batch=None, device="cpu", dtype=None, reference=None, prompts_file=None,
                            inception_weights=None, scorer="self-agreement", scorer_model=str(tiny_clip),
                            reference_steps=8)
    partial = interrupt_after_first(req, shards=calib.shard_store(req))
    assert sorted({steps for steps, _, _ in generated}) == [1, 8]  # the reference first, then 1 step
    r = _calibrate(*args)
    assert r.exit_code == 2 and "--resume" in r.stderr and r.stderr.count("\n") == 1, r.output
    generated.clear()
    r = _calibrate(*args, "--resume")
    assert r.exit_code == 0, r.output
    assert "1 configuration(s) already measured" in r.stderr
    assert "8 image(s) in 2 configuration(s)" in r.stderr  # the estimate counts only what is left
    assert sorted({steps for steps, _, _ in generated}) == [2, 4]  # the kept reference is not generated again
    assert [x["steps"] for x in json.loads(r.stdout)["results"]] == [1, 2, 4] and not partial.exists()
    assert len(read_table_file(user_table_path())) == 3


def test_a_tampered_scorer_partial_is_refused(tiny_clip):
    from ldmpick.jobs import calibrate as job

    req = job.build_request(models="demo-c8", samplers="ddim", steps=[1, 2], samples=4, seed=0, guidance=None,
                            batch=None, device="cpu", dtype=None, reference=None, prompts_file=None,
                            inception_weights=None, scorer="clip", scorer_model=str(tiny_clip))
    partial = calib.partial_path(req)
    partial.parent.mkdir(parents=True, exist_ok=True)
    cal = calib.run_calibration(req, checkpoint=lambda c: calib.write_partial(c, partial))
    assert [r.steps for r in calib.read_partial(partial, req)] == [1, 2]
    doc = json.loads(partial.read_text())
    for field, value, message in [("score", 150.0, "score must be a number between 0 and 100"),
                                  ("scale", "clip-score:x-1:parti-48:32px", "scale must be clip-score:tiny-clip-"),
                                  ("fid", 12.0, "fid must be null")]:
        bad = json.loads(json.dumps(doc))
        bad["results"][0][field] = value
        partial.write_text(json.dumps(bad))
        with pytest.raises(Exception, match=message):
            calib.read_partial(partial, req)
    assert cal.results[0].scale == doc["results"][0]["scale"]


def test_a_users_prompts_file_is_its_own_prompt_set(tiny_clip, tmp_path, generated):
    prompts = tmp_path / "mine.txt"
    prompts.write_text("a red circle\na blue square\n", encoding="utf-8")
    r = _calibrate("--scorer", "clip", "--scorer-model", str(tiny_clip), "--prompts-file", str(prompts), "--json",
                   "--no-fit")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["dataset"].startswith("mine-") and all(x["samples"] == 2 for x in doc["results"])
    assert all(x["scale"].split(":")[2] == doc["dataset"] for x in doc["results"])
    assert {tuple(p) for _, _, p in generated} == {("a red circle",), ("a blue square",)}


def test_the_estimate_rests_on_the_profile_and_says_when_there_is_none(tiny_clip, foreign_device):
    r = _calibrate("--scorer", "clip", "--scorer-model", str(tiny_clip), "--samples", "2", "--no-fit")
    assert r.exit_code == 0, r.output
    first = r.stderr.splitlines()[0]
    assert first.startswith("no time estimate for 6 image(s) in 3 configuration(s): profile ") and \
        "was measured on another device; no profile measures demo-c8 on this device" in first, first
    assert "ldmpick profile --models demo-c8" in first


def test_the_estimate_adds_each_configurations_predicted_calls():
    from ldmpick.costs.latency import predict
    from ldmpick.generation.runner import load_profile_for

    req = calib.CalibrationRequest(models=["demo-c8"], samplers=["ddim"], steps=[1, 4], samples=5, batch=1)
    est = calib.estimate_duration(req)
    profile = load_profile_for(None, "cpu", models=["demo-c8"]).profile
    assert est.profile_id == profile.id and est.images == 10 and est.configs == 2
    want = [5 * predict(profile, ["demo-c8"], "ddim", k).total_ms / 1e3 for k in (1, 4)]
    assert [s for *_, s in est.per_config] == pytest.approx(want) and est.seconds == pytest.approx(sum(want))
    assert want[1] > want[0]
    done = [calib.CalibrationResult("demo-c8", 1, "ddim", 1, 10.0, None, None, 5, 32, 1.0)]
    assert calib.estimate_duration(req, done).configs == 1  # what is measured already is not counted


def test_a_pickle_only_scorer_is_refused_before_anything_runs(tiny_clip, tmp_path, generated):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_clip, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"never loaded")
    r = _calibrate("--scorer", "clip", "--scorer-model", str(folder))
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert "only pickle-based weights" in r.stderr and not generated and not user_table_path().exists()


@pytest.mark.parametrize("args, message", [
    (["--scorer", "clipp", "--scorer-model", "x"], "unknown scorer 'clipp'; did you mean 'clip'?"),
    (["--scorer", "clip"], "--scorer clip needs --scorer-model"),
    (["--scorer", "clip", "--scorer-model", "/nonexistent/clip"], "is neither a folder nor a hub id"),
    (["--scorer", "clip", "--scorer-model", "TINY", "--reference-steps", "50"], "--reference-steps goes with"),
    (["--scorer", "self-agreement", "--scorer-model", "TINY", "--reference-steps", "0"], "--reference-steps needs"),
    (["--scorer", "clip", "--scorer-model", "TINY", "--reference", "."], "leave out --reference"),
    (["--scorer", "clip", "--scorer-model", "TINY", "--cluster", "local"], "--cluster runs FID calibrations"),
    (["--scorer-model", "TINY"], "--scorer-model, --prompt-set and --reference-steps go with --scorer"),
    (["--prompt-set", "parti-48"], "--scorer-model, --prompt-set and --reference-steps go with --scorer"),
    (["--scorer", "clip", "--scorer-model", "TINY", "--prompt-set", "parti-4"], "unknown prompt set 'parti-4'"),
    (["--scorer", "clip", "--scorer-model", "TINY", "--prompt-set", "parti-48", "--prompts-file", "p.txt"],
     "give --prompt-set or --prompts-file, not both"),
    (["--scorer", "clip", "--scorer-model", "world-judge"], "--scorer-model world-judge has no text tower"),
])
def test_bad_scorer_options_are_one_line_errors(tiny_clip, generated, args, message):
    r = _calibrate(*[str(tiny_clip) if a == "TINY" else a for a in args])
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not generated
