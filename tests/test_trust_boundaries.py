"""Trust boundaries: what a shared profile may hold, and the model registry under concurrent writers.

A profile file may come from anyone (``ldmpick profiles import``, ``--profile FILE``): every field the code reads
is validated on load, a bad one is a one-line ``error: ...`` with exit 2 that names the field, and names or paths
inside it are labels that are never opened. The registry is changed read-modify-write under one file lock, so two
``ldmpick models add`` running at once both land.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ldmpick.models.catalogue import load_registry, resolve_trusted_name, save_registry, update_registry
from ldmpick.cli import app
from ldmpick.files.errors import LdmpickError, UsageError
from ldmpick.costs.latency import cost_rows as cost_rows_measured
from ldmpick.profiles.choice import choose_profile
from ldmpick.profiles.device_block import DEVICE_FIELDS, device_key, validate_device
from ldmpick.profiles.export import export_markdown
from ldmpick.profiles.schema import parse_profile_text
from ldmpick.quality.law import load_law
from ldmpick.planning.selector import select_config

from conftest import write_config_folder

runner = CliRunner()
SHIPPED = Path(__file__).resolve().parent.parent / "profiles" / "cpu-amd-epyc-2core-128px-fp32-eager.json"
BASE = json.loads(SHIPPED.read_text(encoding="utf-8"))
LAW, _ = load_law()


def profile_with(tmp: Path, edit) -> str:
    data = copy.deepcopy(BASE)
    edit(data)
    path = tmp / "shared.json"
    path.write_text(json.dumps(data), encoding="utf-8")  # NaN/Infinity are written as such: the reader refuses them
    return str(path)


def set_device(key, value):
    return lambda d: d["device"].__setitem__(key, value)


def one_line_error(r, *fragments: str) -> None:
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.output and "TypeError" not in r.stderr, r.stderr
    for f in fragments:
        assert f in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------- the device block

BAD_DEVICES = [
    ("memory as a word", set_device("memory_bytes", "lots"), "device.memory_bytes"),
    ("negative memory", set_device("memory_bytes", -1), "device.memory_bytes"),
    ("memory as a float", set_device("memory_bytes", 1.5e9), "device.memory_bytes"),
    ("cores as a word", set_device("cpu_cores", "two"), "device.cpu_cores"),
    ("cores as a bool", set_device("cpu_cores", True), "device.cpu_cores"),
    ("cores zero", set_device("cpu_cores", 0), "device.cpu_cores"),
    ("kind a number", set_device("kind", 3), "device.kind"),
    ("kind a long string", set_device("kind", "c" * 500), "device.kind"),
    ("name a list", set_device("name", ["AMD", "EPYC"]), "device.name"),
    ("name null", set_device("name", None), "device.name"),
    ("name missing", lambda d: d["device"].pop("name"), "device.name"),
    ("name with a newline", set_device("name", "AMD\nEPYC"), "device.name"),
    ("name too long", set_device("name", "x" * 5000), "device.name"),
    ("load a word", set_device("load_avg_1m", "high"), "device.load_avg_1m"),
    ("threads a float", set_device("torch_threads", 2.0), "device.torch_threads"),
    ("clock a string", set_device("sm_clock_mhz", "1980"), "device.sm_clock_mhz"),
    ("power a list", set_device("power_limit_w", [700]), "device.power_limit_w"),
    ("temperature below absolute zero", set_device("temperature_c", -300), "device.temperature_c"),
    # valid JSON that float() cannot hold: math.isfinite raised OverflowError on it
    ("load a 400-digit integer", set_device("load_avg_1m", 10**400), "device.load_avg_1m"),
    ("memory a 400-digit integer", set_device("memory_bytes", 10**400), "device.memory_bytes"),
    ("extra a 400-digit integer", set_device("extra", -(10**400)), "device.extra"),
    ("extra a huge float", set_device("extra", 1e300), "device.extra"),
    ("os an object", set_device("os", {"name": "Linux"}), "device.os"),
    ("versions a string", set_device("versions", "2.0"), "device.versions"),
    ("a version a number", lambda d: d["device"]["versions"].__setitem__("torch", 2.13), "device.versions.torch"),
    ("a version nested", lambda d: d["device"]["versions"].__setitem__("torch", {"v": "2"}), "device.versions.torch"),
    ("extra key nested", set_device("extra", {"a": {"b": 1}}), "device.extra"),
    ("extra list of objects", set_device("gpus", [{"name": "x"}]), "device.gpus[0]"),
    ("extra list too long", set_device("gpus", list(range(1000))), "device.gpus"),
    ("extra key with a newline", set_device("bad\nkey", 1), "device key"),
    ("device a list", lambda d: d.__setitem__("device", [1, 2]), "device must be a JSON object"),
    ("device missing", lambda d: d.pop("device"), "device must be a JSON object"),
]


@pytest.mark.parametrize("edit,field", [c[1:] for c in BAD_DEVICES], ids=[c[0] for c in BAD_DEVICES])
def test_bad_device_field_is_a_one_line_error_naming_it(tmp_path, edit, field):
    path = profile_with(tmp_path, edit)
    one_line_error(runner.invoke(app, ["recommend", "--profile", path, "--budget", "2s"]), field)


def test_the_reported_case_memory_lots_with_peak_memory(tmp_path):
    # the review's case: the selector compared peak memory with the string and raised TypeError (exit 1)
    def edit(d):
        d["device"]["memory_bytes"] = "lots"
        for m in d["models"]:
            m["peak_memory_bytes"] = 1000

    path = profile_with(tmp_path, edit)
    r = runner.invoke(app, ["recommend", "--profile", path, "--budget", "2s"])
    one_line_error(r, "device.memory_bytes must be an integer in [0, 1e+18] or null (got a string 'lots')")
    r = runner.invoke(app, ["profiles", "import", path])
    one_line_error(r, "device.memory_bytes")


def test_a_full_gpu_fingerprint_and_unknown_scalars_are_kept():
    gpu = {
        "kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "index": 0, "memory_bytes": 85_520_809_984,
        "driver_version": "570.86.15", "cuda_driver_version": "12.8", "sm_clock_mhz": 1980, "sm_clock_max_mhz": 1980,
        "power_limit_w": 700.0, "temperature_c": 31, "cpu_model": "Intel Xeon", "cpu_cores": 16,
        "compute_capability": "9.0", "cuda_runtime_version": "12.8", "cudnn_version": 90100, "torch_threads": 16,
        "load_avg_1m": 0.2, "os": "Linux 6.8", "machine": "x86_64",
        "versions": {"ldmpick": "0.1.0", "python": "3.11.7", "torch": "2.13.0", "diffusers": None},
        "future_field": "x", "mig": False, "uuids": ["GPU-1", "GPU-2"],
    }
    assert set(DEVICE_FIELDS) <= set(gpu)  # the test covers every field hardware/fingerprint.py writes
    assert validate_device(gpu) == gpu
    nulls = {k: None for k in DEVICE_FIELDS if k != "name"} | {"name": "x"}
    assert validate_device(nulls) == nulls  # NVML could not read a field: null is fine
    # and a profile carrying it round-trips unchanged
    data = copy.deepcopy(BASE)
    data["device"] = gpu
    again = parse_profile_text(json.dumps(data))
    assert again.device == gpu and again.to_json()["device"] == gpu
    assert again.device is not data["device"]  # a copy: nothing aliases the parsed JSON


def test_other_fields_read_later_are_checked(tmp_path):
    cases = [
        # the quality law takes log(unet_params): 0 was a ValueError (math domain error)
        (lambda d: d["models"][0].__setitem__("denoiser_params", 0), "models[0].denoiser_params"),
        (lambda d: d["models"][0].__setitem__("name", "ldm\n39m"), "models[0].name holds control characters"),
        (lambda d: d["models"][0].__setitem__("source", "ldm\r39m"), "models[0].source holds control characters"),
        (lambda d: d["samplers"][0].__setitem__("name", "dd\x1bim"), "samplers[0].name holds control characters"),
        (lambda d: d["settings"].__setitem__("device", "cuda:" + "9" * 500), "settings.device"),
        (lambda d: d["models"][0]["vae_decode"].__setitem__("median_ms", 10**400), "models[0].vae_decode.median_ms"),
        (lambda d: d["models"][0]["denoiser_step"]["samples_ms"].append(10**400), "models[0].denoiser_step.samples_ms[10]"),
        (lambda d: d.__setitem__("wall_seconds", 10**400), "wall_seconds"),
        (lambda d: d["settings"].__setitem__("threads", 10**12), "settings.threads"),
        (lambda d: d.__setitem__("created", "2026-01-01T" + "1" * 500), "created"),
    ]
    for edit, field in cases:
        one_line_error(runner.invoke(app, ["recommend", "--profile", profile_with(tmp_path, edit), "--budget", "2s"]),
                       field)


# every JSON value, NaN and the infinities included (json.dumps writes them; the reader must refuse them)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.just(10**400) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
# plausible values too, so that valid-but-odd devices reach the selector (small memory excludes every model ...)
PLAUSIBLE = st.none() | st.integers(min_value=-2, max_value=2**40) | st.sampled_from(["cpu", "cuda", "", "AMD EPYC"])
DEVICE_KEYS = st.sampled_from(sorted(DEVICE_FIELDS)) | st.text(min_size=1, max_size=12)
MUTATION = st.tuples(st.sampled_from(["set", "set", "delete", "version"]), DEVICE_KEYS, JSON_VALUES | PLAUSIBLE)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_device_gives_a_clean_error_or_a_valid_result(tmp_path_factory, mutations):
    data = copy.deepcopy(BASE)
    for op, key, value in mutations:
        dev = data["device"]
        if op == "delete":
            dev.pop(key, None)
        elif op == "version" and isinstance(dev.get("versions"), dict):
            dev["versions"][key] = value
        else:
            dev[key] = value
    path = tmp_path_factory.mktemp("fuzz") / "mutated.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    try:
        choice = choose_profile(str(path), device_key_now="cpu:AMD EPYC:2")
        p = choice.profile
        device_key(p.device), p.id, p.device_name, export_markdown(p)  # noqa: B018 - each must not raise
        excluded: list[str] = []
        rows = cost_rows_measured(p, None, [s.name for s in p.samplers], 50, excluded)
        sel = select_config(rows, LAW, 2.0, excluded=excluded)
    except LdmpickError as exc:
        assert "\n" not in str(exc)  # one line
        event("clean error")
        return
    event("valid result")
    assert sel.best.latency <= 2.0
    assert json.loads(p.dumps())["device"] == p.device  # what was accepted can be written back


# ---------------------------------------------------------------------------------------------- paths in profiles


@pytest.mark.parametrize("name", ["/home/alice/models/sd", "~/models/sd", "../sd", "a/b/c", "./sd", "a\\b", " sd"])
def test_a_model_name_that_is_a_path_is_refused(tmp_path, name):
    path = profile_with(tmp_path, lambda d: d["models"][0].__setitem__("name", name))
    one_line_error(runner.invoke(app, ["recommend", "--profile", path, "--budget", "2s"]), "models[0].name",
                   "is not a model name (it looks like a path)")


def test_labels_from_a_profile_are_never_opened(tmp_path, monkeypatch):
    folder = write_config_folder(tmp_path, "someone-elses-model")  # exists, and resolve_model would open it
    monkeypatch.chdir(tmp_path)
    assert resolve_trusted_name(str(folder)) is None
    assert resolve_trusted_name("someone-elses-model") is None  # a relative folder in the working directory
    assert resolve_trusted_name("") is None
    write_config_folder(tmp_path / "owner", "name")  # a hub-shaped label that is also a folder here
    assert resolve_trusted_name("owner/name") is None
    assert resolve_trusted_name("ldm-39m").name == "ldm-39m"  # the user's own installation defines these
    save_registry({"mine": str(folder)})
    spec = resolve_trusted_name("mine")  # the user's own registry: followed
    assert spec is not None and spec.name == "mine" and spec.path == folder.resolve()
    # a source that is a path survives a round trip as a label
    data = copy.deepcopy(BASE)
    data["models"][0]["source"] = str(folder)
    assert parse_profile_text(json.dumps(data)).models[0].source == str(folder)


# ---------------------------------------------------------------------------------------------- the registry


def test_update_registry_changes_under_the_lock_and_writes_nothing_on_error():
    assert update_registry(lambda r: {**r, "a": "/m/a"}) == {"a": "/m/a"}

    def add_b(r):
        r["b"] = "/m/b"  # in place, returning None

    assert update_registry(add_b) == {"a": "/m/a", "b": "/m/b"}

    def refuse(r):
        r["c"] = "/m/c"
        raise UsageError("'a' is already registered")

    with pytest.raises(UsageError):
        update_registry(refuse)
    assert load_registry() == {"a": "/m/a", "b": "/m/b"}
    # the lock is released after an error: the next change goes through at once
    assert update_registry(lambda r: {k: v for k, v in r.items() if k != "a"}) == {"b": "/m/b"}


ADDER = """
import sys, time
from pathlib import Path
from ldmpick.models.catalogue import update_registry
tag, n, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
Path(sys.argv[4]).touch()  # imported, ready
while not go.exists():  # start together
    time.sleep(0.001)
for i in range(n):
    name = f"{tag}-{i}"
    update_registry(lambda r: {**r, name: "/models/" + name})
"""


def test_two_processes_adding_at_once_lose_nothing(tmp_path):
    save_registry({"existing": "/models/existing"})
    go = tmp_path / "go"
    n = 40
    ready = {tag: tmp_path / f"{tag}.ready" for tag in ("left", "right")}
    procs = [subprocess.Popen([sys.executable, "-c", ADDER, tag, str(n), str(go), str(ready[tag])],
                              stderr=subprocess.PIPE, text=True) for tag in ready]
    while not all(r.exists() for r in ready.values()):  # both have imported ldmpick: an event, not a guess of time
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    want = {"existing"} | {f"{tag}-{i}" for tag in ("left", "right") for i in range(n)}
    assert set(load_registry()) == want


# ---------------------------------------------------------------------------------------------- what reaches a terminal

MARKUP_NAME = "[link=https://evil.example/pay]AMD EPYC[/link] [/] :smile:"


@pytest.mark.parametrize("command", [["profiles", "show"], ["recommend", "--budget", "2s", "--profile"]])
def test_markup_in_a_profile_is_shown_as_written(tmp_path, command):
    path = profile_with(tmp_path, set_device("name", MARKUP_NAME))
    r = runner.invoke(app, [*command, path])
    assert r.exit_code == 0, r.output  # '[/]' raised rich's MarkupError
    if command[0] == "profiles":
        assert MARKUP_NAME in r.stdout  # not turned into a link, not cut short, no emoji
        assert "\x1b]8;" not in r.stdout


def test_a_folder_named_like_markup_prints_as_such(tmp_path):
    from ldmpick.cli.render import console, make_table

    cons = console()
    with cons.capture() as cap:
        table = make_table("in 'sd [old]'", ("model", "x"))
        table.add_row("sd [old]", "[/]")
        cons.print(table)
        cons.print("saved in 'runs/[bold]x[/bold]'")
    assert "sd [old]" in cap.get() and "'sd [old]'" in cap.get() and "runs/[bold]x[/bold]" in cap.get()


@pytest.mark.parametrize("char,escaped", [("\x9b", "\\x9b"), ("\u202e", "\\u202e"), ("\x1b", "\\x1b"),
                                          ("\u2066", "\\u2066"), ("\ud800", "\\ud800"), ("\x07", "\\x07")])
def test_terminal_control_characters_are_shown_escaped(char, escaped, capsys):
    from ldmpick.cli.render import console, notice

    cons = console()
    with cons.capture() as cap:
        cons.print(f"cpu{char}31m name")
    assert f"cpu{escaped}31m name" in cap.get() and char not in cap.get()
    notice(f"wrote 'a{char}b'")
    assert capsys.readouterr().err == f"wrote 'a{escaped}b'\n"


def test_an_error_naming_a_file_escapes_control_characters(tmp_path):
    r = runner.invoke(app, ["profiles", "show", str(tmp_path / "evil\u202egpj.json")])
    assert r.exit_code == 2 and r.stderr.startswith("error: ")
    assert "\u202e" not in r.stderr and "evil\\u202egpj.json" in r.stderr


def test_markup_in_a_local_profile_does_not_break_profiles_list(tmp_path):
    from ldmpick.files.storage import profiles_dir

    profiles_dir().mkdir(parents=True, exist_ok=True)
    data = copy.deepcopy(BASE)
    data["device"]["name"] = MARKUP_NAME
    (profiles_dir() / "mine.json").write_text(json.dumps(data), encoding="utf-8")
    r = runner.invoke(app, ["profiles", "list"])
    assert r.exit_code == 0, r.output
    device_column = "".join(line.split("│")[4].strip() for line in r.stdout.splitlines()
                            if line.count("│") > 4)
    assert MARKUP_NAME.replace(" ", "") in device_column.replace(" ", "")  # the name as written, folded over lines


def test_a_profile_that_measures_no_model_is_not_imported(tmp_path):
    from typer.testing import CliRunner

    from ldmpick.cli import app
    from test_profile_file import make_profile

    empty = make_profile()
    empty.models = []
    f = tmp_path / "empty.json"
    f.write_text(empty.dumps())
    r = CliRunner().invoke(app, ["profiles", "import", str(f)])
    assert r.exit_code == 2 and "measures no model" in r.output, r.output


# ------------------------------------------------------------------------- model folders that carry code

def _demo_folder(tmp_path: Path) -> Path:
    import shutil

    from ldmpick.models.catalogue import DEMO_MODELS, DEMO_MODELS_DIR

    folder = tmp_path / "mine"
    shutil.copytree(DEMO_MODELS_DIR / DEMO_MODELS["demo-c8"], folder)
    return folder


def test_a_model_folder_with_a_custom_code_component_is_refused(tmp_path):
    folder = _demo_folder(tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    index["image_encoder"] = ["evilmod", "Evil"]  # diffusers would import evilmod.py from the folder
    (folder / "model_index.json").write_text(json.dumps(index))
    for command in (["models", "add", "evil", str(folder)],
                    ["generate", "a red circle", "--model", str(folder), "--sampler", "ddim", "--steps", "1",
                     "-o", str(tmp_path / "out")]):
        r = runner.invoke(app, command)
        assert r.exit_code == 2 and "comes from 'evilmod'" in r.stderr and "never runs code" in r.stderr, command
    assert "evil" not in load_registry() and not (tmp_path / "out").exists()


def test_a_model_folder_holding_python_files_is_refused_but_diffusers_own_modules_are_not(tmp_path):
    from ldmpick.models.catalogue import load_local_spec

    folder = _demo_folder(tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    index["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]  # as SD v1.5 ships it
    index["requires_nothing"] = [None, None]
    (folder / "model_index.json").write_text(json.dumps(index))
    assert load_local_spec(folder).has_weights
    (folder / "unet" / "modeling.py").write_text("raise SystemExit('ran')\n")
    with pytest.raises(LdmpickError, match="holds Python code"):
        load_local_spec(folder)


@pytest.mark.parametrize("name", ["demo-c8\u200b", "abc\u202edemo", "demo\u2028c8", "demo-c8\x85"])
def test_a_model_name_with_invisible_characters_is_refused(name, tmp_path):
    """Shown in a table, 'demo-c8\\u200b' is indistinguishable from demo-c8."""
    from ldmpick.profiles.store import find_profile

    doc = json.loads(find_profile("20261128110507").read_text())
    doc["models"][0]["name"] = name
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc))
    r = runner.invoke(app, ["profiles", "import", str(f)])
    assert r.exit_code == 2 and ("invisible" in r.stderr or "control characters" in r.stderr), r.stderr


def test_a_cached_hub_id_is_a_model_name_law_accepts(tmp_path, monkeypatch):
    import shutil

    from ldmpick.models.catalogue import DEMO_MODELS, DEMO_MODELS_DIR

    cache = tmp_path / "hub"
    snap = cache / "models--acme--tiny-ldm" / "snapshots" / "abc123"
    shutil.copytree(DEMO_MODELS_DIR / DEMO_MODELS["demo-c8"], snap)
    (cache / "models--acme--tiny-ldm" / "refs").mkdir()
    (cache / "models--acme--tiny-ldm" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # (read once, when huggingface_hub is imported)
    r = runner.invoke(app, ["law", "--model", "acme/tiny-ldm", "--sampler", "ddim", "--steps", "4"])
    assert r.exit_code == 0 and "no quality data on this scale" in r.output  # (it said 'unknown model')
    r = runner.invoke(app, ["law", "--model", "acme/not-cached", "--sampler", "ddim", "--steps", "4"])
    assert r.exit_code == 2 and "unknown model 'acme/not-cached'" in r.stderr
