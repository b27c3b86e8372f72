"""Bench (issue 13): how well does a demo model in training follow its captions?

Prompt accuracy by the world judge (per attribute, and ``mean``/``all``) of a UNet checkpoint that
``ldmpick demo train --out DIR`` is writing (``DIR/_checkpoints/demo-c<c>/``), or of a finished folder
(``DIR/demo-c<c>/``), on ``--samples`` captions of seed 20000 (those ``ldmpick calibrate`` uses), each image seeded
with its index. A checkpoint is sampled with the scheduler of this code's recipe, so it must come from this recipe
(checked); a finished folder with its own scheduler config. Runs next to a training job: one thread by default.

    python bench/experiments/bench_demo_checkpoint.py --dir /work/demo_run_v3 --channels 80 --steps 4,16 --guidance 2 \\
        --out bench/results/demo_checkpoint_c80.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path


def load(folder: Path, c: int):
    """(pipeline, training step or 'final') for model demo-c<c> under ``folder``."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from safetensors.torch import load_file

    from ldmpick.demo import training as dt

    ck = folder / "_checkpoints" / f"demo-c{c}"
    if not (ck / "state.json").is_file():
        pipe = StableDiffusionPipeline.from_pretrained(folder / f"demo-c{c}", use_safetensors=True)
        return pipe, "final"
    state = json.loads((ck / "state.json").read_text())
    recipe = dt.TrainingRecipe()
    for name in ("beta_schedule", "prediction_type", "zero_terminal_snr"):
        if state["key"].get(name) != getattr(recipe, name):
            raise SystemExit(f"{ck}: trained with {name} = {state['key'].get(name)!r}, this code samples with "
                             f"{getattr(recipe, name)!r}")
    vae = AutoencoderKL.from_pretrained(folder / "_vae" / "vae", use_safetensors=True).eval()
    tok = dt.demo_tokenizer()
    te = dt.demo_text_encoder(tok, state["key"]["seed"])
    unet = UNet2DConditionModel(**dt.demo_unet_config(c))
    unet.load_state_dict(load_file(ck / "unet.safetensors"))
    pipe = StableDiffusionPipeline(unet=unet.eval(), vae=vae, text_encoder=te, tokenizer=tok,
                                   scheduler=DDIMScheduler(**dt.SCHEDULER_ARGS), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    return pipe, int(state["step"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, type=Path, help="the --out folder of 'ldmpick demo train'")
    ap.add_argument("--channels", required=True, type=int)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--sampler", default="dpmpp-2m")
    ap.add_argument("--steps", default="16")
    ap.add_argument("--guidance", default="2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="append the results to this JSON file")
    args = ap.parse_args()

    import torch

    from ldmpick.calibration.images import generate_images
    from ldmpick.demo.world import dataset
    from ldmpick.hardware.fingerprint import light_fingerprint
    from ldmpick.calibration.image_quality import load_judge

    torch.set_num_threads(args.threads)
    pipe, step = load(args.dir, args.channels)
    pipe.set_progress_bar_config(disable=True)
    _, captions, scenes = dataset(20000, args.samples)
    judge = load_judge()
    rows = []
    for g in (float(x) for x in args.guidance.split(",")):
        for steps in (int(x) for x in args.steps.split(",")):
            t0 = time.perf_counter()
            images = generate_images(pipe, captions, args.sampler, steps, g, 0, 32, 32)
            acc = {k: round(v, 3) for k, v in judge.prompt_accuracy(images, scenes).items()}
            rows.append(dict(model=f"demo-c{args.channels}", training_step=step, sampler=args.sampler, steps=steps,
                             guidance=g, samples=args.samples, prompt_accuracy=acc,
                             seconds=round(time.perf_counter() - t0, 1)))
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        doc = json.loads(args.out.read_text()) if args.out.is_file() else {
            "bench": "bench_demo_checkpoint", "command": " ".join(sys.argv), "device": light_fingerprint("cpu"),
            "torch": torch.__version__, "results": []}
        for r in rows:
            r["dir"], r["date"] = str(args.dir), datetime.now(timezone.utc).isoformat(timespec="seconds")
        doc["results"] += rows
        from ldmpick.files.storage import atomic_write_json

        atomic_write_json(args.out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
