"""Bench (issue 13): do the demo family's images show the colours their captions ask for?

The check of issue 13, by colour alone: 12 captions of a large shape in the center ("a large red circle in the center
on a blue background"), each generated once with the tool's own pick at a budget (``ldmpick generate --budget``,
the installed CLI, shipped profile and law), then the mean colour of the four 4x4 corners must be nearest (in RGB)
to the asked background colour and the mean colour of the central 4x4 patch nearest to the asked shape colour. The
world judge is not involved. Writes one JSON file with the pick, every caption's verdict and the count.

    python bench/bench_demo_colour_check.py --budget 200ms --out bench/results/demo_colour_check_cpu.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from ldmpick.demo.world import COLOURS

SHAPES = ("circle", "square", "diamond")
PAIRS = [("red", "blue"), ("green", "white"), ("blue", "yellow"), ("yellow", "purple"), ("purple", "orange"),
         ("orange", "black"), ("white", "red"), ("black", "green"), ("red", "yellow"), ("blue", "orange"),
         ("green", "purple"), ("orange", "blue")]


def nearest(rgb: np.ndarray) -> str:
    return min(COLOURS, key=lambda c: float(np.sum((np.asarray(COLOURS[c], float) - rgb) ** 2)))


def verdict(img: np.ndarray, colour: str, background: str) -> dict:
    corners = np.concatenate([img[:4, :4], img[:4, -4:], img[-4:, :4], img[-4:, -4:]]).reshape(-1, 3).mean(0)
    h, w = img.shape[:2]
    centre = img[h // 2 - 2:h // 2 + 2, w // 2 - 2:w // 2 + 2].reshape(-1, 3).mean(0)
    seen_bg, seen_fg = nearest(corners), nearest(centre)
    return dict(asked_colour=colour, asked_background=background, seen_colour=seen_fg, seen_background=seen_bg,
                ok=seen_fg == colour and seen_bg == background)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="200ms")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    captions = [f"a large {colour} {SHAPES[i % 3]} in the center on a {bg} background"
                for i, (colour, bg) in enumerate(PAIRS)]
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.txt"
        prompts.write_text("\n".join(captions) + "\n")
        cmd = [sys.executable, "-m", "ldmpick.cli", "generate", "--prompts-file", str(prompts), "--budget",
               args.budget, "--seed", str(args.seed), "--out", str(Path(tmp) / "images"), "--json"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            raise SystemExit(run.stderr)
        doc = json.loads(run.stdout)
        rows = []
        for im in doc["images"]:
            img = np.asarray(Image.open(Path(tmp) / "images" / im["file"]).convert("RGB"), dtype=float)
            i = im["prompt_index"]
            rows.append(dict(caption=captions[i], seed=im["seed"], **verdict(img, *PAIRS[i])))
    from ldmpick.hardware.fingerprint import full_fingerprint

    result = dict(bench="bench_demo_colour_check.py", command="python " + " ".join(sys.argv),
                  date=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), device=full_fingerprint("cpu"),
                  budget=args.budget, selection=doc["selection"], passed=sum(r["ok"] for r in rows),
                  of=len(rows), rows=rows)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("selection", "passed", "of")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
