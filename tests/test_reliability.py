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

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ldmpick.errors import ProfileError
from ldmpick.profile_model import Profile, load_profile, parse_profile_text

from test_profile_file import make_profile

WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_profile_file import make_profile
    from ldmpick.profile_store import save_profile
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


def test_ctrl_c_keeps_completed_measurements_and_resume_finishes(tiny_models, tmp_path: Path, ldmpick_home):
    small, large = tiny_models
    out = tmp_path / "p.json"
    partial = tmp_path / "p.json.partial.json"
    args = [sys.executable, "-m", "ldmpick.cli", "profile", "--models", f"{small},{large}", "--device", "cpu",
            "--resolution", "32", "--samplers", "ddim", "--repeats", "150", "--max-seconds", "30", "--out", str(out)]
    env = dict(os.environ, LDMPICK_HOME=str(ldmpick_home))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until at least the first model is in the partial file
        if partial.exists():
            try:
                if load_profile(partial).models:
                    break
            except ProfileError:
                pass
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "rerun with --resume" in err and "Traceback" not in err
    assert not out.exists()
    kept = load_profile(partial)
    assert not kept.complete and [m.name for m in kept.models] == ["tiny-small"]

    resumed = subprocess.run(args[:-2] + ["--out", str(out), "--resume", "--repeats", "5", "--max-seconds", "2"],
                             env=env, capture_output=True, text=True, timeout=120)
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
