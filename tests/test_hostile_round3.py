"""Reliability round 3, the hostile round (issue 23, part 2): the two patterns behind the worst defects.

1. Model folders are read through the one reader of user files (regular files, a size cap, strict JSON), like
   every other file: a FIFO never hangs, /dev/zero never fills the memory, NaN never reaches a VAE.
2. A profile's claims about a model this installation defines (family, distilled, cfg, samplers) are checked
   against the installation, and profiles are ordered by when they were measured, not by the text of the date.
Every refusal is one line on stderr with exit 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.profiles.schema import parse_profile_text

from conftest import write_config_folder
from test_profile_file import make_profile

runner = CliRunner()


def _one_line(r, *fragments: str) -> None:
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    for f in fragments:
        assert f in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------- 1. model folders


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("where", ["model_index.json", "unet/config.json"])
def test_a_fifo_in_a_model_folder_is_refused_not_waited_on(tmp_path, where):
    folder = write_config_folder(tmp_path, "m")
    (folder / where).unlink()
    os.mkfifo(folder / where)  # reading it would block forever
    _one_line(runner.invoke(app, ["models", "add", "m", str(folder)]), "not a regular file")
    _one_line(runner.invoke(app, ["profile", "--models", str(folder), "--device", "cpu"]), "not a regular file")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_model_index_linked_to_dev_zero_is_refused(tmp_path):
    folder = write_config_folder(tmp_path, "m")
    (folder / "model_index.json").unlink()
    (folder / "model_index.json").symlink_to("/dev/zero")
    _one_line(runner.invoke(app, ["models", "add", "m", str(folder)]), "not a regular file")


def test_an_oversized_config_is_refused(tmp_path):
    folder = write_config_folder(tmp_path, "m")
    cfg = json.loads((folder / "unet" / "config.json").read_text())
    cfg["_padding"] = "x" * (5 * 1024 * 1024)
    (folder / "unet" / "config.json").write_text(json.dumps(cfg))
    _one_line(runner.invoke(app, ["models", "add", "m", str(folder)]), "larger than")


def test_nan_in_a_vae_config_is_refused(tmp_path):
    folder = write_config_folder(tmp_path, "m")
    text = (folder / "vae" / "config.json").read_text().rstrip("}") + ', "scaling_factor": NaN}'
    (folder / "vae" / "config.json").write_text(text)
    _one_line(runner.invoke(app, ["models", "add", "m", str(folder)]), "vae/config.json")


@pytest.mark.parametrize("entry", [[], ["transformers"], ["transformers", 7], [None, "CLIPTokenizer"]])
def test_a_malformed_component_entry_is_refused(tmp_path, entry):
    folder = write_config_folder(tmp_path, "m")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                         "tokenizer": entry}))
    _one_line(runner.invoke(app, ["models", "add", "m", str(folder)]), "component 'tokenizer' must be [library, class]")


def test_pipeline_arguments_in_model_index_are_not_components(tmp_path):
    folder = write_config_folder(tmp_path, "m")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                         "requires_safety_checker": True,
                                                         "safety_checker": [None, None]}))
    r = runner.invoke(app, ["models", "add", "m", str(folder)])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("where", ["unet/code.py", "unet/sub/code.py", "a/b/c/code.py"])
def test_python_code_anywhere_in_a_model_folder_is_refused(tmp_path, where):
    folder = write_config_folder(tmp_path, "m")
    (folder / where).parent.mkdir(parents=True, exist_ok=True)
    (folder / where).write_text("raise SystemExit('ran')\n")
    _one_line(runner.invoke(app, ["models", "add", "m", str(folder)]), "holds Python code")


# ---------------------------------------------------------------------------------------------- 2. profile claims


def _edited(edit) -> str:
    doc = json.loads(make_profile().dumps())
    edit(doc["models"][0])  # ldm-39m, one of the paper's family
    return json.dumps(doc)


@pytest.mark.parametrize("edit, fragment", [
    (lambda m: m.update(distilled=True), "distilled true, but it is not distilled"),
    (lambda m: m.update(family="flux"), "family 'flux', but it is of family 'sd'"),
    (lambda m: m.update(cfg=False), "cfg false"),
    (lambda m: m.update(samplers=["ddim", "lcm"]), "sampler(s) lcm cannot run it"),
])
def test_a_profile_cannot_change_what_a_built_in_model_is(tmp_path, edit, fragment):
    path = tmp_path / "shared.json"
    path.write_text(_edited(edit))
    r = runner.invoke(app, ["profiles", "import", str(path)])
    _one_line(r, "ldm-39m", fragment)
    with pytest.raises(Exception, match="the file is wrong or edited"):
        parse_profile_text(path.read_text())


def test_claims_of_a_model_of_ones_own_are_kept(tmp_path):
    doc = json.loads(make_profile().dumps())
    doc["models"][0].update(name="my-model", source="my-model", distilled=True)
    assert parse_profile_text(json.dumps(doc)).model("my-model").distilled


def test_profiles_are_ordered_by_time_not_by_text():
    """'+23:59' sorts after a fresh UTC stamp as text, though it is almost a day older."""
    old = json.loads(make_profile().dumps())
    old["created"] = "2026-11-24T02:00:00+23:59"  # = 2026-11-23T02:01Z
    fresh = json.loads(make_profile().dumps())
    fresh["created"] = "2026-11-23T03:00:00Z"
    a, b = parse_profile_text(json.dumps(old)), parse_profile_text(json.dumps(fresh))
    assert a.created > b.created  # as text
    assert a.created_at < b.created_at


# ---------------------------------------------------------------------------------------------- instances


def test_demo_train_never_replaces_a_folder_it_did_not_write(tmp_path):
    mine = tmp_path / "demo-c8"
    mine.mkdir()
    (mine / "notes.txt").write_text("my work")
    r = runner.invoke(app, ["demo", "train", "--out", str(tmp_path), "--channels", "8", "--images", "64",
                            "--vae-steps", "2", "--unet-steps", "2", "--batch", "8", "--threads", "1"])
    _one_line(r, "was not written by 'ldmpick demo train'")
    assert (mine / "notes.txt").read_text() == "my work"


def test_two_imports_of_one_id_at_once_cannot_both_succeed(tmp_path):
    import threading

    from ldmpick.files.errors import UsageError
    from ldmpick.profiles.library import import_profile

    src = tmp_path / "p.json"
    src.write_text(make_profile().dumps())
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def one() -> None:
        start.wait()
        try:
            import_profile(src)
            outcomes.append("imported")
        except UsageError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes)[0].startswith("a profile with id") and sorted(outcomes)[1] == "imported", outcomes


def test_a_shared_profiles_error_text_reaches_the_terminal_escaped(tmp_path):
    doc = json.loads(make_profile().dumps())
    doc["models"][2]["error"] = "out of memory \x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\ \x1b[31mred"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    assert runner.invoke(app, ["profiles", "import", str(path)]).exit_code == 0
    r = runner.invoke(app, ["profiles", "show", parse_profile_text(path.read_text()).id])
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.stdout and "\\x1b" in r.stdout


@pytest.mark.parametrize("edit, fragment", [
    (lambda s: s.update(n=s["n"] + 1), ".n is"),
    (lambda s: s.update(mean_ms=s["mean_ms"] * 3), ".mean_ms is"),
    (lambda s: s.update(iqr_ms=0.0), ".iqr_ms is"),
])
def test_a_summary_that_contradicts_its_samples_is_refused(edit, fragment):
    doc = json.loads(make_profile().dumps())
    edit(doc["models"][0]["denoiser_step"])
    with pytest.raises(Exception, match=fragment.replace(".", r"\.")):
        parse_profile_text(json.dumps(doc))


def test_an_unknown_family_label_is_refused():
    doc = json.loads(make_profile().dumps())
    doc["models"][0].update(name="my-model", source="my-model", family="teleport")
    with pytest.raises(Exception, match="family 'teleport' is not a model family"):
        parse_profile_text(json.dumps(doc))


@pytest.mark.parametrize("component, edit, fragment", [
    ("unet", lambda c: c.update(num_class_embeds=1_000_000_000), "'num_class_embeds' is 1000000000"),
    ("unet", lambda c: c.update(norm_num_groups=0), "'norm_num_groups' must be positive"),
    ("vae", lambda c: c.update(block_out_channels=[8] * 40, down_block_types=["DownEncoderBlock2D"] * 40,
                                up_block_types=["UpDecoderBlock2D"] * 40), "resolution levels"),
])
def test_absurd_component_sizes_are_refused_before_anything_is_built(tmp_path, component, edit, fragment):
    folder = write_config_folder(tmp_path, "m")
    path = folder / component / "config.json"
    cfg = json.loads(path.read_text())
    edit(cfg)
    path.write_text(json.dumps(cfg))
    _one_line(runner.invoke(app, ["models", "add", "m", str(folder)]), fragment)


def test_prompt_lines_end_only_at_newlines(tmp_path):
    from ldmpick.generation.runner import read_prompts_file

    f = tmp_path / "prompts.txt"
    f.write_text("a red circle\x0con blue\u2028ok\x85fine\r\nsecond\n\n", encoding="utf-8")
    assert read_prompts_file(f) == ["a red circle\x0con blue\u2028ok\x85fine", "second"]


def test_an_enormous_prompt_is_refused_before_anything_loads(tmp_path):
    r = runner.invoke(app, ["generate", "x" * 20_000, "--model", "demo-c8", "--steps", "2", "--out",
                            str(tmp_path / "o")])
    _one_line(r, "20,000 characters long")
    assert not (tmp_path / "o").exists()


def test_an_empty_cluster_address_is_refused():
    pytest.importorskip("ray")
    from ldmpick.files.errors import UsageError
    from ldmpick.transport.ray_cluster import connected

    with pytest.raises(UsageError, match="--cluster '' is empty"):
        with connected(""):
            pass


def test_a_bad_value_from_an_ldmpick_variable_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("LDMPICK_MODE", "bogus")
    _one_line(runner.invoke(app, ["recommend", "--budget", "2s"]), "$LDMPICK_MODE: unknown execution mode 'bogus'")
    monkeypatch.setenv("LDMPICK_DEVICE", "tpu")
    r = runner.invoke(app, ["generate", "x", "--model", "demo-c8", "--steps", "2", "--device", "tpu", "--out",
                            str(tmp_path / "o")])
    _one_line(r, "unknown device 'tpu'")
    assert "$LDMPICK_DEVICE" not in r.stderr  # typed on the command line: the variable is not the culprit


def test_library_warnings_do_not_break_the_one_line_promise():
    """Warnings raised while a command runs (numpy, torch, transformers ...) are silenced unless --debug."""
    import warnings

    from ldmpick.cli import quiet_libraries

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_libraries()
        warnings.warn("a library's deprecation", DeprecationWarning)
    assert caught == []


def _interrupted_profile(monkeypatch, args: list[str]) -> Path:
    """Run ``profile args`` until its first denoiser measurement, which is interrupted (Ctrl-C): the partial file."""
    import ldmpick.measurement.profiler as profiling

    real = profiling.measure_denoiser
    calls = {"n": 0}

    def once_then_interrupt(*a, **kw):
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(profiling, "measure_denoiser", once_then_interrupt)
    r = runner.invoke(app, args)
    assert r.exit_code == 130, r.output
    monkeypatch.setattr(profiling, "measure_denoiser", real)
    partial = Path(args[args.index("--out") + 1] + ".partial.json")
    assert partial.exists()
    return partial


def _quick_profile(models: str, out: Path) -> list[str]:
    from test_profile_cli import _quick

    return _quick(models) + ["--out", str(out)]


def test_a_partial_profile_is_resumed_only_by_its_own_request(tiny_models, monkeypatch, tmp_path):
    small, large = tiny_models
    out = tmp_path / "p.json"
    partial = _interrupted_profile(monkeypatch, _quick_profile(f"{small},{large}", out))
    kept = json.loads(partial.read_text())
    assert kept["wall_seconds"] > 0  # the time spent so far travels with the partial file
    r = runner.invoke(app, _quick_profile(str(large), out) + ["--resume"])  # other --models, same --out
    _one_line(r, "cannot resume", "tiny-small")
    doc = json.loads(partial.read_text())
    doc["device"]["name"] = "Another CPU"  # another machine's partial
    partial.write_text(json.dumps(doc))
    _one_line(runner.invoke(app, _quick_profile(f"{small},{large}", out) + ["--resume"]), "another device")
    partial.write_text(json.dumps(kept))
    r = runner.invoke(app, _quick_profile(f"{small},{large}", out) + ["--resume"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["wall_seconds"] > kept["wall_seconds"]  # both sessions counted


HEADER = "model,unet_params,sampler,steps,guidance,resolution,metric,value,num_samples,dataset,series,source\n"


def _user_table(rows: str) -> None:
    from ldmpick.quality.table import user_table_path

    table = user_table_path()
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(HEADER + rows)


def test_an_fid_of_zero_is_refused_it_would_give_a_zero_width_interval():
    _user_table("sd-1.5,,ddim,25,7.5,512,fid,0,30000,mine,anchor:a,anchor:a\n")
    _one_line(runner.invoke(app, ["fit"]), "not a plausible fid")


def test_two_declared_anchors_that_disagree_are_refused_not_resolved_silently():
    _user_table("sd-1.5,,ddim,25,7.5,512,fid,12.0,30000,mine,anchor:a,anchor:a\n"
                "sd-1.5,,ddim,25,7.5,512,fid,19.0,30000,mine,anchor:b,anchor:b\n")
    _one_line(runner.invoke(app, ["fit"]), "two anchors of 'sd-1.5'", "12", "19")
    _user_table("sd-1.5,,ddim,25,7.5,512,fid,12.0,30000,mine,anchor:a,anchor:a\n")  # one anchor: fine
    assert runner.invoke(app, ["fit"]).exit_code == 0


def _stored_shard(tmp_path):
    import numpy as np

    from ldmpick.calibration.shards import ShardResult, ShardStore, ShardTask

    task = ShardTask("demo-c8", "ddim", 4, 0, 8)
    store = ShardStore(tmp_path / "shards", "abc123")
    store.save(ShardResult(task, np.ones((8, 16), dtype=np.float32), {"shape": 3}, 2, 1.5, "here:1"))
    return store, task


@pytest.mark.parametrize("edit", [
    lambda m: m.update(all_hits=True),  # true as a hit count was used (FID 883.9 instead of 378.3)
    lambda m: m.update(attribute_hits={"shape": 9}),  # more hits than images
    lambda m: m.update(seconds="soon"),  # was a ValueError, exit 1, naming no shard
    lambda m: m.update(worker=["x"]),
])
def test_a_malformed_finished_shard_is_a_one_line_error_naming_it(tmp_path, edit):
    from ldmpick.files.errors import UsageError

    store, task = _stored_shard(tmp_path)
    meta_path = store.folder / f"{task.key}.json"
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(UsageError, match=f"shard '{meta_path}' is malformed"):
        store.load([task])


def test_shard_features_of_another_dtype_are_refused(tmp_path):
    import numpy as np
    from safetensors.numpy import save

    from ldmpick.files.errors import UsageError

    store, task = _stored_shard(tmp_path)
    (store.folder / f"{task.key}.safetensors").write_bytes(save({"features": np.ones((8, 16), dtype=np.int8)}))
    with pytest.raises(UsageError, match="is malformed"):
        store.load([task])
    assert store.load([]) == {}


def test_a_linked_shard_folder_is_never_written_through(tmp_path):
    from ldmpick.calibration.shards import ShardStore
    from ldmpick.files.errors import UsageError

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "shards").symlink_to(elsewhere)
    store = ShardStore(tmp_path / "shards", "abc123")
    with pytest.raises(UsageError, match="is a link"):
        store.load([])
    with pytest.raises(UsageError, match="is a link"):
        store.save(None)  # refused before anything is written
    assert list(elsewhere.iterdir()) == []


def test_a_quality_table_of_absurd_length_is_refused_before_a_law_is_written(tmp_path):
    from ldmpick.quality.table import MAX_TABLE_ROWS

    table = tmp_path / "big.csv"
    table.write_text(HEADER + "sd-1.5,,ddim,25,7.5,512,fid,12.0,30000,mine,anchor:a,anchor:a\n" * (MAX_TABLE_ROWS + 1))
    _one_line(runner.invoke(app, ["fit", "--table", str(table)]), f"more than {MAX_TABLE_ROWS:,} data rows")


def test_a_broken_user_law_says_that_fit_rewrites_it():
    from ldmpick.quality.law import user_law_path

    user_law_path().parent.mkdir(parents=True, exist_ok=True)
    user_law_path().write_text("{\"schema\": ")
    _one_line(runner.invoke(app, ["recommend", "--budget", "2s"]), "'ldmpick fit' rewrites it")


def test_train_judge_refuses_a_linked_output_before_training(tmp_path, monkeypatch):
    import ldmpick.calibration.image_quality as iq

    def never(*a, **k):
        raise AssertionError("trained before the output was checked")

    monkeypatch.setattr(iq, "train_judge", never)
    out = tmp_path / "judge"
    out.mkdir()
    (out / "world_judge.safetensors").symlink_to(tmp_path / "elsewhere.bin")
    r = runner.invoke(app, ["demo", "train-judge", "--out", str(out), "--steps", "1", "--images", "128"])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.output
    assert "link" in r.stderr


def test_a_read_only_data_folder_without_locks_is_a_usage_error(monkeypatch, tmp_path):
    import errno

    from ldmpick.files import storage
    from ldmpick.files.errors import UsageError

    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if self.name == "locks":
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(UsageError, match="must be writable"):
        storage.lock_file_for(tmp_path / "x.json")
    assert UsageError.exit_code == 2


def test_a_port_that_is_no_ray_server_is_refused_at_once():
    import socket
    import threading

    from ldmpick.files.errors import RuntimeFailure
    from ldmpick.transport.ray_cluster import check_reachable

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def answer_like_a_web_server() -> None:
        conn, _ = server.accept()
        conn.recv(64)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    threading.Thread(target=answer_like_a_web_server, daemon=True).start()
    with pytest.raises(RuntimeFailure, match="is not a Ray server"):  # (Ray itself retried for 32 s)
        check_reachable(f"127.0.0.1:{port}", timeout_s=3.0)
    server.close()
