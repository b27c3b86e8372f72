"""The GPU suite: every check that needs a CUDA device, in one command that fits a lent device's few minutes.

A session that draws a device has 15 minutes in all, the machine's start included, and must keep time to rerun.
This runs the parts in priority order, each under its own time budget (and the suite's), and rewrites
``OUT/suite.json`` after every part, so a run cut off at any point still leaves the parts that finished:

1. ``reference_profiles``: the paper's family at 512 px, fp16, in cudagraph and in eager mode (the GPU reference
   profiles, ready to ship in ``profiles/``: ``OUT/profile_cudagraph.json``, ``OUT/profile_eager.json``);
2. ``prediction``: predicted against end-to-end generate latency in both modes (``bench_prediction.py``, the demo
   family, which has weights);
3. ``generate``: generate's fast mode against plain diffusers per step (``bench_generate.py``);
4. ``repeatability``: two profile runs per mode agree (``bench_profile_repeatability.py``, four family sizes);
5. ``real_families``: the released families that fit at 1024 px, cudagraph, bf16 (``bench_real_families.py``;
   its profile: ``OUT/profile_real_families.json``);
6. ``budget_promise`` (run third): fresh ``generate --budget`` runs of the demo family against the profile's
   promise (``bench_budget_promise.py``, issue 26);
7. ``families_2026``: flux.2-klein-4b, z-image-turbo, qwen-image and sana-1.6b at 1024 px (issue 25);
8. ``knobs``: ``profile --knobs`` on a FLUX.1-dev-sized denoiser (TaylorSeer, FBCache, regional compilation), with
   NVML energy (issue 28).

What comes back is at most 8 files, none in a folder (the device tool brings back a bounded tree): ``suite.json``
(the device fingerprint, versions, each part's status, wall time and results), ``suite.log`` (each part's output,
capped), the profiles, and a partial profile for a profile part that ran out of time.

    bash bench/gpu_bootstrap.sh && python3 bench/gpu_suite.py --out "$OUT"      # on the device (see bench/GPU.md)
    python bench/gpu_suite.py --device cpu --out /tmp/suite                      # the smoke run the tests make

``--device cpu`` runs the same parts on the shipped tiny demo models at 32 px in eager mode (the cudagraph
profile and the real families are skipped: they need CUDA), so the script cannot rot between device sessions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "ldmpick.gpu-suite/1"
MAX_FILES = 8
LOG_CAP_BYTES = 400_000  # per part, the tail
PAPER_FAMILY_REPEATABILITY = "ldm-39m,ldm-223m,ldm-866m,ldm-2b"


@dataclass
class Part:
    name: str
    budget_s: float  # on a GPU; the CPU smoke run uses its own, smaller numbers
    cpu_budget_s: float
    run: Callable[["Suite", float], dict[str, Any]]


class PartSkipped(Exception):
    pass


class Suite:
    def __init__(self, out: Path, device: str, budget_s: float) -> None:
        self.out, self.device, self.budget_s = out, device, budget_s
        self.gpu = device.startswith("cuda")
        self.started = time.monotonic()
        self.scratch = Path(tempfile.mkdtemp(prefix="ldmpick-gpu-suite-"))
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                        LDMPICK_HOME=str(self.scratch / "home"), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        self.doc: dict[str, Any] = {
            "schema": SCHEMA, "command": "python " + " ".join(sys.argv),
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "device_asked": device,
            "budget_s": budget_s, "fingerprint": fingerprint(device), "parts": [],
        }

    def left_s(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def call(self, label: str, cmd: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        """Run one command of a part under ``timeout_s`` (its process group is killed past it), logging its output."""
        if timeout_s < 5:
            raise subprocess.TimeoutExpired(cmd, timeout_s)
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            self.log(label, cmd, output, f"killed after {timeout_s:.0f} s")
            raise
        self.log(label, cmd, output, f"exit {proc.returncode} after {time.monotonic() - t0:.1f} s")
        if proc.returncode != 0:
            tail = (output or "").strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"{label}: exit {proc.returncode}: {tail[0][:300]}")
        return subprocess.CompletedProcess(cmd, proc.returncode, output, "")

    def log(self, label: str, cmd: list[str], output: str | None, how: str) -> None:
        text = output or ""
        if len(text.encode()) > LOG_CAP_BYTES:
            text = "[... cut ...]\n" + text.encode()[-LOG_CAP_BYTES:].decode(errors="replace")
        with open(self.out / "suite.log", "a", encoding="utf-8") as fh:
            fh.write(f"\n===== {label}: {' '.join(cmd)}\n{text}\n===== {label}: {how}\n")

    def py(self, *args: str) -> list[str]:
        return [sys.executable, *args]

    def ldmpick(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "ldmpick.cli", *args]

    def result_of(self, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))

    def write(self) -> None:
        """``suite.json`` as it stands, atomically (a cut-off run leaves the last complete one)."""
        self.doc["wall_s"] = round(time.monotonic() - self.started, 1)
        tmp = self.out / ".suite.json.tmp"
        tmp.write_text(json.dumps(self.doc, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.out / "suite.json")


def fingerprint(device: str) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    try:
        from ldmpick.hardware.fingerprint import full_fingerprint

        return full_fingerprint(device)
    except Exception as exc:  # the suite still runs; the parts record their own devices
        return {"error": f"{exc.__class__.__name__}: {exc}"}


# ---------------------------------------------------------------------------------------------- the parts


def reference_profiles(s: Suite, budget: float) -> dict[str, Any]:
    modes = ("cudagraph", "eager") if s.gpu else ("eager",)
    if s.gpu:
        settings = ["--models", "all", "--resolution", "512", "--dtype", "fp16", "--repeats", "20", "--warmup", "3",
                    "--max-seconds", "4"]
    else:
        settings = ["--models", "demo-c8", "--resolution", "32", "--repeats", "3", "--warmup", "1",
                    "--max-seconds", "1", "--samplers", "ddim", "--threads", "1"]
    result: dict[str, Any] = {"skipped": [] if s.gpu else ["cudagraph (needs CUDA)"]}
    t0 = time.monotonic()
    for i, mode in enumerate(modes):
        out = s.out / f"profile_{mode}.json"
        share = (budget - (time.monotonic() - t0)) / (len(modes) - i)
        try:
            s.call(f"profile {mode}", s.ldmpick("profile", *settings, "--device", s.device, "--mode", mode,
                                                "--out", str(out)), min(share, s.left_s()))
        except subprocess.TimeoutExpired:
            partial = out.with_name(out.name + ".partial.json")
            result[mode] = {"status": "timed_out", "partial": partial.name if partial.exists() else None}
            continue
        prof = s.result_of(out)
        result[mode] = {"status": "ok", "file": out.name, "id": prof["id"],
                        "models": {m["name"]: (m.get("denoiser_step") or {}).get("median_ms") for m in prof["models"]}}
    return result


def prediction(s: Suite, budget: float) -> dict[str, Any]:
    modes = ("cudagraph", "eager") if s.gpu else ("eager",)
    common = (["--models", "demo-c8,demo-c16,demo-c80", "--steps", "10", "--runs", "5", "--rounds", "2"] if s.gpu
              else ["--models", "demo-c8", "--steps", "2", "--runs", "2", "--rounds", "1", "--threads", "1"])
    result: dict[str, Any] = {}
    t0 = time.monotonic()
    benches = [(f"prediction {m}", s.py("bench/bench_prediction.py", "--device", s.device, "--mode", m, *common))
               for m in modes]
    for i, (label, cmd) in enumerate(benches):
        out = s.scratch / f"{label.replace(' ', '_')}.json"
        share = (budget - (time.monotonic() - t0)) / (len(benches) - i)
        try:
            s.call(label, cmd + ["--out", str(out)], min(share, s.left_s()))
            result[label.replace(" ", "_")] = s.result_of(out)
        except subprocess.TimeoutExpired:
            result[label.replace(" ", "_")] = {"status": "timed_out"}
    return result


def generate(s: Suite, budget: float) -> dict[str, Any]:
    out = s.scratch / "generate.json"
    args = ["--device", s.device, "--out", str(out)] + ([] if s.gpu else ["--tiny", "--steps", "2,4", "--runs", "2",
                                                                         "--threads", "1"])
    s.call("generate", s.py("bench/bench_generate.py", *args), min(budget, s.left_s()))
    return s.result_of(out)


def repeatability(s: Suite, budget: float) -> dict[str, Any]:
    out = s.scratch / "repeatability.json"
    args = (["--models", PAPER_FAMILY_REPEATABILITY, "--resolution", "512", "--modes", "eager,cudagraph"] if s.gpu
            else ["--models", "demo-c8", "--resolution", "32", "--modes", "eager", "--samplers", "ddim"])
    s.call("repeatability", s.py("bench/bench_profile_repeatability.py", "--device", s.device, *args, "--out",
                                 str(out)), min(budget, s.left_s()))
    return s.result_of(out)


def real_families(s: Suite, budget: float) -> dict[str, Any]:
    if not s.gpu:
        raise PartSkipped("needs a CUDA GPU with tens of GB (the released families at 1024 px)")
    out = s.scratch / "real_families.json"
    s.call("real families", s.py("bench/bench_real_families.py", "--out", str(out)), min(budget, s.left_s()))
    shutil.copyfile(out.with_suffix(".profile.json"), s.out / "profile_real_families.json")
    return s.result_of(out)


# issue 25: the 2026 families at 1024 px on the device (flux.2-klein-4b, z-image-turbo, qwen-image; SANA 1.5's
# configs are not in the catalogue yet, sana-1.6b stands in), after the earlier families
FAMILIES_2026 = "flux.2-klein-4b,z-image-turbo,qwen-image,sana-1.6b"
# issue 28: each knob's measured effect on a FLUX.1-dev-sized denoiser (random weights of the real size)
KNOB_SETS = "cache=taylorseer(interval=4,order=2);cache=fbcache(threshold=0.05);compile=repeated-blocks"


def budget_promise(s: Suite, budget: float) -> dict[str, Any]:
    """Issue 26 on the device: fresh generate runs of the demo family against the profile's promise, eager."""
    out = s.scratch / "budget_promise.json"
    args = (["--budgets", "30ms,80ms", "--runs", "3", "--five-runs", "1", "--fresh-runs", "2", "--repeats", "10"]
            if s.gpu else ["--budgets", "400ms", "--runs", "1", "--five-runs", "1", "--fresh-runs", "1", "--repeats",
                           "3", "--models", "demo-c8"])
    s.call("budget promise", s.py("bench/bench_budget_promise.py", "--device", s.device, *args, "--out", str(out)),
           min(budget, s.left_s()))
    doc = s.result_of(out)
    doc.pop("runs", None)  # (the per-image rows stay on the device: the summary comes back)
    return doc


def families_2026(s: Suite, budget: float) -> dict[str, Any]:
    if not s.gpu:
        raise PartSkipped("needs a CUDA GPU with tens of GB (the 2026 families at 1024 px)")
    out = s.scratch / "families_2026.json"
    s.call("2026 families", s.py("bench/bench_real_families.py", "--models", FAMILIES_2026, "--out", str(out)),
           min(budget, s.left_s()))
    return s.result_of(out)


def knobs(s: Suite, budget: float) -> dict[str, Any]:
    if not s.gpu:
        raise PartSkipped("needs a CUDA GPU (a FLUX.1-dev-sized denoiser at 1024 px, compiled)")
    out = s.scratch / "profile_knobs.json"
    s.call("knobs", s.ldmpick("profile", "--models", "flux-dev", "--device", s.device, "--dtype", "bf16", "--mode",
                              "eager", "--resolution", "1024", "--repeats", "5", "--knobs", KNOB_SETS,
                              "--no-pipeline-call", "--out", str(out)), min(budget, s.left_s()))
    prof = s.result_of(out)
    return {"knobs": [{"model": m["name"], "denoiser_step_ms": (m.get("denoiser_step") or {}).get("median_ms"),
                       "variants": m.get("knobs"), "energy": m.get("energy")} for m in prof.get("models", [])]}


PARTS = [
    # (on the CPU smoke run each part takes 10-20 s on 2 cores: its budget leaves room for a loaded machine)
    Part("reference_profiles", 130, 150, reference_profiles),
    Part("prediction", 80, 200, prediction),
    Part("budget_promise", 90, 200, budget_promise),
    Part("generate", 30, 150, generate),
    Part("repeatability", 30, 150, repeatability),
    Part("real_families", 30, 5, real_families),
    Part("families_2026", 60, 5, families_2026),
    Part("knobs", 60, 5, knobs),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the results (made if missing; must be empty)")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (the smoke run)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="the whole suite's time, seconds (default 300 on a GPU, 900 for the CPU smoke run)")
    ap.add_argument("--parts", default=",".join(p.name for p in PARTS), help="which parts, in priority order")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        print(f"error: --out '{out}' is not empty", file=sys.stderr)
        return 2
    wanted = [p.strip() for p in a.parts.split(",") if p.strip()]
    unknown = sorted(set(wanted) - {p.name for p in PARTS})
    if unknown:
        print(f"error: unknown part(s) {', '.join(unknown)} (known: {', '.join(p.name for p in PARTS)})",
              file=sys.stderr)
        return 2
    budget_s = a.budget_s if a.budget_s is not None else (300.0 if a.device.startswith("cuda") else 900.0)
    suite = Suite(out, a.device, budget_s)
    suite.write()
    for part in (p for p in PARTS if p.name in wanted):
        budget = part.budget_s if suite.gpu else part.cpu_budget_s
        entry: dict[str, Any] = {"name": part.name, "budget_s": budget}
        t0 = time.monotonic()
        try:
            if suite.left_s() < 10:
                raise PartSkipped(f"the suite's budget of {budget_s:.0f} s is spent")
            entry.update(status="ok", result=part.run(suite, budget))
        except PartSkipped as exc:
            entry.update(status="skipped", why=str(exc))
        except subprocess.TimeoutExpired:
            entry.update(status="timed_out")
        except Exception as exc:  # one part failing never stops the next
            entry.update(status="failed", error=f"{exc.__class__.__name__}: {exc}"[:1000])
        entry["wall_s"] = round(time.monotonic() - t0, 1)
        suite.doc["parts"].append(entry)
        suite.write()
        print(f"{part.name}: {entry['status']} in {entry['wall_s']} s", flush=True)
    shutil.rmtree(suite.scratch, ignore_errors=True)
    files = [p for p in out.iterdir()]
    if len(files) > MAX_FILES or any(p.is_dir() for p in files):
        print(f"warning: {len(files)} entries in '{out}' (at most {MAX_FILES} plain files come back)", file=sys.stderr)
    return 0 if all(p["status"] in ("ok", "skipped") for p in suite.doc["parts"]) else 1


if __name__ == "__main__":
    sys.exit(main())
