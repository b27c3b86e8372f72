"""Calibration on a Ray cluster (issue 15): a local two-worker cluster in the test process, a tiny demo grid.

The cluster run and the single-process run execute the same shard code with the same seeds and the same threads per
task, so they must give the same FID and prompt accuracy; a worker killed mid-run, or a driver interrupted, loses
only unfinished shards.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from typer.testing import CliRunner  # noqa: E402

from ldmpick.calibration import driver as calib  # noqa: E402
from ldmpick.calibration.shards import shard_tasks  # noqa: E402
from ldmpick.cli import app  # noqa: E402
from ldmpick.transport.ray_cluster import RayShardRunner, cluster_info  # noqa: E402

runner = CliRunner()
GRID = dict(models=["demo-c8"], samplers=["ddim"], steps=[1, 2], samples=16, batch=4)  # 8 shards of 4 images


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield cluster_info("local")
    ray.shutdown()


@pytest.fixture(scope="module")
def single_process_results():
    """The reference: the same grid measured in this process with one thread, as each cluster task runs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cal = calib.run_calibration(calib.CalibrationRequest(**GRID))
    finally:
        torch.set_num_threads(before)
    return [(r.model, r.steps, r.fid, r.prompt_acc, r.prompt_all) for r in cal.results]


def _measured(cal):
    return [(r.model, r.steps, r.fid, r.prompt_acc, r.prompt_all) for r in cal.results]


def test_the_cluster_gives_the_same_numbers_as_one_process(local_cluster, single_process_results):
    req = calib.CalibrationRequest(**GRID)
    ran = []

    class Counting(RayShardRunner):
        def run(self, tasks):
            ran.extend(tasks)
            yield from super().run(tasks)

    cal = calib.run_calibration(req, runner=Counting(req, local_cluster), shards=calib.shard_store(req))
    assert _measured(cal) == single_process_results
    assert len(ran) == len(shard_tasks(req)) == 8
    workers = {r.worker for r in calib.shard_store(req).load(shard_tasks(req)).values()}
    assert len(workers) >= 1 and all(":" in w for w in workers)


def _ray_worker_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::_measure_shard"):
                pids.append(int(entry.name))
    return pids


def test_a_worker_killed_mid_run_loses_nothing_that_finished(local_cluster, single_process_results):
    req = calib.CalibrationRequest(**GRID)
    store = calib.shard_store(req)
    killed: list[int] = []
    saved_before_kill: dict[str, float] = {}

    def progress(done, total, label):
        if not killed and "images/s" in label:  # the first finished shard: kill a worker busy with another
            busy = _ray_worker_pids()
            if busy:
                for key, res in store.load(shard_tasks(req)).items():
                    saved_before_kill[key] = res.seconds
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])

    cal = calib.run_calibration(req, runner=RayShardRunner(req, local_cluster), shards=store, progress=progress)
    assert killed, "no busy worker to kill (the grid finished too fast to test this)"
    assert _measured(cal) == single_process_results
    after = store.load(shard_tasks(req))
    assert len(after) == 8
    for key, seconds in saved_before_kill.items():  # finished shards were kept, not measured again
        assert after[key].seconds == seconds


def test_resume_after_the_driver_is_interrupted_runs_only_the_missing_shards(local_cluster, single_process_results):
    req = calib.CalibrationRequest(**GRID)
    store = calib.shard_store(req)
    partial = calib.partial_path(req)
    partial.parent.mkdir(parents=True, exist_ok=True)
    finished = []

    def stop_after_three(done, total, label):
        if "images/s" in label:
            finished.append(label)
            if len(finished) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        calib.run_calibration(req, runner=RayShardRunner(req, local_cluster), shards=store,
                              checkpoint=lambda c: calib.write_partial(c, partial), progress=stop_after_three)
    kept = store.load(shard_tasks(req))
    assert len(kept) >= 3

    ran = []

    class Counting(RayShardRunner):
        def run(self, tasks):
            ran.extend(tasks)
            yield from super().run(tasks)

    resume_from = calib.read_partial(partial, req) if partial.exists() else []
    cal = calib.run_calibration(req, runner=Counting(req, local_cluster), shards=store, resume_from=resume_from)
    assert _measured(cal) == single_process_results
    done_before = {r.steps for r in resume_from}
    assert {t.key for t in ran} == {t.key for t in shard_tasks(req) if t.steps not in done_before} - set(kept)


def test_calibrate_cli_on_the_cluster_stores_rows_and_clears_its_partial_files(local_cluster, single_process_results):
    args = ["calibrate", "--models", "demo-c8", "--samplers", "ddim", "--steps", "1,2", "--samples", "16",
            "--batch", "4", "--cluster", "local", "--threads", "1", "--no-fit", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    import json

    doc = json.loads(result.stdout[result.stdout.index("{"):])
    assert [(r["model"], r["steps"], r["fid"], r["prompt_acc"], r["prompt_all"]) for r in doc["results"]] == \
        single_process_results
    req = calib.CalibrationRequest(**GRID)
    assert not calib.partial_path(req).exists() and not calib.shard_store(req).folder.exists()


def test_cluster_without_ray_is_a_one_line_error_with_the_install_command(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    result = runner.invoke(app, ["calibrate", "--models", "demo-c8", "--samplers", "ddim", "--steps", "1",
                                 "--samples", "4", "--cluster", "local"])
    assert result.exit_code == 2
    assert 'pip install "ldmpick[cluster]"' in result.output and "Traceback" not in result.output


def test_profile_on_the_cluster_stores_one_profile_per_device_type(local_cluster, tiny_models):
    import json

    from ldmpick.profiles.schema import load_profile
    from ldmpick.profiles.store import list_profile_files
    from ldmpick.files.storage import profiles_dir

    small, _ = tiny_models
    result = runner.invoke(app, ["profile", "--models", str(small), "--device", "cpu", "--resolution", "64",
                                 "--repeats", "3", "--warmup", "1", "--samplers", "ddim", "--cluster", "local",
                                 "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout[result.stdout.index("{"):])
    assert doc["cluster"] == "local" and len(doc["profiles"]) == 1  # one node, one CPU type
    files = list_profile_files(profiles_dir())
    assert len(files) == 1
    prof = load_profile(files[0])
    assert prof.id == doc["profiles"][0]["profile"] and prof.device["kind"] == "cpu"
    assert prof.device["name"] == doc["profiles"][0]["device"]
    assert [m.name for m in prof.models] == ["tiny-small"] and prof.models[0].ok


@pytest.mark.parametrize("address, message, code", [
    ("127.0.0.1:1", "cannot reach the Ray cluster at '127.0.0.1:1'", 1),  # nothing listens: Ray would retry minutes
    ("nowhere", "give 'local', 'auto', or a Ray address host:port", 2),
])
def test_an_unreachable_cluster_address_is_one_line_at_once(address, message, code):
    result = runner.invoke(app, ["calibrate", "--models", "demo-c8", "--samplers", "ddim", "--steps", "1",
                                 "--samples", "4", "--cluster", address])
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
