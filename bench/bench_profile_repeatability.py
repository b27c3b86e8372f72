"""Bench: how long does profiling take, and do two runs agree?

Runs ``ldmpick profile`` twice per mode (as a user would, one process per run) and reports the wall time of each
run and, model by model, how far the two median per-step latencies are apart. The bar for a GPU (issue 2): all 11
family sizes at 512 px in eager and cudagraph modes in under 3 minutes, two runs within 5% on every model.

    python bench/bench_profile_repeatability.py --modes eager,cudagraph                    # on a GPU
    python bench/bench_profile_repeatability.py --device cpu --models ldm-39m,ldm-83m --resolution 128 --modes eager
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path


def run(args: list[str], out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ldmpick.cli", "profile", *args, "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all")
    ap.add_argument("--device", default=None)
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--modes", default="eager,cudagraph")
    ap.add_argument("--samplers", default="all")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    a = ap.parse_args()
    from ldmpick.profiles.schema import load_profile

    base = ["--models", a.models, "--resolution", str(a.resolution), "--samplers", a.samplers]
    if a.device:
        base += ["--device", a.device]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in a.modes.split(","):
            walls, profiles = [], []
            for i in (1, 2):
                out = Path(tmp) / f"{mode}-{i}.json"
                walls.append(round(run(base + ["--mode", mode], out), 1))
                profiles.append(load_profile(out))
            p1, p2 = profiles
            rows = []
            for m1 in p1.models:
                m2 = p2.model(m1.name)
                if m1.ok and m2.ok:
                    a1, a2 = m1.unet_step.median_ms, m2.unet_step.median_ms
                    rows.append({"model": m1.name, "run1_ms": round(a1, 3), "run2_ms": round(a2, 3),
                                 "diff_pct": round(100 * abs(a2 - a1) / a1, 2)})
                else:
                    rows.append({"model": m1.name, "status": [m1.status, m2.status]})
            worst = max((r["diff_pct"] for r in rows if "diff_pct" in r), default=None)
            results.append({"mode": mode, "wall_s": walls, "max_diff_pct": worst, "models": rows,
                            "device": p1.device})
            print(json.dumps({"mode": mode, "wall_s": walls, "max_diff_pct": worst}), flush=True)
    doc = {"bench": "profile_repeatability", "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "command": "python " + " ".join(sys.argv), "results": results}
    if a.out:
        Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
