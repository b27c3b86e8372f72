"""Bench: is a profile's predicted end-to-end latency within 10% of a measured end-to-end run?

For each model with weights (the demo family, a registered or local diffusers folder), in ``--rounds`` interleaved
rounds (so that slow drift of the machine affects both sides alike): profile it (``ldmpick.measurement.profiler.run_profile``,
the model's real weights), predict ``text encoders + steps x (evals_per_step x denoiser step + sampler overhead) +
VAE decode`` at each part's median (``ldmpick.costs.latency.predict``), then generate for real with
``ldmpick.generation.runner.generate`` (the model's diffusers pipeline, loaded once, warmed up; batch 1, guidance on),
``--runs`` times, and compare the medians, part by part. Config-only models (the paper's ``ldm-*``) cannot generate:
``bench/bench_generate.py`` builds a random-weight SD-1.5-sized pipeline for that.

    python bench/bench_prediction.py --models demo-c8,demo-c16,demo-c80 --device cpu --sampler unipc --steps 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="demo-c8,demo-c16,demo-c80")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--mode", default="eager")
    ap.add_argument("--resolution", type=int, default=None, help="default: each model's native resolution")
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--runs", type=int, default=5, help="end-to-end runs per round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved (profile, end-to-end) rounds")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    import torch

    from ldmpick import __version__
    from ldmpick.models.catalogue import resolve_model
    from ldmpick.costs.latency import predict
    from ldmpick.hardware.fingerprint import full_fingerprint
    from ldmpick.generation.runner import GenerateRequest, generate, load_pipeline
    from ldmpick.measurement.profiler import ProfileRequest, run_profile
    from ldmpick.files.storage import atomic_write_text

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = args.dtype or ("fp16" if args.device.startswith("cuda") else "fp32")
    results = []
    for name in args.models.split(","):
        spec = resolve_model(name)
        if not spec.has_weights:
            raise SystemExit(f"{name} has no weights (config only): use bench/bench_generate.py for such models")
        resolution = args.resolution or int(spec.native_resolution)
        req = ProfileRequest(models=[name], device=args.device, dtype=dtype, resolution=resolution, mode=args.mode,
                             samplers=[args.sampler], warmup=3, repeats=20, max_seconds_per_model=30)
        pipe = load_pipeline(spec.path, args.device, dtype, spec)
        gen = GenerateRequest(model=name, prompts=["a small red circle at the top left on a blue background"],
                              sampler=args.sampler, steps=args.steps, seed=0, n=1, guidance=args.guidance,
                              device=args.device, dtype=dtype, mode=args.mode, resolution=resolution)
        predicted, measured = [], []
        for _ in range(args.rounds):
            pred = predict(run_profile(req), [name], args.sampler, args.steps)
            if pred is None:
                raise SystemExit(f"the profile of {name} lacks it or sampler {args.sampler}")
            predicted.append({"text_encoder_ms": pred.text_encoder_ms, "denoise_ms": pred.denoise_ms,
                              "vae_decode_ms": pred.vae_decode_ms, "total_ms": pred.total_ms})
            generate(gen, pipeline=pipe)  # warm-up after the profiler's work
            for _ in range(args.runs):
                t = generate(gen, pipeline=pipe).prompts[0].times
                measured.append({"text_encoder_ms": t.text_encoder_ms, "denoise_ms": t.denoise_ms,
                                 "vae_decode_ms": t.vae_decode_ms, "total_ms": t.total_ms})

        def med(rows: list[dict], key: str) -> float:
            return round(statistics.median(r[key] for r in rows), 2)

        parts = {k: {"predicted": med(predicted, k), "measured": med(measured, k)} for k in predicted[0]}
        total = parts["total_ms"]
        row = {"model": name, "resolution": resolution, "predicted_ms": total["predicted"],
               "measured_median_ms": total["measured"],
               "measured_range_ms": [round(min(r["total_ms"] for r in measured), 2),
                                     round(max(r["total_ms"] for r in measured), 2)],
               "predicted_per_round_ms": [round(p["total_ms"], 2) for p in predicted],
               "error_pct": round(100 * (total["predicted"] - total["measured"]) / total["measured"], 1),
               "parts_ms": parts, "end_to_end_runs": len(measured)}
        results.append(row)
        print(json.dumps(row), flush=True)
    doc = {"bench": "prediction", "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "command": "python " + " ".join(sys.argv), "device": full_fingerprint(args.device),
           "versions": {"ldmpick": __version__, "torch": torch.__version__},
           "settings": {"sampler": args.sampler, "steps": args.steps, "guidance": args.guidance, "cfg": True,
                        "rounds": args.rounds, "runs_per_round": args.runs, "dtype": dtype, "mode": args.mode},
           "results": results, "within_10pct": all(abs(r["error_pct"]) <= 10 for r in results)}
    if args.out:
        from pathlib import Path

        atomic_write_text(Path(args.out), json.dumps(doc, indent=2) + "\n")
    print(json.dumps({"within_10pct": doc["within_10pct"]}))
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    rc = main()
    print(f"wall {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    sys.exit(rc)
