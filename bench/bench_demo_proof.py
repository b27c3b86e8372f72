"""Proof (issue 5): is the configuration `recommend` picks as good as the best one found by measuring everything?

On the demo family (trained here, shipped), with a latency profile of this machine:

1. measure FID and prompt accuracy over the whole grid (models x samplers x steps 1,2,4,8,16,32) with
   ``ldmpick.calibration.driver`` at ``--seed`` (prompts, reference images and initial noise all follow the seed);
2. fit the law on part of the grid only (``--fit-steps``, default 1,4,16,32) and report how well it predicts the
   held-out step counts (2 and 8), both the fitted form alone and the form corrected by its measured residuals;
3. for each budget, pick a configuration by four policies:
   - **recommend**: ``select_config`` over every step count 1..100 with the law of step 2 and the profile;
   - **oracle**: the best configuration of the *whole* measured grid whose profile latency fits the budget;
   - **largest**: the largest model, as many steps as fit, with the sampler the law prefers for it;
   - **FLOP rule**: the paper's cost axis: per-step cost taken proportional to UNet FLOPs (counted with
     ``torch.utils.flop_counter`` and scaled to the largest model's measured step), fixed costs as measured;
     flagged when its real (profile) latency breaks the budget;
4. measure every picked configuration again at a fresh seed (``--check-seed``: other prompts, other reference
   images, other noise) and compare the policies on those fresh measurements only, so that neither the law nor the
   oracle profits from the noise of the measurements it was chosen on;
5. measure the real end-to-end latency of each recommended configuration (``ldmpick.generation.runner.generate``, batch 1,
   median of ``--runs``) next to the profile's prediction; done before the FID checks of step 4, which heat the
   machine for minutes.

    python bench/bench_demo_proof.py --profile profiles/cpu-amd-epyc-2core-demo-32px-fp32-eager.json \\
        --table ~/.local/share/ldmpick/quality_points.csv --out bench/results/demo_proof_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path


def unet_flops(model: str) -> float:
    """FLOPs of one guided UNet evaluation (batch 2) at the model's native latent size."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ldmpick.models.catalogue import resolve_model
    from ldmpick.generation.runner import load_pipeline

    pipe = load_pipeline(resolve_model(model).path, "cpu", "fp32")
    s = pipe.unet.config.sample_size
    x = torch.randn(2, pipe.unet.config.in_channels, s, s)
    ctx = torch.randn(2, pipe.tokenizer.model_max_length, pipe.text_encoder.config.hidden_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        pipe.unet(x, torch.tensor(500), encoder_hidden_states=ctx)
    return float(counter.get_total_flops())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--models", default="demo-c8,demo-c16,demo-c80")
    ap.add_argument("--samplers", default="ddim,dpmpp-2m,euler,unipc")
    ap.add_argument("--steps", default="1,2,4,8,16,32")
    ap.add_argument("--fit-steps", default="1,4,16,32", help="the step counts the law is fitted on")
    ap.add_argument("--check-seed", type=int, default=1, help="seed of the fresh measurements that decide")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budgets", default="", help="ms, comma-separated (default: 6 spread over the profile's range)")
    ap.add_argument("--runs", type=int, default=5, help="end-to-end latency runs per recommended configuration")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--grid", default="", help="reuse a grid JSON written by an earlier run (its 'grid' key)")
    ap.add_argument("--table", default="", help="reuse grid points from a quality table written by 'ldmpick calibrate'")
    ap.add_argument("--reuse-checks", default="", help="reuse the check-seed measurements of an earlier output JSON")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch

    from ldmpick import __version__
    from ldmpick.calibration import driver as calib
    from ldmpick.hardware.fingerprint import full_fingerprint
    from ldmpick.generation.runner import GenerateRequest, generate
    from ldmpick.costs import steps_within
    from ldmpick.costs.latency import cost_rows as cost_rows_measured
    from ldmpick.profiles.schema import load_profile
    from ldmpick.quality.fit import fit_law
    from ldmpick.quality.table import read_table, shipped_table_path
    from ldmpick.planning.selector import select_config

    torch.set_num_threads(args.threads)
    profile = load_profile(Path(args.profile))
    models = args.models.split(",")
    samplers = args.samplers.split(",")
    grid_steps = [int(s) for s in args.steps.split(",")]
    base = dict(samples=args.samples, seed=args.seed)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    # 1. the grid
    t0 = time.perf_counter()
    measured: dict[tuple[str, str, int], dict] = {}
    if args.grid:
        for r in json.loads(Path(args.grid).read_text())["grid"]:
            measured[(r["model"], r["sampler"], r["steps"])] = r
    if args.table:
        pts = read_table(Path(args.table).read_text(encoding="utf-8"), args.table)
        for p in pts:
            if p.metric != "fid" or p.num_samples != args.samples or not p.series.startswith("calibrated"):
                continue
            acc = next((q.value for q in pts if q.metric == "prompt_acc" and
                        (q.model, q.sampler, q.steps) == (p.model, p.sampler, p.steps)), None)
            measured[(p.model, p.sampler, p.steps)] = dict(
                model=p.model, unet_params=p.unet_params, sampler=p.sampler, steps=p.steps, fid=p.value,
                prompt_acc=acc, prompt_all=None, samples=p.num_samples, resolution=p.resolution, seconds=0.0)
    req = calib.CalibrationRequest(models=models, samplers=samplers, steps=grid_steps, **base)
    todo = [c for c in req.configs() if c not in measured]
    if todo:
        partial = Path(args.out).with_suffix(".partial.json")
        resume = calib.read_partial(partial, req) if partial.exists() else None
        cal = calib.run_calibration(req, progress=lambda d, t, label: log(f"grid {d}/{t} {label}"),
                                    checkpoint=lambda c: calib.write_partial(c, partial), resume_from=resume)
        for r in cal.results:
            measured[(r.model, r.sampler, r.steps)] = asdict(r)
        partial.unlink(missing_ok=True)
    grid_s = time.perf_counter() - t0
    grid_keys = set(req.configs())

    # 2. the law, fitted on part of the grid; how well it predicts the held-out step counts
    fit_steps = [int(x) for x in args.fit_steps.split(",")]
    # the shipped table without its calibrated rows (it ships this very grid: keeping them would leak the
    # held-out step counts into the fit)
    shipped = ([p for p in read_table(shipped_table_path().read_text(encoding="utf-8"), "shipped")
                if not p.series.startswith("calibrated")], "shipped")
    fit_cal = calib.Calibration(req, [calib.CalibrationResult(**measured[c]) for c in req.configs()
                                      if c[2] in fit_steps], profile_id=profile.id)
    law = fit_law([shipped, (calib.points_of(fit_cal), "grid at the fit steps")], command="bench_demo_proof")
    fam = next(f for f in law.calibrated if f.metric == "fid")
    form_only = type(fam).from_json({**fam.to_json(), "residuals": []})
    held = []
    for c in req.configs():
        if c[2] in fit_steps:
            continue
        meas = measured[c]["fid"]
        held.append({"config": list(c), "measured": meas,
                     "corrected": round(fam.predict(*c)[0], 2), "form_only": round(form_only.predict(*c)[0], 2)})
    held_err = {k: round(100 * statistics.median(abs(h[k] / h["measured"] - 1) for h in held), 1) if held else None
                for k in ("corrected", "form_only")}
    log(f"held-out steps: median |error| corrected {held_err['corrected']}%, form only {held_err['form_only']}%")

    fresh: dict[tuple[str, str, int], dict] = {}
    if args.reuse_checks:
        earlier = json.loads(Path(args.reuse_checks).read_text())
        if earlier["settings"]["check_seed"] != args.check_seed or earlier["settings"]["samples"] != args.samples:
            raise SystemExit("--reuse-checks: that run used another check seed or sample count")
        fresh = {(c["model"], c["sampler"], c["steps"]): c for c in earlier["check_measurements"]}

    def measure(model: str, sampler: str, steps: int) -> dict:
        """The configuration measured again at the check seed: what decides."""
        key = (model, sampler, steps)
        if key not in fresh:
            one = calib.CalibrationRequest(models=[model], samplers=[sampler], steps=[steps],
                                           samples=args.samples, seed=args.check_seed)
            fresh[key] = asdict(calib.run_calibration(one).results[0])
            log(f"check {model} {sampler} {steps}: FID {fresh[key]['fid']:.2f}")
        return fresh[key]

    rows = cost_rows_measured(profile, models, samplers, 50, [])
    params = {r.model: r.unet_params for r in rows}
    largest = max(params, key=params.get)
    flops = {m: unet_flops(m) for m in models}

    def latency(model: str, sampler: str, steps: int) -> float:
        r = next(r for r in rows if r.model == model and r.sampler == sampler)
        return r.fixed + steps * r.per_step

    fastest = min(r.fixed + r.per_step for r in rows)
    slowest = max(latency(m, s, max(grid_steps)) for m in models for s in samplers)
    if args.budgets:
        budgets = [float(b) / 1e3 for b in args.budgets.split(",")]
    else:  # 6 budgets, log-spaced from just above the fastest configuration to the largest model's longest run
        lo, hi = fastest * 1.5, slowest
        budgets = [round(lo * (hi / lo) ** (i / 5), 4) for i in range(6)]

    def entry(cfg: tuple[str, str, int], **extra) -> dict:
        m = measure(*cfg)
        return {"config": list(cfg), "fid": m["fid"], "prompt_acc": m["prompt_acc"],
                "predicted_ms": round(latency(*cfg) * 1e3, 2), **extra}

    # 5 (measured first, on a machine not yet heated by the FID checks). The real end-to-end latency of each
    # recommended configuration (batch 1, guidance on, as profiled), with the pipeline loaded once and warmed up, as
    # the profile's numbers are (a one-shot CLI run also pays a cold start)
    from ldmpick.models.catalogue import resolve_model
    from ldmpick.generation.runner import load_pipeline

    picks = {b: select_config(rows, law, b, max_steps=100).best for b in budgets}
    pipes: dict[str, object] = {}
    timed: dict[tuple[str, str, int], list[float]] = {}
    for rec in picks.values():
        key = (rec.model, rec.sampler, rec.steps)
        if key in timed:
            continue
        if rec.model not in pipes:
            pipes[rec.model] = load_pipeline(resolve_model(rec.model).path, "cpu", "fp32")
        req1 = GenerateRequest(model=rec.model, prompts=["a small red circle at the top left on a blue background"],
                               sampler=rec.sampler, steps=rec.steps, seed=0, n=1, guidance=req.guidance,
                               device="cpu")
        timed[key] = [generate(req1, pipeline=pipes[rec.model]).prompts[0].times.total_ms
                      for _ in range(args.runs + 2)][2:]  # the first two: warm-up

    results = []
    for b in budgets:
        rec = picks[b]
        rec_cfg = (rec.model, rec.sampler, rec.steps)
        fits = [(measured[c]["fid"], c) for c in grid_keys if latency(*c) <= b]
        oracle_grid_fid, oracle = min(fits)
        big = [r for r in rows if r.model == largest and steps_within(r, b, 100) > 0]
        big_cfg = None
        if big:
            pick = min(big, key=lambda r: law.predict_fid(r.unet_params, r.sampler, steps_within(r, b, 100),
                                                          model=r.model).value)
            big_cfg = (largest, pick.sampler, steps_within(pick, b, 100))
        # the FLOP rule: per-step cost proportional to FLOPs, scaled to the largest model's measured step
        ref = next(r for r in rows if r.model == largest and r.sampler == samplers[0])
        unit = ref.breakdown.denoiser_step.at(ref.breakdown.percentile) / 1e3 / flops[largest]  # s per FLOP
        best_flop = None
        for r in rows:
            bd = r.breakdown
            per_step = bd.evals_per_step * flops[r.model] * unit + bd.sampler_overhead.at(bd.percentile) / 1e3
            n = min(100, int((b - r.fixed) / per_step)) if b > r.fixed else 0
            for k in range(1, n + 1):
                q = law.predict_fid(r.unet_params, r.sampler, k, model=r.model).value
                if best_flop is None or q < best_flop[0]:
                    best_flop = (q, (r.model, r.sampler, k))
        flop_cfg = best_flop[1] if best_flop else None
        row = {
            "budget_ms": round(b * 1e3, 2),
            "recommend": entry(rec_cfg, predicted_fid=round(rec.quality, 2), on_grid=rec_cfg in grid_keys,
                               grid_fid=measured[rec_cfg]["fid"] if rec_cfg in grid_keys else None),
            "oracle": entry(oracle, grid_fid=oracle_grid_fid),
            "largest": entry(big_cfg) if big_cfg else None,
            "flop_rule": entry(flop_cfg, over_budget=latency(*flop_cfg) > b) if flop_cfg else None,
        }
        times = timed[rec_cfg]
        row["recommend"]["measured_ms_median"] = round(statistics.median(times), 2)
        row["recommend"]["measured_ms_range"] = [round(min(times), 2), round(max(times), 2)]
        row["ratio_to_oracle"] = round(row["recommend"]["fid"] / row["oracle"]["fid"], 3)
        results.append(row)
        log(f"budget {b * 1e3:.1f} ms: recommend {rec_cfg} {row['recommend']['fid']:.1f} | oracle {oracle} "
            f"{row['oracle']['fid']:.1f} | largest {big_cfg} {row['largest']['fid'] if big_cfg else '-'} | "
            f"flop {flop_cfg} {row['flop_rule']['fid'] if flop_cfg else '-'}")

    def mean_of(policy: str, rows_: list[dict]) -> float | None:
        vals = [r[policy]["fid"] for r in rows_ if r[policy]]
        return round(statistics.mean(vals), 2) if vals else None

    with_big = [r for r in results if r["largest"]]
    summary = {
        "within_10pct_of_oracle": f"{sum(r['ratio_to_oracle'] <= 1.10 for r in results)}/{len(results)}",
        "ratios_to_oracle": [r["ratio_to_oracle"] for r in results],
        "mean_fid_all_budgets": {p: mean_of(p, results) for p in ("recommend", "oracle", "flop_rule")},
        "mean_fid_where_largest_fits": {p: mean_of(p, with_big) for p in ("recommend", "largest")},
        "flop_rule_over_budget": sum(bool(r["flop_rule"] and r["flop_rule"]["over_budget"]) for r in results),
        "oracle_models_by_budget": [r["oracle"]["config"][0] for r in results],
        # the paper's trade-off, measured: budgets where the largest model fits but recommend picks a smaller one
        # and that smaller model's fresh FID is better than the largest model's
        "smaller_model_wins_at_ms": [r["budget_ms"] for r in with_big if r["recommend"]["config"][0] != largest
                                     and r["recommend"]["fid"] < r["largest"]["fid"]],
        "held_out_median_abs_error_pct": held_err,
        "law_fit_residual_rms_log": round(fam.rms_log, 4),
    }
    doc = {
        "what": "issue 5 proof: recommend vs oracle vs naive policies on the demo family",
        "command": "python " + " ".join(sys.argv),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": full_fingerprint("cpu"),
        "versions": {"ldmpick": __version__, "torch": torch.__version__},
        "profile": profile.id,
        "settings": {"samples": args.samples, "seed": args.seed, "check_seed": args.check_seed,
                     "guidance": req.guidance, "threads": args.threads, "fit_steps": fit_steps,
                     "grid": {"models": models, "samplers": samplers, "steps": grid_steps},
                     "grid_wall_s": round(grid_s, 1)},
        "unet_flops_per_guided_eval": flops,
        "law": fam.to_json(),
        "summary": summary,
        "budgets": results,
        "held_out": held,
        "grid": [dict(measured[c]) for c in req.configs()],
        "check_measurements": list(fresh.values()),
    }
    from ldmpick.files.storage import atomic_write_text

    atomic_write_text(Path(args.out), json.dumps(doc, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
