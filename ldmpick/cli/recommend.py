"""``ldmpick recommend``: the best configuration for a budget, with its breakdown, the top-k and the frontier."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ldmpick.cli.options import (BatchOpt, BudgetOpt, CfgOpt, JsonOpt, LawOpt, MetricOpt, ModelsOpt, ModeOpt,
                                 ProfileOpt, ResolutionOpt, SamplersOpt)
from ldmpick.cli.render import console, make_table, notice, print_json


def recommend_cmd(
    budget: BudgetOpt,
    profile: ProfileOpt = None,
    percentile: Annotated[float, typer.Option("--percentile", help="Plan on this latency percentile (50 = median, 90 = p90).")] = 50.0,
    metric: MetricOpt = "fid",
    models: ModelsOpt = None,
    samplers: SamplersOpt = None,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Largest step count considered.")] = 100,
    resolution: ResolutionOpt = None,
    batch: BatchOpt = None,
    cfg: CfgOpt = None,
    mode: ModeOpt = None,
    cost_model: Annotated[str, typer.Option("--cost-model", help="measured (the profile's latencies) or flops (the paper's normalized cost; no profile).")] = "measured",
    top: Annotated[int, typer.Option("--top", help="Rows in the top-k table.")] = 5,
    law_file: LawOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Recommend the model, sampler and step count with the best predicted quality within a latency budget."""
    from ldmpick.recommendation import recommend

    assert budget is not None  # a required option
    rec = recommend(budget, profile=profile, percentile=percentile, metric=metric, models=models, samplers=samplers,
                    max_steps=max_steps, resolution=resolution, batch=batch, cfg=cfg, mode=mode,
                    cost_model=cost_model, top=top, law_file=law_file, notify=notice)
    if json_out:
        print_json({**rec.selection.to_json(), "source": rec.source, "percentile": percentile})
        return
    render_selection(rec.selection, rec.source)


def render_selection(sel: Any, source: dict[str, Any]) -> None:
    """The pick with its latency breakdown, the top-k, the Pareto frontier (thinned) and the explanation."""
    from rich.table import Table

    from ldmpick.catalogue import format_params

    lat = (lambda x: f"{x * 1e3:.0f} ms" if x < 1 else f"{x:.2f} s") if sel.unit == "s" else (lambda x: f"{x:.2f}")
    from ldmpick.quality_scales import SCALES

    qname = SCALES[sel.metric].label
    b = sel.best
    out = console()
    head = Table(title=f"Recommended within {lat(sel.budget)}" + (" (paper cost units)" if sel.unit != "s" else ""),
                 show_header=False)
    head.add_column("", style="bold")
    head.add_column("")
    head.add_row("model", f"{b.model} ({format_params(b.unet_params)} UNet params)")
    head.add_row("sampler", b.sampler)
    head.add_row("steps", str(b.steps))
    q = (lambda v: f"{v:.2f}") if SCALES[sel.metric].lower_is_better else (lambda v: f"{v:.4f}")
    head.add_row(f"predicted {qname}", f"{q(b.quality)} ± {q(b.sigma)}")
    if sel.unit == "s":
        p = b.parts
        fine = (lambda x: f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.3f} s")  # parts precise enough to add up
        head.add_row("predicted latency", f"{fine(b.latency)} = text encoder {fine(p['text_encoder'])} + "
                     f"{b.steps} steps x {fine(p['denoise'] / b.steps)} + VAE decode {fine(p['vae_decode'])}")
    else:
        head.add_row("sampling cost", f"{b.latency:.2f} (normalized cost x steps)")
    if "profile" in source:
        head.add_row("profile", f"{source['profile']} ({source['device']})")
    out.print(head)
    cost = "latency" if sel.unit == "s" else "cost"
    topt = make_table(f"Top {len(sel.top)} (best steps per model and sampler)",
                      ("#", "model", "sampler", "steps", cost, qname))
    for i, c in enumerate(sel.top, 1):
        topt.add_row(str(i), c.model, c.sampler, str(c.steps), lat(c.latency), f"{q(c.quality)} ± {q(c.sigma)}")
    out.print(topt)
    shown = sel.frontier
    if len(shown) > 15:  # thin a long frontier evenly, always keeping its best end
        idx = sorted(set(range(0, len(shown), max(1, len(shown) // 15))) | {len(shown) - 1})
        shown = [shown[i] for i in idx]
    thinned = f"; {len(shown)} of its {len(sel.frontier)} points shown, --json has all" if len(shown) < len(sel.frontier) else ""
    front = make_table(f"Pareto frontier within the budget (no configuration is both faster and better{thinned})",
                       (cost, "model", "sampler", "steps", qname))
    for c in shown:
        front.add_row(lat(c.latency), c.model, c.sampler, str(c.steps), q(c.quality))
    out.print(front)
    out.print(sel.explanation, soft_wrap=True)
    if sel.excluded:
        notice("not considered: " + "; ".join(sel.excluded))
