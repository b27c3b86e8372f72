"""``ldmpick calibrate``: measure quality for real and refit the law."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ldmpick.cli.options import (DeviceOpt, DtypeOpt, GuidanceOpt, JsonOpt, ResumeOpt, SeedOpt, StepListOpt,
                                 ThreadsOpt, command_line, int_list)
from ldmpick.cli.render import console, make_table, notice, print_json, progress_bar
from ldmpick.files.errors import UsageError
from ldmpick.models.catalogue import DEMO_MODELS

DEMO_FAMILY = ",".join(DEMO_MODELS)


CalibrateModelsOpt = Annotated[Optional[str], typer.Option(
    "--models", "-m", help="Comma-separated models with weights: names, local diffusers folders or cached hub ids.")]
CalibrateBatchOpt = Annotated[Optional[int], typer.Option(
    "--batch", help="Images generated at once (default 256; with --scorer 1).")]
ScorerOpt = Annotated[Optional[str], typer.Option(
    "--scorer", help="Measure with a reference-free scorer instead of FID: 'clip' (CLIP score), 'pickscore' (a "
    "PickScore-class preference model) or 'self-agreement' (CLIP image similarity to the model's own image at "
    "--reference-steps, same prompt and seed). Needs --scorer-model; prompts: the shipped PartiPrompts subset "
    "(parti-48) or --prompts-file. Each scorer, checkpoint, prompt set and resolution is its own scale.")]
ScorerModelOpt = Annotated[Optional[str], typer.Option(
    "--scorer-model", help="The scorer's transformers CLIPModel checkpoint: a local folder or a cached hub id "
    "(safetensors only; never downloaded); 'world-judge': the demo world's judge (self-agreement only).")]
ReferenceStepsOpt = Annotated[Optional[int], typer.Option(
    "--reference-steps", help="--scorer self-agreement: the step count every image is compared with (default: the "
    "most of --steps; measured even if --steps leaves it out).")]
PromptSetOpt = Annotated[Optional[str], typer.Option(
    "--prompt-set", help="--scorer: a shipped prompt set: parti-48 (default; 48 PartiPrompts, Apache-2.0) or "
    "demo-world-256 (the demo world's captions of a demo FID calibration at seed 0).")]
CalibratePromptsFileOpt = Annotated[Optional[Path], typer.Option(
    "--prompts-file", help="UTF-8 text file, one prompt per line (with --reference, or with --scorer instead of "
    "the shipped prompt set).")]


def calibrate_cmd(
    models: CalibrateModelsOpt = DEMO_FAMILY,
    samplers: Annotated[Optional[str], typer.Option(
        "--samplers", help="Comma-separated sampler names, or 'all' (each model runs those that fit it). Default: "
        "ddim, dpmpp-2m, euler and unipc, those of them that fit each model (a flow model: its flow samplers).")] = None,
    steps: StepListOpt = "1,2,4,8,16,32",
    samples: Annotated[Optional[int], typer.Option("--samples", help="Images generated (and measured) per configuration (FID depends on it: the shipped demo calibration used 256). Default 256; with --scorer, one per prompt of the prompt set.")] = None,
    seed: SeedOpt = 0,
    guidance: GuidanceOpt = None,
    batch: CalibrateBatchOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    reference: Annotated[Optional[Path], typer.Option("--reference", help="Folder of real reference images (real models; default: the demo world).")] = None,
    prompts_file: CalibratePromptsFileOpt = None,
    inception_weights: Annotated[Optional[Path], typer.Option("--inception-weights", help="Local safetensors of torchvision's inception_v3 (with --reference).")] = None,
    scorer: ScorerOpt = None,
    scorer_model: ScorerModelOpt = None,
    reference_steps: ReferenceStepsOpt = None,
    prompt_set: PromptSetOpt = None,
    threads: ThreadsOpt = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", metavar="ADDRESS", help="Run the grid's shards on a Ray cluster: 'local' (start one on this machine), 'auto' (the one 'ray start' runs here) or a Ray address (ray://head:10001). --threads is then CPUs per task. Needs: pip install \"ldmpick[cluster]\".")] = None,
    resume: ResumeOpt = False,
    restart: Annotated[bool, typer.Option("--restart", help="Discard an interrupted calibration of the same grid and start over.")] = False,
    no_fit: Annotated[bool, typer.Option("--no-fit", help="Append the points but do not refit the law.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Measure FID (and prompt accuracy), or a reference-free scorer (--scorer), over a grid of models x samplers x
    steps; add the points to your quality table and refit the law."""
    from ldmpick.calibration import driver as calib
    from ldmpick.jobs import calibrate as job
    from ldmpick.hardware.execution import apply_threads

    if scorer is not None and cluster is not None:
        raise UsageError("--cluster runs FID calibrations; a --scorer calibration runs here (give one or the other)")
    req = job.build_request(
        models=DEMO_FAMILY if models is None else models,
        samplers=samplers, steps=int_list(steps, "--steps"),
        samples=samples, seed=0 if seed is None else seed, guidance=guidance, batch=batch,
        device=device, dtype=dtype, reference=reference, prompts_file=prompts_file,
        inception_weights=inception_weights, scorer=scorer, scorer_model=scorer_model,
        reference_steps=reference_steps, prompt_set=prompt_set)
    partial, resume_from = job.partial_state(req, resume, restart)
    job.check_user_table()
    if resume_from is not None:
        notice(f"resuming from '{partial}' ({len(resume_from)} configuration(s) already measured)")
    if cluster is None:
        notice(calib.estimate_duration(req, resume_from, shards=calib.shard_store(req)).describe())
    if cluster is None:  # on a cluster, --threads is each task's CPUs
        advice = apply_threads(threads).advice(req.device)
        if advice:
            notice(advice)
    partial.parent.mkdir(parents=True, exist_ok=True)
    shards = calib.shard_store(req)

    def kept() -> None:
        if partial.exists() or shards.folder.is_dir():
            notice(f"interrupted: completed work kept in '{partial}' and '{shards.folder}'; rerun with --resume")

    with job.shard_runner(req, cluster, threads) as runner:
        if runner is not None:
            notice(f"Ray cluster '{cluster}': {runner.info.describe()}; {runner.slots} task(s) at a time")
        with progress_bar("calibrating", total=len(req.configs()), completed=len(resume_from or []),
                          on_interrupt=kept) as bar:
            def tick(done: int, total: int, label: str) -> None:
                bar.update(completed=done, description=label)

            cal = calib.run_calibration(req, progress=tick, checkpoint=lambda c: calib.write_partial(c, partial),
                                        resume_from=resume_from, shards=shards, runner=runner)
    table, rows = job.store_results(cal, partial)
    per = ("a row on its scorer scale" if req.scorer is not None else "an FID and a prompt-accuracy row"
           if req.reference is None else "an FID row")
    notice(f"{len(cal.results)} configuration(s) measured ({per} each); quality table '{table}' now has {rows} "
           "row(s)")
    law_doc = None
    if not no_fit:
        fams, target = job.refit(req, command_line())
        fits = ", ".join(f"{f.metric} residual {100 * f.rms_log:.1f}% over {f.points} points" for f in fams)
        if req.scorer is not None:
            fits = fits or "the rows are on their scorer's own scale: " + ", ".join(
                sorted({str(r.scale) for r in cal.results}))
        notice(f"law refitted and written to '{target}'" + (f" ({fits})" if fits else
                                                             " (too few points to fit this data set's curves)"))
        law_doc = [f.to_json() for f in fams]
    if json_out:
        print_json({"dataset": req.dataset, "profile": cal.profile_id, "table": str(table),
                    "results": [r.__dict__ for r in cal.results], "law": law_doc})
        return
    if req.scorer is not None:
        scales = sorted({str(r.scale) for r in cal.results})
        t = make_table(f"Measured {req.scorer} on {req.dataset} ({req.samples} images per configuration, seed "
                       f"{req.seed}; scale {', '.join(scales)})", ("model", "sampler", "steps", "mean", "sd", "images",
                                                                  "seconds"))
        for r in cal.results:
            t.add_row(r.model, r.sampler, str(r.steps), f"{r.score:.4f}", f"{r.score_sd:.4f}", str(r.samples),
                      f"{r.seconds:.1f}")
        console().print(t)
        return
    t = make_table(f"Measured quality on {req.dataset} ({req.samples} images per configuration, seed {req.seed})",
                   ("model", "sampler", "steps", "FID", "prompt accuracy", "all attributes", "seconds"))
    for r in cal.results:
        t.add_row(r.model, r.sampler, str(r.steps), f"{r.fid:.2f}",
                  "-" if r.prompt_acc is None else f"{r.prompt_acc:.3f}",
                  "-" if r.prompt_all is None else f"{r.prompt_all:.3f}", f"{r.seconds:.1f}")
    console().print(t)
