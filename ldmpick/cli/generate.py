"""``ldmpick generate``: run the chosen (or selected) configuration; measured against predicted latency."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ldmpick.cli.options import (CostBudgetOpt, DeviceOpt, DtypeOpt, GuidanceOpt, JsonOpt, KnobsOpt, ModelOpt, ModeOpt,
                                 OutOpt,
                                 PriceOpt, ProfileOpt, PromptsFileOpt, ResolutionOpt, SamplerOpt, SeedOpt, StepsOpt,
                                 ThreadsOpt, command_line, price_source)
from ldmpick.cli.render import console, make_table, notice, print_json, progress_bar
from ldmpick.files.errors import UsageError
from ldmpick.models.samplers import steps_text


def read_prompts(prompt: Optional[str], prompts_file: Optional[Path]) -> list[str]:
    """PROMPT or the lines of --prompts-file (one of them)."""
    if prompt is not None and prompts_file is not None:
        raise UsageError("give PROMPT or --prompts-file, not both")
    if prompts_file is None:
        if prompt is None or not prompt.strip():
            raise UsageError("no prompt given; pass PROMPT or --prompts-file")
        return [prompt]
    from ldmpick.generation.runner import read_prompts_file

    return read_prompts_file(prompts_file.expanduser())


def generate_cmd(
    ctx: typer.Context,
    prompt: Annotated[Optional[str], typer.Argument(help="The prompt (or use --prompts-file).")] = None,
    budget: CostBudgetOpt = None,
    model: ModelOpt = None,
    sampler: SamplerOpt = None,
    steps: StepsOpt = None,
    seed: SeedOpt = None,
    n: Annotated[int, typer.Option("--n", help="Images per prompt (one batch).")] = 1,
    prompts_file: PromptsFileOpt = None,
    negative_prompt: Annotated[str, typer.Option("--negative-prompt", help="What the images should not show.")] = "",
    guidance: GuidanceOpt = None,
    resolution: ResolutionOpt = None,
    out: OutOpt = Path("ldmpick-images"),
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    mode: ModeOpt = None,
    knobs: KnobsOpt = None,
    profile: ProfileOpt = None,
    threads: ThreadsOpt = None,
    warmup: Annotated[bool, typer.Option("--warmup/--no-warmup", help="Run one throwaway call before the timed images "
                                         "(set-up, reported apart): the images are then timed warm, as the profile "
                                         "measures. --no-warmup: the first image carries the process's first-call "
                                         "cost.")] = True,
    price: PriceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Generate images with the chosen (or selected) model, sampler and steps; compare measured with predicted latency.

    With --budget the selector picks what --model/--sampler/--steps leave open, planning on the run's p90 latency.
    The images and a JSON record of the run go to the --out folder (created if its parent exists)."""
    from ldmpick.generation import runner as gen
    from ldmpick.hardware.execution import apply_threads
    from ldmpick.generation.record import GenerationRecord
    from ldmpick.generation.drift import check_run
    from ldmpick.planning.plan import plan_generation
    from ldmpick.generation.outputs import sidecar_document
    from ldmpick.costs import as_latency_budget

    prompts = read_prompts(prompt, prompts_file)
    # a money budget is the seconds it buys: said before the plan's first notice (once the request is valid)
    budget, budget_note = as_latency_budget(budget, price=price, price_source=price_source(ctx))
    unsaid = [budget_note] if budget_note else []

    def notify(message: str) -> None:
        while unsaid:
            notice(unsaid.pop())
        notice(message)

    try:
        plan = plan_generation(
            prompts, out=out or Path("ldmpick-images"), budget=budget, model=model, sampler=sampler, steps=steps,
            seed=seed, n=n, negative_prompt=negative_prompt, guidance=guidance, resolution=resolution, device=device,
            dtype=dtype, mode=mode, profile=profile, warmup=warmup, notify=notify, knobs=knobs)
    except UsageError as exc:
        if not unsaid:
            raise
        raise UsageError(f"{exc} ({unsaid[0]})") from None  # (it names the budget in seconds)
    for line in unsaid:
        notice(line)
    settings = plan.settings
    advice = apply_threads(threads, plan.profile_threads).advice(settings.device)  # as the prediction measured
    if advice:
        notice(advice)
    record = GenerationRecord(plan, command_line())
    with progress_bar(f"loading {settings.model}", disable=json_out) as bar:
        def tick(done: int, total: int) -> None:
            per_prompt = total // len(prompts)
            bar.update(completed=done, total=total,
                       description=f"prompt {min(done // per_prompt + (done % per_prompt > 0), len(prompts))}/"
                                   f"{len(prompts)}, {settings.n} image(s), {settings.sampler} x {settings.steps}")

        result = gen.run_plan(plan, progress=tick, on_prompt=record.add_prompt)
    record.finish(result)
    for line in result.notes:
        notice(f"note: {line}")
    exceeded = plan.over_budget(result)
    if json_out:
        print_json({**sidecar_document(record.doc), "sidecar": str(record.sidecar), "out": str(plan.folder)})
    else:
        render_generation(result, plan.latency, record)
    if exceeded:
        worst = max(p.latency_ms for p in exceeded)
        notice(f"warning: budget exceeded: {len(exceeded)} of {len(result.prompts)} prompt batch(es) took longer than "
               f"{plan.budget_ms:.0f} ms (slowest {worst:.0f} ms)")
    drift = check_run(plan, result)
    if drift:
        notice(drift)


def render_generation(result: Any, prediction: Any, record: Any) -> None:
    """Predicted against measured time per part (the median prompt), then where the images are."""
    s = result.settings
    n_prompts = len(result.prompts)
    measured = {part: statistics.median(getattr(p.times, part) for p in result.prompts)
                for part in ("text_encoder_ms", "denoise_ms", "vae_decode_ms")}
    measured["latency_ms"] = statistics.median(p.latency_ms for p in result.prompts)
    # the rest of the call and the write: what the pipeline does around its parts, and writing the PNGs
    measured["call_ms"] = measured["latency_ms"] - sum(measured[k] for k in ("text_encoder_ms", "denoise_ms",
                                                                            "vae_decode_ms"))
    title = (f"{s.model} — {s.sampler} ({result.scheduler_class}) x {steps_text(s.steps)}, {s.resolution}px, "
             f"{s.n} image(s)/prompt, {s.dtype}, {s.mode} on {s.device}")
    table = make_table(title + ("" if n_prompts == 1 else f"\nmedian over {n_prompts} prompts"),
                       ("part", "predicted", "measured", "measured / predicted"), left=("part",))
    for label, key, pkey in (("text encoder", "text_encoder_ms", "text_encoder_ms"),
                             ("denoising loop", "denoise_ms", "denoise_ms"),
                             ("VAE decode", "vae_decode_ms", "vae_decode_ms"),
                             ("rest of the call and write", "call_ms", "call_ms"),
                             ("total (prompt to written image)", "latency_ms", "total_ms")):
        pred = getattr(prediction, pkey) if prediction else None
        if key == "call_ms" and prediction is not None and prediction.basis == "parts":
            pred = None  # the profile did not time the model's own call: the parts are all it predicts
        m = measured[key]
        table.add_row(label, f"{pred:.1f} ms" if pred is not None else "-", f"{m:.1f} ms",
                      f"{m / pred:.2f}x" if pred and pred > 0 else "-")
    console().print(table)
    if prediction is not None and prediction.planned_ms is not None:
        chance = prediction.over_budget_chance
        risk = "" if chance is None or prediction.budget_ms is None else \
            f"; {chance * 100:.0f}% of runs predicted over the {prediction.budget_ms:.0f} ms budget"
        console().print(f"predicted p{prediction.percentile:g} latency {prediction.planned_ms:.1f} ms (the latency "
                        f"planned on; from the {prediction.basis}){risk}")
    console().print(f"{len(record.doc['images'])} image(s) in '{record.folder}' (settings in "
                    f"'{record.sidecar.name}'); load {result.load_ms / 1e3:.1f} s, setup {result.setup_ms / 1e3:.1f} s "
                    "(not in the totals)")
