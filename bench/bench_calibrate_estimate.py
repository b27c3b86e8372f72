"""Bench: how long does 'ldmpick calibrate --scorer' take for one FLUX.1-dev-sized model x five step counts at
1024 px on one H100? The goal (issue 27): under 30 minutes.

It runs the estimate 'ldmpick calibrate' prints before it starts (``calibration.driver.estimate_duration``: per
configuration, ``samples`` images in calls of the profile's batch, each costing what the profile predicts for that
model, sampler and step count) on a profile of FLUX.1-dev at 1024 px, bf16, batch 1, eager, with the flow-euler
sampler, for ``--steps 4,8,16,28,50`` and the shipped prompt set (parti-48: one image per prompt) or ``--samples``.

Without ``--profile`` the profile is CONSTRUCTED here, from published end-to-end latencies (no GPU measured it),
two ways, both stated in the output:

- ``h100-schnell-anchored``: SANA-Sprint (arXiv 2503.09641, abstract) gives FLUX.1-schnell 1.1 s per 1024 px image
  on one H100. Schnell is the same 12B MM-DiT as FLUX.1-dev; with one evaluation per step (FLUX.1-dev embeds its
  guidance: no CFG-doubled batch, as schnell) and schnell's 4 steps, a step costs (1.1 s - fixed parts) / 4, with
  the fixed parts (T5-XXL + CLIP-L text encoders ~30 ms, the 1024 px VAE decode ~90 ms: an SD-sized decoder on this
  card, shared/reference/h100_observations.md) taken out. Its step count is not stated in the abstract (4 is
  schnell's default): so this anchor is an estimate, not a measurement.
- ``a100-bound``: the Sana paper (arXiv 2410.10629, Tab. 7) gives FLUX.1-dev 23.0 s for 20 steps at 1024 px on one
  A100 (fp16, batch 1): an H100 is not slower than that, so this bounds the run from above.

With ``--profile FILE`` (a profile measured on a GPU, e.g. 'ldmpick profile --models <a FLUX.1-dev-sized folder of
random weights> --resolution 1024 --dtype bf16' on the H100) the estimate rests on that instead. Checking the
estimate against a real calibration run needs a GPU and the weights: run 'ldmpick calibrate --models <FLUX.1-dev
folder> --scorer clip --scorer-model <CLIP folder> --steps 4,8,16,28,50 --samplers flow-euler' there and compare
its wall time with the estimate it prints (model loading and scoring are not in the estimate).

    python bench/bench_calibrate_estimate.py [--samples 48] [--profile FILE] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

STEPS = [4, 8, 16, 28, 50]
GOAL_S = 30 * 60
MODEL = "flux-dev"
SAMPLER = "flow-euler"
# the published anchors (shared/reference/real_models/real_latency.csv rows)
SCHNELL_H100_S = 1.1  # FLUX.1-schnell, 1x H100, 1024 px, batch 1 (SANA-Sprint abstract; steps not stated: 4)
SCHNELL_STEPS = 4
DEV_A100_S, DEV_A100_STEPS = 23.0, 20  # FLUX.1-dev, 1x A100, 1024 px, batch 1, 20 steps, fp16 (Sana Tab. 7)
TEXT_ENCODER_MS = 30.0  # T5-XXL (512 tokens) + CLIP-L on one H100, bf16: an assumption of this bench
VAE_DECODE_MS = 90.0  # 1024 px VAE decode on one H100 (an SD-sized decoder: ~92 ms, h100_observations.md)


def constructed_profile(step_ms: float, fixed_scale: float = 1.0,
                        device: str = "NVIDIA H100 80GB HBM3 (constructed from published latencies)") -> object:
    """A one-model profile of FLUX.1-dev at 1024 px, bf16, batch 1, eager, on an H100: ``step_ms`` per step and the
    fixed parts above (times ``fixed_scale``), each as a tight spread around its value."""
    from ldmpick.models.catalogue import resolve_model
    from ldmpick.profiles.schema import LatencyStats, ModelLatency, Profile, SamplerOverhead, Settings

    def stats(ms: float) -> LatencyStats:
        return LatencyStats.from_samples([ms * f for f in (0.97, 0.99, 1.0, 1.01, 1.05)])

    spec = resolve_model(MODEL)
    model = ModelLatency(MODEL, "ok", spec.unet_params, stats(step_ms), family=spec.family, cfg=False,
                         samplers=[SAMPLER])
    return Profile(
        settings=Settings(device="cuda", dtype="bf16", resolution=1024, batch=1, cfg=True, mode="eager", warmup=3,
                          repeats=20, max_seconds_per_model=60, threads=16),
        device={"kind": "cuda", "name": device, "memory_bytes": 80 * 2**30},
        models=[model], samplers=[SamplerOverhead(SAMPLER, 1, stats(0.2))],
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    ).share_fixed_parts(stats(TEXT_ENCODER_MS * fixed_scale), stats(VAE_DECODE_MS * fixed_scale))


def estimate(profile: object, samples: int | None, scorer: str) -> dict:
    from ldmpick.calibration.driver import CalibrationRequest, estimate_duration, duration_text
    from ldmpick.calibration.scorers.prompt_sets import load_prompt_set

    n = samples or len(load_prompt_set().prompts)
    req = CalibrationRequest(models=[MODEL], samplers=[SAMPLER], steps=STEPS, samples=n, guidance=3.5,
                             device="cuda", dtype="bf16", batch=1, scorer=scorer, scorer_model="(not loaded)")
    est = estimate_duration(req, profile=profile)
    return {"profile": profile.id, "device": profile.device.get("name"), "samples": n,  # type: ignore[attr-defined]
            "images": est.images, "configs": est.configs, "seconds": est.seconds,
            "duration": duration_text(est.seconds) if est.seconds is not None else None,
            "under_goal": est.seconds is not None and est.seconds < GOAL_S,
            "per_config_s": {f"{k} steps": round(s, 1) for _, _, k, s in est.per_config},
            "missing": est.missing, "line": est.describe()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=None, help="images per configuration (default: one per prompt "
                    "of parti-48)")
    ap.add_argument("--scorer", default="clip", help="clip or pickscore (self-agreement adds no configuration when "
                    "its reference, 50 steps, is in the grid)")
    ap.add_argument("--profile", type=Path, default=None, help="a measured profile instead of the constructed ones")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()

    from ldmpick import __version__

    runs = {}
    if args.profile is not None:
        from ldmpick.profiles.schema import load_profile

        runs["measured"] = estimate(load_profile(args.profile), args.samples, args.scorer)
    else:
        fixed_ms = TEXT_ENCODER_MS + VAE_DECODE_MS
        h100_step = (SCHNELL_H100_S * 1e3 - fixed_ms) / SCHNELL_STEPS
        a100_step = DEV_A100_S * 1e3 / DEV_A100_STEPS  # the fixed parts counted as steps: an upper bound
        runs["h100-schnell-anchored"] = estimate(constructed_profile(h100_step), args.samples, args.scorer)
        runs["h100-schnell-anchored"]["step_ms"] = round(h100_step, 1)
        runs["a100-bound"] = estimate(constructed_profile(a100_step, fixed_scale=0.0, device="NVIDIA A100 (constructed "
                                                          "from Sana Tab. 7: an upper bound for an H100)"),
                                      args.samples, args.scorer)
        runs["a100-bound"]["step_ms"] = round(a100_step, 1)
    doc = {
        "schema": "ldmpick.bench.calibrate-estimate/1",
        "what": f"estimated generation time of one {MODEL} calibration, {SAMPLER}, steps {STEPS}, 1024 px, batch 1",
        "goal_s": GOAL_S,
        "basis": ("a measured profile" if args.profile else
                  "CONSTRUCTED profiles from published latencies (see the script's docstring); no GPU was measured; "
                  "a real-run check needs a GPU and the weights"),
        "runs": runs,
        "command": " ".join(["python", "bench/bench_calibrate_estimate.py", *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": {"ldmpick": __version__, "python": sys.version.split()[0]},
    }
    text = json.dumps(doc, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
