"""Bench: does `ldmpick generate --budget` keep its promise for the image a user runs (issue 26)?

A fresh profile of the demo family is measured first (same machine, minutes before, as a user would), then for each
budget ``--runs`` fresh ``ldmpick generate --budget B`` processes (one image per run, the way a user who runs the
command once per image meets it), alternating with and without the warm-up call (``--warmup`` / ``--no-warmup``), so
that slow drift of the machine hits both arms alike. Per budget and arm: the configuration picked, the predicted
total (the profile's medians) and p90 plan, the measured total of each run, measured/predicted median, the fraction
of runs over budget and the chance the plan stated, with a one-sided binomial bound at 90% confidence on the true
over-budget rate.

    python bench/bench_budget_promise.py --out bench/results/budget_promise_cpu.json        # the demo family, CPU
    python bench/bench_budget_promise.py --device cuda --budgets 5ms,10ms,20ms              # on a GPU

Only warm images are comparable with the profile; the cold arm shows what the first call of a process costs.
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
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "a large red circle in the center on a blue background"


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


def ldmpick(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ldmpick.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="demo-c8,demo-c16,demo-c80")
    ap.add_argument("--budgets", default="60ms,150ms,400ms")
    ap.add_argument("--runs", type=int, default=5, help="fresh runs per budget and arm")
    ap.add_argument("--repeats", type=int, default=20, help="the profile's repeats")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="ldmpick-budget-"))
    env = dict(os.environ, LDMPICK_HOME=str(home), PYTHONPATH=str(ROOT))
    profile = home / "profile.json"
    r = ldmpick(["profile", "--models", a.models, "--device", a.device, "--resolution", "32", "--repeats",
                 str(a.repeats), "--out", str(profile)], env)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return 1
    prof = json.loads(profile.read_text())
    results = []
    for budget in a.budgets.split(","):
        arms: dict[str, list[dict]] = {"warm": [], "cold": []}
        for i in range(a.runs):
            for arm in ("warm", "cold"):
                out = home / f"img-{budget}-{arm}-{i}"
                r = ldmpick(["generate", PROMPT, "--budget", budget, "--device", a.device, "--profile", str(profile),
                             "--seed", str(1000 + i), "--out", str(out), "--json",
                             "--warmup" if arm == "warm" else "--no-warmup"], env)
                if r.returncode != 0:
                    arms[arm].append({"error": r.stderr.strip().splitlines()[-1][:300]})
                    continue
                doc = json.loads(r.stdout)
                pred, measured = doc["prediction"], doc["prompts"][0]["measured"]
                arms[arm].append({"model": doc["settings"]["model"], "sampler": doc["settings"]["sampler"],
                                  "steps": doc["settings"]["steps"], "predicted_ms": pred["total_ms"],
                                  "planned_p90_ms": pred["planned_ms"], "stated_chance": pred["over_budget_chance"],
                                  "measured_ms": measured["total_ms"], "setup_ms": doc["setup_ms"],
                                  "budget_ms": pred["budget_ms"]})
        row: dict = {"budget": budget}
        for arm, runs in arms.items():
            ok = [x for x in runs if "error" not in x]
            if not ok:
                row[arm] = {"runs": runs}
                continue
            over = sum(x["measured_ms"] > x["budget_ms"] for x in ok)
            row[arm] = {
                "pick": sorted({f"{x['model']} {x['sampler']} x {x['steps']}" for x in ok}),
                "median_measured_over_predicted": round(statistics.median(x["measured_ms"] / x["predicted_ms"]
                                                                          for x in ok), 3),
                "over_budget": f"{over}/{len(ok)}",
                "stated_chance_max": max(x["stated_chance"] or 0.0 for x in ok),
                "over_budget_rate_upper_90": round(upper_bound(over, len(ok)), 3),
                "runs": runs,
            }
        results.append(row)
        print(json.dumps({k: (v if k == "budget" else {kk: vv for kk, vv in v.items() if kk != "runs"})
                          for k, v in row.items()}), flush=True)
    doc = {"bench": "budget_promise", "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "command": "python " + " ".join(sys.argv), "device": prof["device"], "profile_settings": prof["settings"],
           "results": results}
    if a.out:
        Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
