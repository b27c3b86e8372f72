"""Bench (GPU): profile real released families from the built-in catalogue and set their predicted 20-step latency
beside the published A100 latencies (Sana paper Tab.7, batch 1, 20 steps; shared/reference/real_models/
real_latency.csv, whose figures are copied below with their source).

Configs only: every model is built with random weights on the GPU (weights do not change latency). Each model is
measured with its own text-encoder stack and VAE decode, in the execution mode asked (cudagraph by default).

    python bench/bench_real_families.py --out bench/results/real_families_<gpu>.json
    python bench/bench_real_families.py --models sana-0.6b --resolution 512 --mode eager   # a quick look

Not run on the CPU development machine (the models need tens of GB); the results file records the device.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

MODELS = "sana-0.6b,sana-1.6b,sdxl-base,sd3.5-medium,flux-schnell"
# Published end-to-end latency, 1x A100, fp16, batch 1, 20 steps, 1024 px (Sana paper arXiv 2410.10629 Tab.7,
# via shared/reference/real_models/real_latency.csv; "pipeline scope not stated (presumably end-to-end)").
A100_20_STEPS_S = {"sana-0.6b": 0.9, "sana-1.6b": 1.2, "sdxl-base": 6.5, "flux-schnell": 2.1}
SOURCE = "Sana paper Tab.7 (arXiv 2410.10629), 1x A100, fp16, batch 1, 20 steps, 1024 px"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--mode", default="cudagraph")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default=None, help="write the results (and keep the profile) here")
    args = ap.parse_args()

    from ldmpick.costs.latency import predict as predict_latency
    from ldmpick.profiles.schema import load_profile

    profile_path = Path(args.out).with_suffix(".profile.json") if args.out else Path(tempfile.mkdtemp()) / "p.json"
    cmd = [sys.executable, "-m", "ldmpick.cli", "profile", "--models", args.models, "--resolution",
           str(args.resolution), "--dtype", args.dtype, "--mode", args.mode, "--repeats", str(args.repeats),
           "--out", str(profile_path)]
    subprocess.run(cmd, check=True)
    prof = load_profile(profile_path)
    rows = []
    for m in prof.models:
        sampler = (m.samplers or [s.name for s in prof.samplers])[0]
        pred = predict_latency(prof, [m.name], sampler, args.steps)
        rows.append({
            "model": m.name, "family": m.family, "status": m.status, "error": m.error,
            "denoiser_params": m.denoiser_params, "cfg_batch": m.cfg,
            "denoiser_step_ms": m.denoiser_step.median_ms if m.denoiser_step else None,
            "denoiser_step_iqr_ms": m.denoiser_step.iqr_ms if m.denoiser_step else None,
            "text_encoder_ms": m.text_encoder.median_ms if m.text_encoder else None,
            "vae_decode_ms": m.vae_decode.median_ms if m.vae_decode else None,
            "sampler": sampler, "predicted_s": round(pred.total_ms / 1e3, 4) if pred else None,
            "a100_published_s": A100_20_STEPS_S.get(m.name),
        })
        r = rows[-1]
        print(f"{m.name:14s} {m.status:12s} step {r['denoiser_step_ms'] or float('nan'):8.2f} ms  "
              f"{args.steps} steps predicted {r['predicted_s'] or float('nan'):6.3f} s  "
              f"(A100 published {r['a100_published_s'] or float('nan')} s)")
    result = {"bench": "real_families", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(cmd), "device": prof.device, "settings": prof.settings.to_json(),
              "steps": args.steps, "reference": SOURCE, "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
