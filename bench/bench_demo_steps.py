"""Bench (issue 13): why does the demo family's FID stop improving after 2-4 sampling steps?

For each model, sampler, guidance scale and prompt set, FID (world judge, against the 2,048 reference images that
``ldmpick calibrate`` uses) and the *palette purity* (the fraction of pixels within 20 RGB units of one of the world's
eight colours: real images 0.96; a pixel-level measure the judge's features, trained to be robust to blur and noise,
largely ignore) at 1-32 steps. Prompt sets:

- ``full``: the world's captions, which name all five attributes (what calibration measures);
- ``open``: the same scenes with each of size, colour, position and background left unsaid with probability 0.35
  (the caption then leaves a choice to the model, as real prompts do);
- ``empty``: the empty prompt at guidance 1 (the unconditional model).

It also measures the floor the VAE puts under every model: FID and purity of the same real images after
encode -> decode with the family's VAE. Images are generated as calibration does (``calibration.generate_images``:
image ``i`` seeded ``seed + i``). Writes one JSON file with the device fingerprint and versions.

    python bench/bench_demo_steps.py --out bench/results/demo_steps_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ldmpick.demo import world as demo_world
from ldmpick.calibration.driver import REFERENCE_IMAGES, REFERENCE_SEED_OFFSET
from ldmpick.calibration.images import PROMPT_SEED_OFFSET, _to_uint8, generate_images
from ldmpick.calibration.image_quality import frechet_distance, load_judge

OPEN_P = 0.35


def open_caption(scene: demo_world.Scene, seed: int, index: int) -> str:
    """The scene's caption with each of size, colour, position and background left out with probability OPEN_P
    (drawn from its own generator, so the scene itself is the world's)."""
    keep = np.random.default_rng([seed, index, 7]).random(4) >= OPEN_P
    words = ["a"] + ([scene.size] if keep[0] else []) + ([scene.colour] if keep[1] else []) + [scene.shape]
    if keep[2]:
        words.append("in the center" if scene.position == "center" else f"at the {scene.position}")
    if keep[3]:
        words.append(f"on a {scene.background} background")
    return " ".join(words)


def palette_purity(images: np.ndarray, tolerance: float = 20.0) -> float:
    palette = np.asarray(list(demo_world.COLOURS.values()), np.float32)
    px = images.reshape(-1, 1, 3).astype(np.float32)
    return float(np.mean(np.min(np.linalg.norm(px - palette[None], axis=2), axis=1) < tolerance))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="demo-c8,demo-c16,demo-c80", help="registered names or pipeline folders")
    ap.add_argument("--samplers", default="ddim,dpmpp-2m")
    ap.add_argument("--guidance", default="2", help="comma-separated guidance scales (full and open prompts)")
    ap.add_argument("--prompts", default="full,open,empty", help="prompt sets: full, open, empty")
    ap.add_argument("--steps", default="1,2,4,8,16,32")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0, help="calibration's --seed (prompt and reference worlds)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch

    from ldmpick.models.catalogue import resolve_model
    from ldmpick.hardware.fingerprint import full_fingerprint
    from ldmpick.generation.runner import load_pipeline

    torch.set_num_threads(args.threads)
    judge = load_judge()
    ref_images, _, _ = demo_world.dataset(args.seed + REFERENCE_SEED_OFFSET, REFERENCE_IMAGES)
    ref = judge.features(ref_images)
    pseed = args.seed + PROMPT_SEED_OFFSET
    real, captions, scenes = demo_world.dataset(pseed, args.samples)
    prompt_sets = {"full": captions, "open": [open_caption(s, pseed, i) for i, s in enumerate(scenes)],
                   "empty": [""] * args.samples}
    steps = [int(s) for s in args.steps.split(",")]
    rows, floors = [], {}
    floors["real"] = dict(fid=round(frechet_distance(judge.features(real), ref), 2),
                          purity=round(palette_purity(real), 4))
    for m in args.models.split(","):
        spec = resolve_model(m)
        pipe = load_pipeline(Path(spec.path), "cpu", "fp32", spec)
        if "vae_reconstruction" not in floors:
            x = torch.from_numpy(real).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            with torch.no_grad():
                rec = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mean).sample
            rec = _to_uint8(((rec + 1) / 2).permute(0, 2, 3, 1).numpy())
            floors["vae_reconstruction"] = dict(fid=round(frechet_distance(judge.features(rec), ref), 2),
                                                purity=round(palette_purity(rec), 4), vae_of=spec.name)
        for which in args.prompts.split(","):
            for g in ([1.0] if which == "empty" else [float(v) for v in args.guidance.split(",")]):
                for sampler in args.samplers.split(","):
                    for n in steps:
                        t0 = time.perf_counter()
                        imgs = generate_images(pipe, prompt_sets[which], sampler, n, g, args.seed, 64,
                                               spec.native_resolution)
                        row = dict(model=spec.name, prompts=which, guidance=g, sampler=sampler, steps=n,
                                   fid=round(frechet_distance(judge.features(imgs), ref), 2),
                                   purity=round(palette_purity(imgs), 4))
                        if which == "full":
                            row["prompt_acc"] = round(judge.prompt_accuracy(imgs, scenes)["mean"], 4)
                        row["seconds"] = round(time.perf_counter() - t0, 1)
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    result = dict(bench="bench_demo_steps.py", command="python " + " ".join(sys.argv),
                  date=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), device=full_fingerprint("cpu"),
                  samples=args.samples, seed=args.seed, open_p=OPEN_P, reference_images=REFERENCE_IMAGES,
                  floors=floors, rows=rows)
    from ldmpick.files.storage import atomic_write_json

    atomic_write_json(Path(args.out), result)
    print(json.dumps(floors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
