"""Bench: per-step time of ``ldmpick generate`` (CUDA-graph mode) vs plain diffusers, and vs the profile's prediction.

An SD-v1.5-sized pipeline with random weights (UNet 860M, CLIP ViT-L/14 text encoder, SD VAE; weights do not
change latency) is saved with safetensors to a temp folder and loaded the way ``generate`` loads models. Then, in
the same process, on the same card:

1. **profile**: ``ldmpick.measurement.profiler.run_profile`` measures that model in the chosen mode; the prediction per step is
   ``evals_per_step x unet_step + sampler overhead``;
2. **plain diffusers**: ``StableDiffusionPipeline.__call__`` in eager mode at two step counts; per-step time is
   the slope ``(T(long) - T(short)) / (long - short)``, which removes the fixed parts (text encoder, VAE);
3. **ldmpick**: ``ldmpick.generation.runner.generate`` in the chosen mode; per-step time is the denoising loop's
   measured time over its UNet evaluations, and the same slope as (2) as a cross-check.

Bars (issue 4): ldmpick per step at least 2.5x faster than plain diffusers, and within 10% of the prediction.

    python bench/bench_generate.py --device cuda --out bench/results/generate_h100.json     # the real bench
    python bench/bench_generate.py --tiny --out bench/results/generate_cpu_tiny.json        # CPU smoke run

``--tiny`` swaps in the tiny random pipeline of the tests and eager mode (CUDA graphs need a GPU), so it checks that
the script works, not the bars.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def sd15_unet_config() -> dict:
    """SD v1.5's UNet: the paper family's c = 320 shape with CLIP-L's 768-wide cross-attention."""
    from ldmpick.models.catalogue import family_unet_config

    return {**family_unet_config(320), "cross_attention_dim": 768}


def build_sd15_random(folder: Path, device: str, dtype: str) -> Path:
    """An SD-v1.5-architecture pipeline with random weights, saved with safetensors."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_pipeline import tiny_tokenizer  # a CLIP tokenizer made in code: nothing is downloaded

    from ldmpick.models.catalogue import SD_TEXT_ENCODER_CONFIG, SD_VAE_CONFIG
    from ldmpick.generation.runner import DTYPES
    from ldmpick.models.samplers import SD_SCHEDULER_CONFIG

    torch_dtype = getattr(torch, DTYPES[dtype])
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**sd15_unet_config()).to(torch_dtype)
        vae = AutoencoderKL(**SD_VAE_CONFIG).to(torch_dtype)
        text_encoder = CLIPTextModel(CLIPTextConfig(**SD_TEXT_ENCODER_CONFIG)).to(torch_dtype)
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tiny_tokenizer(),
        scheduler=DDIMScheduler.from_config(SD_SCHEDULER_CONFIG), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    del pipe, unet, vae, text_encoder
    return folder


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def time_plain_call(pipe, device: str, steps: int, resolution: int, runs: int) -> list[float]:
    """Milliseconds per ``pipe(...)`` call (eager diffusers, DDIM, guidance 7.5)."""
    import torch

    out = []
    for i in range(runs + 1):
        sync(device)
        t0 = time.perf_counter()
        pipe("a photograph of an astronaut riding a horse", num_inference_steps=steps, guidance_scale=7.5,
             height=resolution, width=resolution, generator=torch.Generator(device).manual_seed(i),
             output_type="latent")  # the VAE is not part of the per-step comparison
        sync(device)
        if i:  # the first call warms up
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda if present)")
    ap.add_argument("--dtype", default=None, help="default: fp16 on GPU, fp32 on CPU")
    ap.add_argument("--mode", default=None, help="ldmpick's mode (default: cudagraph on GPU, eager on CPU)")
    ap.add_argument("--resolution", type=int, default=None, help="default: 512 (SD-v1.5), 32 with --tiny")
    ap.add_argument("--steps", default="20,50", help="two step counts: short,long")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per configuration")
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--tiny", action="store_true", help="tiny random pipeline (CPU smoke run)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    import torch

    from ldmpick.hardware.fingerprint import full_fingerprint
    from ldmpick.costs.latency import predict as predict_latency
    from ldmpick.generation.runner import GenerateRequest, generate, load_pipeline
    from ldmpick.measurement.profiler import ProfileRequest, run_profile

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype or ("fp16" if device.startswith("cuda") else "fp32")
    mode = args.mode or ("cudagraph" if device.startswith("cuda") else "eager")
    resolution = args.resolution or (32 if args.tiny else 512)
    short, long_ = (int(x) for x in args.steps.split(","))

    with tempfile.TemporaryDirectory(prefix="ldmpick-bench-") as tmp:
        folder = Path(tmp) / ("tiny-sd" if args.tiny else "sd15-random")
        t0 = time.perf_counter()
        if args.tiny:
            sys.path.insert(0, str(ROOT / "tests"))
            from tiny_pipeline import build_tiny_pipeline

            build_tiny_pipeline(folder)
        else:
            build_sd15_random(folder, device, dtype)
        print(f"built {folder.name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        # 1. profile
        req = ProfileRequest(models=[str(folder)], device=device, dtype=dtype, resolution=resolution, batch=1, cfg=True,
                             mode=mode, samplers=[args.sampler], warmup=3, repeats=30, max_seconds_per_model=60)
        profile = run_profile(req)
        prediction = predict_latency(profile, [folder.name, str(folder)], args.sampler, 1)
        assert prediction is not None, "profile lacks the model"
        print(f"profiled: predicted {prediction.denoise_ms:.2f} ms per step", file=sys.stderr)

        pipe = load_pipeline(folder, device, dtype)
        from ldmpick.models.samplers import make_scheduler

        # 2. plain diffusers, eager
        pipe.scheduler = make_scheduler(args.sampler, dict(pipe.scheduler.config))
        plain = {s: time_plain_call(pipe, device, s, resolution, args.runs) for s in (short, long_)}
        plain_step = (statistics.median(plain[long_]) - statistics.median(plain[short])) / (long_ - short)
        print(f"plain diffusers eager: {plain_step:.2f} ms per step", file=sys.stderr)

        # 3. ldmpick generate in `mode`
        runs = {}
        for s in (short, long_):
            res = generate(GenerateRequest(model=str(folder), prompts=["a photograph of an astronaut riding a horse"]
                                           * args.runs, sampler=args.sampler, steps=s, seed=0, resolution=resolution,
                                           device=device, dtype=dtype, mode=mode), pipeline=pipe)
            runs[s] = res
        loop_per_eval = [p.times.denoise_ms / runs[long_].unet_evals for p in runs[long_].prompts]
        ldm_step = statistics.median(loop_per_eval)
        ldm_slope = (statistics.median(p.times.total_ms for p in runs[long_].prompts)
                     - statistics.median(p.times.total_ms for p in runs[short].prompts)) / (long_ - short)
        total_measured = statistics.median(p.times.total_ms for p in runs[long_].prompts)
        total_pred = predict_latency(profile, [folder.name, str(folder)], args.sampler, long_)
        fp = full_fingerprint(device)

    speedup = plain_step / ldm_step
    ratio = ldm_step / prediction.denoise_ms
    result = {
        "bench": "bench_generate",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv),
        "model": "tiny random pipeline (tests/tiny_pipeline.py)" if args.tiny else "SD-v1.5 architecture, random weights",
        "device": fp,
        "settings": {"device": device, "dtype": dtype, "mode": mode, "resolution": resolution, "guidance": 7.5,
                     "sampler": args.sampler, "steps": [short, long_], "runs": args.runs,
                     "threads": torch.get_num_threads()},
        "plain_diffusers_eager": {"call_ms": {str(k): v for k, v in plain.items()}, "per_step_ms": plain_step},
        "ldmpick": {
            "per_step_ms": ldm_step,
            "per_step_slope_ms": ldm_slope,
            "denoise_ms": {str(s): [p.times.denoise_ms for p in r.prompts] for s, r in runs.items()},
            "total_ms": {str(s): [p.times.total_ms for p in r.prompts] for s, r in runs.items()},
            "setup_ms": {str(s): r.setup_ms for s, r in runs.items()},
        },
        "prediction": {"per_step_ms": prediction.denoise_ms, "total_ms_long": total_pred.total_ms if total_pred else None,
                       "profile_unet_step": profile.models[0].unet_step.to_json() if profile.models[0].unet_step else None},
        "speedup_vs_plain": speedup,
        "measured_over_predicted_per_step": ratio,
        "measured_over_predicted_total_long": total_measured / total_pred.total_ms if total_pred else None,
        "bars": {"speedup_at_least_2.5x": speedup >= 2.5, "within_10pct_of_prediction": abs(ratio - 1) <= 0.10},
    }
    print(f"\n{fp.get('name')} — {dtype}, {mode}, {resolution}px, guidance on, {args.sampler}\n"
          f"| | per step |\n|---|---|\n"
          f"| plain diffusers (eager) | {plain_step:.2f} ms |\n"
          f"| ldmpick generate ({mode}) | {ldm_step:.2f} ms (slope {ldm_slope:.2f} ms) |\n"
          f"| profile prediction | {prediction.denoise_ms:.2f} ms |\n"
          f"speedup {speedup:.2f}x (bar 2.5x), measured / predicted {ratio:.3f} (bar 0.90-1.10)")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
