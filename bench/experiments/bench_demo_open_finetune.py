"""Bench (issue 13, an experiment): fine-tune a shipped demo model on captions that leave attributes unsaid.

The demo world maps every caption to exactly one image, so a trained model needs 2-4 sampling steps and no more
(``bench_demo_steps.py``). Real prompts leave choices to the model. This continues training a shipped demo model
on the training world (seed 0, 16,384 images) with each image's caption missing each of size, colour, position and
background with probability 0.35 (``bench_demo_steps.open_caption``), with the trainer's objective, noise schedule,
caption dropout, batch and clipping, a fresh AdamW and a one-cycle learning rate, then saves the pipeline folder
(safetensors) and ``finetune.json`` (what was done, losses, wall time, device). Measure it with
``bench_demo_steps.py --models OUT --prompts open``.

    python bench/experiments/bench_demo_open_finetune.py --model demo-c16 --steps 1000 --out /tmp/demo-c16-open
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_demo_steps import OPEN_P, open_caption  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo-c16")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=5e-4, help="peak learning rate of the one-cycle schedule")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True, help="new pipeline folder")
    args = ap.parse_args()

    import torch
    from diffusers import DDPMScheduler

    from ldmpick.demo import world as demo_world
    from ldmpick.models.catalogue import resolve_model
    from ldmpick.demo.training import MAX_TOKENS, SCHEDULER_ARGS, TrainingRecipe, one_cycle_lr
    from ldmpick.hardware.fingerprint import full_fingerprint
    from ldmpick.generation.runner import load_pipeline
    from ldmpick.files.storage import atomic_write_json

    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists: give a new folder")
    torch.set_num_threads(args.threads)
    recipe = TrainingRecipe(unet_steps=args.steps, lr=args.lr)
    spec = resolve_model(args.model)
    pipe = load_pipeline(Path(spec.path), "cpu", "fp32", spec)
    images, _, scenes = demo_world.dataset(recipe.seed, recipe.n_images)
    captions = [open_caption(s, recipe.seed, i) for i, s in enumerate(scenes)]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    with torch.no_grad():
        latents = torch.cat([pipe.vae.encode(x[i:i + 256]).latent_dist.mean for i in range(0, len(x), 256)])
        latents = latents * pipe.vae.config.scaling_factor
        ids = pipe.tokenizer(captions + [""], padding="max_length", max_length=MAX_TOKENS, truncation=True,
                             return_tensors="pt").input_ids
        emb = pipe.text_encoder(ids)[0]
    cond, uncond = emb[:-1], emb[-1:]
    unet = pipe.unet
    unet.train().requires_grad_(True)
    opt = torch.optim.AdamW(unet.parameters(), lr=recipe.lr)
    gen = torch.Generator().manual_seed(recipe.seed + 1)
    noise_sched = DDPMScheduler(**{k: v for k, v in SCHEDULER_ARGS.items() if k != "set_alpha_to_one"})
    losses: list[float] = []
    t0 = time.perf_counter()
    for step in range(recipe.unet_steps):
        for group in opt.param_groups:
            group["lr"] = one_cycle_lr(step, recipe)
        idx = torch.randint(0, len(latents), (recipe.batch,), generator=gen)
        z0 = latents[idx]
        noise = torch.randn(z0.shape, generator=gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (recipe.batch,), generator=gen)
        drop = (torch.rand(recipe.batch, generator=gen) < recipe.caption_dropout)[:, None, None]
        ctx = torch.where(drop, uncond.expand_as(cond[idx]), cond[idx])
        pred = unet(noise_sched.add_noise(z0, noise, t), t, encoder_hidden_states=ctx).sample
        loss = torch.nn.functional.mse_loss(pred, noise_sched.get_velocity(z0, noise, t))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), recipe.grad_clip)
        opt.step()
        losses.append(round(loss.item(), 5))
        if step % 100 == 0:
            print(f"step {step}/{recipe.unet_steps} loss {np.mean(losses[-100:]):.4f}", flush=True)
    unet.eval().requires_grad_(False)
    wall = time.perf_counter() - t0
    pipe.save_pretrained(out, safe_serialization=True)
    atomic_write_json(out / "finetune.json", dict(
        bench="bench_demo_open_finetune.py", command="python " + " ".join(sys.argv),
        date=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), device=full_fingerprint("cpu"),
        base_model=spec.name, open_p=OPEN_P, recipe=asdict(recipe), threads=args.threads, wall_s=round(wall, 1),
        loss_curve_every_100=[round(float(np.mean(losses[i:i + 100])), 5) for i in range(0, len(losses), 100)]))
    print(f"saved {out} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
