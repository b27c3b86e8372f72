"""Bench: does `ldmpick generate --budget` keep its promise for the image a user runs (issue 26)?

A fresh profile of the demo family is measured first (same machine, minutes before, as a user would; its pipeline
calls timed end to end, warm and in ``--fresh-runs`` fresh processes). Then, at each budget, interleaved so that a
slow drift of the machine hits every case alike:

- ``one``: ``--runs`` fresh ``ldmpick generate --budget B --no-warmup`` processes of one image each: the first call
  of a process, what a user who runs the command once per image meets; generate plans on the first image;
- ``five``: ``--five-runs`` fresh processes of five prompts each (``--prompts-file``), with generate's default warm-up
  call: every timed image is warm; generate plans on the warm image.

Per budget and case: the configuration picked, the predicted median and the p90 planned on, each image's measured
latency (from the prompt to the written image: the pipeline call plus the PNG write; model load and process start
apart), measured/predicted median, the fraction of images over budget against the chance the plan stated, and the
one-sided Clopper-Pearson bound at 90%: the stated chance is kept when the observed count of overs is no more than
a binomial draw at the stated chance would give with 90% probability (``consistent``). Images slower than 3x their
case's median are listed as stalls, with their parts, the load average and the process's load and set-up times.

    python bench/bench_budget_promise.py --out bench/results/budget_promise_cpu.json        # the demo family, CPU
    python bench/bench_budget_promise.py --device cuda --budgets 5ms,10ms,20ms              # on a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["a large red circle in the center on a blue background", "a small green square on the left",
           "a yellow triangle at the top on a black background", "a blue circle at the bottom right",
           "a large white square in the center on a red background"]
STALL_FACTOR = 3.0


def upper_bound(over: int, n: int, confidence: float = 0.9) -> float:
    """One-sided Clopper-Pearson upper bound of a binomial rate (bisection on the CDF; no scipy needed)."""
    if over >= n:
        return 1.0
    lo, hi = over / n, 1.0
    for _ in range(60):
        p = (lo + hi) / 2
        cdf = sum(math.comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(over + 1))
        lo, hi = (p, hi) if cdf > 1 - confidence else (lo, p)
    return hi


def allowed_overs(chance: float, n: int, confidence: float = 0.9) -> int:
    """The most overs in ``n`` runs that a true rate of ``chance`` gives with probability ``confidence``."""
    total = 0.0
    for k in range(n + 1):
        total += math.comb(n, k) * chance ** k * (1 - chance) ** (n - k)
        if total >= confidence:
            return k
    return n


def ldmpick(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ldmpick.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_case(case: str, budget: str, i: int, a: argparse.Namespace, home: Path, profile: Path,
             env: dict[str, str]) -> list[dict]:
    out = home / f"img-{budget}-{case}-{i}"
    args = ["generate", "--budget", budget, "--device", a.device, "--profile", str(profile), "--seed", str(1000 + i),
            "--out", str(out), "--json"]
    if case == "one":
        args = args[:1] + [PROMPTS[i % len(PROMPTS)]] + args[1:] + ["--no-warmup"]
    else:
        prompts = home / "prompts.txt"
        prompts.write_text("\n".join(PROMPTS) + "\n")
        args += ["--prompts-file", str(prompts)]
    load = load_average()
    t0 = time.perf_counter()
    r = ldmpick(args, env)
    process_s = time.perf_counter() - t0
    if r.returncode != 0:
        return [{"error": (r.stderr.strip().splitlines() or ["?"])[-1][:300]}]
    doc = json.loads(r.stdout)
    pred, outcome = doc["prediction"], doc
    rows = []
    for k, p in enumerate(doc["prompts"]):
        m = p["measured"]
        rows.append({"run": i, "image": k, "model": doc["settings"]["model"], "sampler": doc["settings"]["sampler"],
                     "steps": doc["settings"]["steps"], "predicted_ms": pred["total_ms"],
                     "planned_p90_ms": pred["planned_ms"], "stated_chance": pred["over_budget_chance"],
                     "basis": pred.get("basis"), "budget_ms": pred["budget_ms"], "measured_ms": m["latency_ms"],
                     "parts_ms": {key: m.get(key) for key in ("text_encoder_ms", "denoise_ms", "vae_decode_ms",
                                                              "call_ms", "write_ms")},
                     "load_ms": outcome.get("load_ms"), "setup_ms": outcome.get("setup_ms"),
                     "process_s": round(process_s, 2), "load_avg_1m": load})
    return rows


def summary(rows: list[dict]) -> dict:
    ok = [x for x in rows if "error" not in x]
    if not ok:
        return {"errors": [x["error"] for x in rows]}
    over = sum(x["measured_ms"] > x["budget_ms"] for x in ok)
    stated = max(x["stated_chance"] or 0.0 for x in ok)
    med = statistics.median(x["measured_ms"] for x in ok)
    return {
        "pick": sorted({f"{x['model']} {x['sampler']} x {x['steps']}" for x in ok}),
        "basis": sorted({str(x["basis"]) for x in ok}),
        "images": len(ok),
        "predicted_median_ms": round(statistics.median(x["predicted_ms"] for x in ok), 3),
        "measured_median_ms": round(med, 3),
        "median_measured_over_predicted": round(statistics.median(x["measured_ms"] / x["predicted_ms"] for x in ok), 3),
        "over_budget": f"{over}/{len(ok)}",
        "stated_chance": stated,
        "allowed_overs_at_90": allowed_overs(stated, len(ok)),
        "consistent": over <= allowed_overs(stated, len(ok)),
        "over_budget_rate_upper_90": round(upper_bound(over, len(ok)), 3),
        "stalls": [x for x in ok if x["measured_ms"] > STALL_FACTOR * med],
        "errors": [x["error"] for x in rows if "error" in x],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="demo-c8,demo-c16,demo-c80")
    ap.add_argument("--budgets", default="40ms,60ms,100ms,150ms,250ms,400ms")
    ap.add_argument("--runs", type=int, default=30, help="fresh one-image runs per budget")
    ap.add_argument("--five-runs", type=int, default=6, help="fresh five-prompt runs per budget")
    ap.add_argument("--repeats", type=int, default=20, help="the profile's repeats")
    ap.add_argument("--fresh-runs", type=int, default=10, help="the profile's fresh processes per model")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="ldmpick-budget-"))
    env = dict(os.environ, LDMPICK_HOME=str(home), PYTHONPATH=str(ROOT))
    profile = home / "profile.json"
    started = time.perf_counter()
    r = ldmpick(["profile", "--models", a.models, "--device", a.device, "--resolution", "32", "--repeats",
                 str(a.repeats), "--fresh-runs", str(a.fresh_runs), "--out", str(profile)], env)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return 1
    prof = json.loads(profile.read_text())
    budgets = a.budgets.split(",")
    cases: dict[tuple[str, str], list[dict]] = {(b, c): [] for b in budgets for c in ("one", "five")}
    for i in range(max(a.runs, a.five_runs)):
        for b in budgets:
            if i < a.runs:
                cases[(b, "one")] += run_case("one", b, i, a, home, profile, env)
            if i < a.five_runs:
                cases[(b, "five")] += run_case("five", b, i, a, home, profile, env)
        print(f"round {i + 1} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    results = []
    for b in budgets:
        row = {"budget": b, "one_image_no_warmup": summary(cases[(b, "one")]),
               "five_prompts_warm": summary(cases[(b, "five")])}
        results.append(row)
        print(json.dumps({k: (v if k == "budget" else {kk: vv for kk, vv in v.items() if kk != "stalls"})
                          for k, v in row.items()}), flush=True)
    doc = {"bench": "budget_promise", "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "command": "python " + " ".join(sys.argv), "device": prof["device"], "profile_settings": prof["settings"],
           "wall_seconds": round(time.perf_counter() - started, 1), "results": results,
           "runs": {f"{b}/{c}": rows for (b, c), rows in cases.items()}}
    if a.out:
        Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
