"""Bench: calibration throughput on a local Ray cluster against the single-process run on the same machine.

The same grid (demo family, one sampler, one step count) is calibrated three ways, each repeated and in its own
process state: one process with 1 torch thread, one process with all cores' threads, and a local Ray cluster with
one worker per core (1 thread per task). Reports images per second (generated and measured; the reference features
are computed once per run and are not counted) with the median and spread over the repeats, the machine's load
average before each run, and whether the cluster's FIDs equal the 1-thread single process's (they must: the same
shards, seeds and threads per task).

    python bench/bench_cluster.py --out bench/results/cluster_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import datetime, timezone


class TimedRunner:
    """Wraps a shard runner and times its shard phase only (generation and features; not the reference side)."""

    def __init__(self, inner):
        self.inner = inner
        self.wall = 0.0

    def run(self, tasks):
        t0 = time.perf_counter()
        yield from self.inner.run(tasks)
        self.wall = time.perf_counter() - t0

    def describe(self):
        return self.inner.describe()


def timed(req, inner) -> tuple[float, list[float]]:
    from ldmpick.calibration import driver as calib

    runner = TimedRunner(inner)
    cal = calib.run_calibration(req, runner=runner)
    return runner.wall, [r.fid for r in cal.results]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="demo-c16")
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    import ray
    import torch

    from ldmpick.calibration import driver as calib
    from ldmpick.transport.ray_cluster import RayShardRunner, connected
    from ldmpick.hardware.fingerprint import cpu_cores, full_fingerprint, system_load

    cores = cpu_cores()
    req = calib.CalibrationRequest(models=a.models.split(","), samplers=[a.sampler], steps=[a.steps],
                                   samples=a.samples, batch=a.batch)
    images = len(req.configs()) * a.samples
    rows = {}

    def measure(name, make_runner):
        timed(req, make_runner())  # warm-up: workers started, model and judge loaded
        walls, loads, fids = [], [], []
        for _ in range(a.repeats):
            loads.append(system_load())
            w, fids = timed(req, make_runner())
            walls.append(w)
        rates = [images / w for w in walls]
        rows[name] = {"images_per_s_median": round(statistics.median(rates), 2),
                      "images_per_s_min": round(min(rates), 2), "images_per_s_max": round(max(rates), 2),
                      "shard_phase_wall_s": [round(w, 2) for w in walls], "load_avg_1m_before": loads, "fids": fids}
        return fids

    from ldmpick.calibration.shards import LocalShardRunner

    for threads in (1, cores):
        torch.set_num_threads(threads)
        fids = measure(f"single process, {threads} thread(s)", lambda: LocalShardRunner(req))
        if threads == 1:
            single_fids = fids
    with connected("local", num_cpus=cores) as info:
        fids = measure(f"local Ray cluster, {int(info.cpus)} workers x 1 thread",
                       lambda: RayShardRunner(req, info, threads=1))
        same = fids == single_fids
    doc = {
        "bench": "bench_cluster.py", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/bench_cluster.py " + " ".join(f"--{k} {v}" for k, v in vars(a).items()
                                                               if k != "out" and v is not None),
        "grid": {"models": req.models, "sampler": a.sampler, "steps": a.steps, "samples": a.samples,
                 "batch": a.batch, "images_per_run": images},
        "ray": ray.__version__,
        "device": full_fingerprint("cpu"), "results": rows,
        "cluster_fids_equal_single_process_1_thread": same,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
