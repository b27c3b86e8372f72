"""Bench (issue 13 groundwork): per-step CPU cost and weight size of candidate demo-family UNets.

Issue 13 asks for demo sizes whose per-step cost grows with size on this CPU (largest >= 3x smallest) while all
weights stay <= 30 MB. For each candidate (base channels c, with cross-attention at both levels and attention head
dim 8, the shape that learned to follow captions in bench_demo_prompt_following.py) at 8x8 latents (32 px images,
VAE factor 4) and 16x16 latents (VAE factor 2), this times one UNet forward at batch 2 (classifier-free guidance) on
the CPU: 5 warm-up calls, then 30 timed calls; reports the median and the IQR, at 1 thread and at the machine's
default thread count, with the parameter count and fp32 weight size.

    python bench/bench_demo_family_sizes.py --out bench/results/demo_family_sizes_cpu.json
    python bench/bench_demo_family_sizes.py --latents 16 --blocks 8:16,16:32,64:128,80:160,96:128,128:128 \
        --train-batch 32 --out bench/results/demo_family_sizes_16px_latents_cpu.json

``--blocks a:b,...`` gives each candidate's two block widths (default: ``c:2c`` for every ``--channels`` c);
``--train-batch B`` also times one training step (forward, backward) at batch B at the default thread count, to
size a retraining before starting it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone


def unet_config(c: int, latent: int, c2: int | None = None) -> dict:
    from ldmpick.demo.training import demo_unet_config

    cfg = demo_unet_config(c)
    cfg.update(sample_size=latent, block_out_channels=(c, 2 * c if c2 is None else c2), down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
               up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=8)
    return cfg


def time_forward(unet, latent: int, threads: int, warmup: int = 5, repeats: int = 30) -> dict:
    import torch

    from ldmpick.demo.training import MAX_TOKENS, TEXT_DIM

    torch.set_num_threads(threads)
    x = torch.randn(2, 4, latent, latent)
    t = torch.tensor([500, 500])
    ctx = torch.randn(2, MAX_TOKENS, TEXT_DIM)
    with torch.no_grad():
        for _ in range(warmup):
            unet(x, t, encoder_hidden_states=ctx)
        ms = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            unet(x, t, encoder_hidden_states=ctx)
            ms.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(ms, n=4)
    return {"threads": threads, "median_ms": round(statistics.median(ms), 3), "iqr_ms": round(q[2] - q[0], 3),
            "runs": repeats}


def time_training_step(unet, latent: int, batch: int, threads: int, repeats: int = 4) -> dict:
    import torch

    from ldmpick.demo.training import MAX_TOKENS, TEXT_DIM

    torch.set_num_threads(threads)
    unet.train()
    x = torch.randn(batch, 4, latent, latent)
    t = torch.randint(0, 1000, (batch,))
    ctx = torch.randn(batch, MAX_TOKENS, TEXT_DIM)
    s = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        unet(x, t, encoder_hidden_states=ctx).sample.pow(2).mean().backward()
        s.append(time.perf_counter() - t0)
    unet.eval()
    return {"threads": threads, "batch": batch, "median_s": round(statistics.median(s[1:]), 3), "runs": repeats}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", default="8,16,24,32,48,64")
    ap.add_argument("--latents", default="8,16")
    ap.add_argument("--blocks", default="", help="a:b,... block widths (overrides --channels)")
    ap.add_argument("--train-batch", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    import torch
    from diffusers import UNet2DConditionModel

    from ldmpick.hardware.execution import physical_cores
    from ldmpick.hardware.fingerprint import full_fingerprint, system_load

    default_threads = physical_cores()
    rows = []
    for latent in (int(v) for v in a.latents.split(",")):
        widths = ([tuple(int(w) for w in b.split(":")) for b in a.blocks.split(",")] if a.blocks else
                  [(int(v), 2 * int(v)) for v in a.channels.split(",")])
        for c, c2 in widths:
            torch.manual_seed(0)
            unet = UNet2DConditionModel(**unet_config(c, latent, c2)).eval()
            params = sum(p.numel() for p in unet.parameters())
            row = {"base_channels": c, "block_out_channels": [c, c2], "latent": latent, "params": params,
                   "fp32_mb": round(params * 4 / 2**20, 2), "load_avg_1m_before": system_load(),
                   "timings": [time_forward(unet, latent, th) for th in sorted({1, default_threads})]}
            if a.train_batch:
                row["training_step"] = time_training_step(unet, latent, a.train_batch, default_threads)
            rows.append(row)
            print(json.dumps(row), flush=True)
    doc = {"bench": "bench_demo_family_sizes.py", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": "python bench/bench_demo_family_sizes.py " + " ".join(
               f"--{k} {v}" for k, v in vars(a).items() if k != "out"),
           "device": full_fingerprint("cpu"), "rows": rows}
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
