"""Bench: cold-process wall time of `ldmpick recommend`, and how it grows with the grid.

Each measurement starts a new Python process (`python -m ldmpick.cli recommend ... --json`), as a user would, so
imports are included. The profile is synthetic (H100-like latencies for the 11 family sizes) so the grid size is
controlled: models x samplers x max-steps. The bar (issue 3): under 0.5 s for 11 x 8 x 100 on the 2-core machine.

    python bench/bench_recommend.py --runs 10 --out bench/results/recommend_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def synthetic_profile(n_models: int):
    from ldmpick.catalogue import FAMILY_CHANNELS
    from ldmpick.profile_file import LatencyStats, ModelLatency, Profile, SamplerOverhead, Settings
    from ldmpick.samplers import SAMPLERS
    from ldmpick.scaling_law import load_law

    params = {m: n for m, n, _ in load_law()[0].size_points}

    def st(ms: float) -> LatencyStats:
        return LatencyStats.from_samples([ms * f for f in (0.95, 0.98, 1.0, 1.01, 1.02, 1.05, 1.1)])

    names = list(FAMILY_CHANNELS)[:n_models]
    return Profile(
        settings=Settings(device="cuda", dtype="fp16", resolution=512, batch=1, cfg=True, mode="cudagraph", warmup=3,
                          repeats=20, max_seconds_per_model=20, threads=8),
        device={"kind": "cuda", "name": "synthetic H100-like", "memory_bytes": 80 * 2**30},
        models=[ModelLatency(m, "ok", params[m], st(4.8 + 37 * params[m] / 4.9e9)) for m in names],
        samplers=[SamplerOverhead(s, v.evals_per_step, st(0.5)) for s, v in SAMPLERS.items()],
        text_encoder=st(6.0), vae_decode=st(24.0), created="2026-11-23T00:00:00Z", command="synthetic (bench)",
    )


def time_run(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "ldmpick.cli", "recommend", *args], env=env, capture_output=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(r.stderr.decode())
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from ldmpick.fingerprint import cpu_cores, cpu_model

    grids = [(1, "ddim", 10), (1, "ddim", 100), (11, "ddim", 100), (11, "all", 100), (11, "all", 1000)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, LDMPICK_HOME=str(Path(tmp) / "home"))
        for n_models, samplers, steps in grids:
            prof = Path(tmp) / f"p{n_models}.json"
            prof.write_text(synthetic_profile(n_models).dumps())
            args = ["--budget", "2s", "--profile", str(prof), "--samplers", samplers, "--max-steps", str(steps),
                    "--json"]
            time_run(args, env)  # warm the OS file cache
            times = [time_run(args, env) for _ in range(a.runs)]
            n_samplers = 8 if samplers == "all" else 1
            row = {"models": n_models, "samplers": n_samplers, "max_steps": steps,
                   "grid": n_models * n_samplers * steps, "median_s": round(statistics.median(times), 3),
                   "min_s": round(min(times), 3), "max_s": round(max(times), 3), "runs": a.runs}
            rows.append(row)
            print(json.dumps(row), flush=True)
        base = [time_run(["--help"], env) for _ in range(a.runs)]
    import numpy
    import typer

    doc = {"bench": "recommend_cold_start", "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "command": "python " + " ".join(sys.argv),
           "machine": {"cpu": cpu_model(), "cores": cpu_cores(), "python": sys.version.split()[0],
                       "typer": typer.__version__, "numpy_not_imported_by_recommend": numpy.__version__},
           "help_only_median_s": round(statistics.median(base), 3), "results": rows,
           "bar_11x8x100_under_0.5s": next(r["median_s"] for r in rows if r["grid"] == 8800) < 0.5}
    print(json.dumps({k: doc[k] for k in ("help_only_median_s", "bar_11x8x100_under_0.5s")}))
    if a.out:
        Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
