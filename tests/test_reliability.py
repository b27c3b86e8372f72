"""Reliability of the profile path: real concurrent writers, a real Ctrl-C then --resume, fuzzed imports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ldmpick.files.errors import ProfileError
from ldmpick.profiles.schema import Profile, load_profile, parse_profile_text

from test_profile_file import make_profile

WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_profile_file import make_profile
    from ldmpick.profiles.store import save_profile
    scale = float(sys.argv[1])
    for i in range(40):
        save_profile(make_profile(scale=scale + i / 1000), {target!r})
    """
)


def test_two_processes_writing_one_profile_never_corrupt_it(tmp_path: Path):
    target = tmp_path / "shared.json"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests=str(Path(__file__).parent), target=str(target)))
    procs = [subprocess.Popen([sys.executable, str(script), s]) for s in ("1.0", "2.0")]
    reads = 0
    while any(p.poll() is None for p in procs):
        if target.exists():
            parse_profile_text(target.read_text())  # a reader never sees a half-written file
            reads += 1
        time.sleep(0.005)
    assert [p.returncode for p in procs] == [0, 0]
    final = load_profile(target)
    assert final.model("ldm-866m").unet_step.median_ms > 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert reads > 0


CTRL_C_AFTER_FIRST_MODEL = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from ldmpick.files import storage

    real, note = storage.atomic_write_text, Path(sys.argv[1])

    def write(path, text):
        real(path, text)
        if str(path).endswith(".partial.json") and json.loads(text).get("models"):
            note.write_text(str(path))
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, exactly when the first model is kept

    storage.atomic_write_text = write
    from ldmpick.cli import main

    sys.argv = ["ldmpick", *sys.argv[2:]]
    main()
    """
)


@pytest.mark.slow
def test_ctrl_c_keeps_completed_measurements_and_resume_finishes(tiny_models, tmp_path: Path, ldmpick_home):
    """A real SIGINT in a real process, sent by the process itself right after the first model's measurements reach
    the partial file: no waiting on the clock, the same moment on a busy machine as on an idle one."""
    small, large = tiny_models
    out = tmp_path / "p.json"
    note = tmp_path / "interrupted-at"
    args = ["profile", "--models", f"{small},{large}", "--device", "cpu", "--resolution", "32", "--samplers", "ddim",
            "--repeats", "5", "--max-seconds", "2", "--threads", "1", "--out", str(out)]
    env = dict(os.environ, LDMPICK_HOME=str(ldmpick_home))
    run = subprocess.run([sys.executable, "-c", CTRL_C_AFTER_FIRST_MODEL, str(note), *args], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 130, run.stderr
    assert "rerun with --resume" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()
    partial = Path(note.read_text())
    kept = load_profile(partial)
    assert not kept.complete and [m.name for m in kept.models] == ["tiny-small"]

    resumed = subprocess.run([sys.executable, "-m", "ldmpick.cli", *args, "--resume"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    final = load_profile(out)
    assert final.complete and [m.name for m in final.models] == ["tiny-small", "tiny-large"]
    assert final.model("tiny-small").unet_step.samples_ms == kept.model("tiny-small").unet_step.samples_ms
    assert not partial.exists()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fuzz_random_json_is_refused_cleanly(value):
    try:
        parse_profile_text(json.dumps(value))
    except ProfileError:
        pass


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


VALID = make_profile().to_json()
PATHS = list(_paths(VALID))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), json_values)
def test_fuzz_mutated_profiles_give_a_clean_error_or_a_valid_profile(path, value):
    data = json.loads(json.dumps(VALID))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        profile = parse_profile_text(json.dumps(data))
    except ProfileError:
        return
    assert isinstance(profile, Profile)
    # whatever was accepted must serialise again and be usable
    again = parse_profile_text(profile.dumps())
    for m in again.models:
        if m.ok:
            assert m.unet_step.median_ms >= 0


# ---------------------------------------------------------------------------------------------- generate's files

KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from PIL import Image
    from ldmpick.generation import outputs

    folder, kill_at, point = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    calls = 0
    real = getattr(os, point)

    def counted(*args, **kwargs):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # what kill -9 does: no cleanup, no finally
        return real(*args, **kwargs)

    setattr(os, point, counted)
    sidecar = outputs.create_sidecar(folder, {"images": []})
    first = outputs.sidecar_number(sidecar)
    for seed in range(3):
        path = outputs.save_image(folder, Image.new("RGB", (8, 8), (seed, 0, 0)), "a cat", seed, {"seed": str(seed)},
                                  first)
        first = None
    """
)


def test_kill_9_during_generate_never_leaves_an_empty_image_or_one_without_its_record(tmp_path: Path):
    from PIL import Image

    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")]))
    for point, n in (("fsync", 7), ("link", 4)):  # every write is fsynced, then linked to its name
        for kill_at in range(1, n + 1):
            folder = tmp_path / f"{point}-{kill_at}"
            folder.mkdir()
            proc = subprocess.run([sys.executable, str(script), str(folder), str(kill_at), point], env=env,
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode == -signal.SIGKILL, proc.stderr
            visible = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
            pngs = [n for n in visible if n.endswith(".png")]
            for name in visible:
                assert (folder / name).stat().st_size > 0, (point, kill_at, name)
            for name in pngs:
                with Image.open(folder / name) as im:
                    im.load()  # complete, not truncated
            if pngs:
                assert "0001-run.json" in visible  # the record was there before the first image
                json.loads((folder / "0001-run.json").read_text())
            assert set(visible) <= {"0001-run.json", "0001-a-cat-s0.png", "0002-a-cat-s1.png", "0003-a-cat-s2.png"}


def test_two_runs_in_one_folder_take_different_names_and_leave_no_lock_files(tmp_path: Path):
    from PIL import Image

    from ldmpick.generation import outputs

    folder = tmp_path / "out"
    folder.mkdir()
    a = outputs.create_sidecar(folder, {"run": "a"})
    b = outputs.create_sidecar(folder, {"run": "b"})
    assert (a.name, b.name) == ("0001-run.json", "0002-run.json")
    img = Image.new("RGB", (4, 4))
    first_a = outputs.save_image(folder, img, "x", 1, {}, outputs.sidecar_number(a))
    first_b = outputs.save_image(folder, img, "x", 1, {}, outputs.sidecar_number(b))
    again = outputs.save_image(folder, img, "x", 1, {}, outputs.sidecar_number(a))  # the name is taken: next one
    assert (first_a.name, first_b.name, again.name) == ("0001-x-s1.png", "0002-x-s1.png", "0003-x-s1.png")
    assert sorted(p.name for p in folder.iterdir()) == ["0001-run.json", "0001-x-s1.png", "0002-run.json",
                                                        "0002-x-s1.png", "0003-x-s1.png"]  # no lock, no temp


def test_a_lock_leaves_nothing_beside_the_file_it_guards(tmp_path: Path):
    from ldmpick.files.storage import atomic_write_text, file_lock, lock_file_for

    target = tmp_path / "p.json"
    with file_lock(target):
        atomic_write_text(target, "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]
    assert lock_file_for(target) == lock_file_for(tmp_path / "." / "p.json")  # one lock per file, however named


# ---------------------------------------------------------------------------------------------- threads and memory


def test_a_busy_machine_gets_fewer_threads_and_advice(monkeypatch):
    from ldmpick.hardware import execution

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(execution, "physical_cores", lambda: 4)
    monkeypatch.setattr(execution, "competing_tasks", lambda: 0.0)
    idle = execution.choose_threads(None)
    assert (idle.threads, idle.source, idle.advice("cpu")) == (4, "default", None)
    monkeypatch.setattr(execution, "competing_tasks", lambda: 3.0)
    busy = execution.choose_threads(None)
    assert busy.threads == 1 and busy.busy
    advice = busy.advice("cpu")
    assert "busy (3 other running task(s) on 4 core(s))" in advice and "1 torch thread(s)" in advice
    assert "run when the machine is idle" in advice and busy.advice("cuda") is None
    monkeypatch.setattr(execution, "competing_tasks", lambda: 9.0)
    assert execution.choose_threads(None).threads == 1  # never zero
    asked = execution.choose_threads(3)
    assert (asked.threads, asked.source) == (3, "--threads") and "or pass --threads 1" in asked.advice("cpu")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert (execution.choose_threads(None).threads, execution.choose_threads(None).source) == (2, "OMP_NUM_THREADS")
    assert execution.choose_threads(5).threads == 5  # --threads wins over the environment


def test_generate_runs_at_the_thread_count_of_the_profile_that_predicts_it(monkeypatch):
    """A busy minute must not make generate choose fewer threads than the profile it is predicted from measured
    (issue 26: a 1-thread run against a 2-thread prediction); --threads and OMP_NUM_THREADS still win."""
    from ldmpick.hardware import execution

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(execution, "physical_cores", lambda: 2)
    monkeypatch.setattr(execution, "competing_tasks", lambda: 1.4)  # the default policy would take 1
    assert execution.choose_threads(None).threads == 1
    chosen = execution.choose_threads(None, profiled=2)
    assert (chosen.threads, chosen.source) == (2, "profile")
    assert "as the profile that predicts this run measured" in chosen.advice("cpu")
    assert execution.choose_threads(1, profiled=2).threads == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert execution.choose_threads(None, profiled=2).source == "OMP_NUM_THREADS"


def test_competing_tasks_counts_other_running_tasks_not_this_one(monkeypatch):
    import builtins
    import io

    from ldmpick.hardware import execution

    snapshots = iter(["0.5 0.4 0.3 1/90 123\n", "9.9 5.0 1.0 4/90 124\n", "9.9 5.0 1.0 3/90 125\n"])
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        return io.StringIO(next(snapshots)) if path == "/proc/loadavg" else real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    # the median of 0, 3 and 2 others: a high load average (9.9, e.g. this program's own earlier runs) is not used
    assert execution.competing_tasks(samples=3, interval_s=0) == 2.0


def test_physical_cores_counts_smt_siblings_once(tmp_path, monkeypatch):
    from ldmpick.hardware import execution

    for cpu, siblings in {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}.items():
        (tmp_path / f"cpu{cpu}" / "topology").mkdir(parents=True)
        (tmp_path / f"cpu{cpu}" / "topology" / "thread_siblings_list").write_text(siblings + "\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(execution, "cgroup_cpu_quota", lambda: None)
    assert execution.physical_cores(str(tmp_path)) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2})  # pinned to one core's two threads
    assert execution.physical_cores(str(tmp_path)) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(execution, "cgroup_cpu_quota", lambda: 1.5)  # a container allowed 1.5 CPUs
    assert execution.physical_cores(str(tmp_path)) == 2


def test_apply_threads_sets_torch(monkeypatch):
    import torch

    from ldmpick.hardware.execution import apply_threads

    before = torch.get_num_threads()
    try:
        assert apply_threads(1).threads == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/meminfo")
def test_the_cpu_memory_check_runs_without_psutil(monkeypatch):
    from ldmpick.measurement import profiler as profiling
    from ldmpick.hardware.execution import available_cpu_memory_bytes

    monkeypatch.setitem(sys.modules, "psutil", None)  # 'import psutil' fails, as in a plain install
    free = available_cpu_memory_bytes()
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    assert free is not None and 0 < free <= int(meminfo["MemTotal"].split()[0]) * 1024
    reason = profiling._too_big(free // 4 + 1, "fp32", "cpu", "text encoder")  # its fp32 weights alone exceed it
    assert reason is not None and "GiB free" in reason
    assert profiling._too_big(1000, "fp32", "cpu", "text encoder") is None


@pytest.mark.parametrize("command", [["generate", "x", "--model", "demo-c8", "--steps", "1"], ["calibrate"],
                                     ["profile", "--device", "cpu"]])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "5000"])
def test_bad_thread_counts_are_refused_before_any_work(command, value):
    from typer.testing import CliRunner

    from ldmpick.cli import app

    r = CliRunner().invoke(app, [*command, "--threads", value])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.output
    assert "--threads" in r.stderr


def test_generate_leaves_only_its_images_and_record_in_the_folder(tmp_path: Path):
    from typer.testing import CliRunner

    from ldmpick.cli import app
    from tiny_pipeline import build_tiny_pipeline

    tiny = build_tiny_pipeline(tmp_path / "tiny-sd")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["generate", "a cat", "--model", str(tiny), "--sampler", "ddim", "--steps", "1",
                                 "--resolution", "32", "--seed", "3", "--n", "2", "--threads", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["0001-a-cat-s3.png", "0001-run.json", "0002-a-cat-s4.png"]
    record = json.loads((out / "0001-run.json").read_text())
    assert [i["file"] for i in record["images"]] == ["0001-a-cat-s3.png", "0002-a-cat-s4.png"]


def test_a_file_system_without_hard_links_still_gets_complete_files_under_free_names(tmp_path: Path, monkeypatch):
    import errno

    from PIL import Image

    from ldmpick.generation import outputs

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    folder = tmp_path / "fat"
    folder.mkdir()
    a = outputs.save_image(folder, Image.new("RGB", (4, 4)), "x", 1, {})
    b = outputs.save_image(folder, Image.new("RGB", (4, 4)), "x", 1, {}, first=1)  # 1 is taken: the next one
    assert (a.name, b.name) == ("0001-x-s1.png", "0002-x-s1.png")
    assert sorted(p.name for p in folder.iterdir()) == ["0001-x-s1.png", "0002-x-s1.png"]
    assert all(p.stat().st_size > 0 for p in folder.iterdir())
