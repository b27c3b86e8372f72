"""``ldmpick recommend``: the best configuration for a budget, with its breakdown, the top-k and the frontier."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from ldmpick.cli.options import (BatchOpt, CfgOpt, CostBudgetOpt, JsonOpt, KnobsOpt, LawOpt, MetricOpt, ModelsOpt,
                                 ModeOpt, PercentileOpt, PriceOpt, ProfileOpt, ResolutionOpt, SamplersOpt, price_source)
from ldmpick.cli.render import console, make_table, notice, print_json
from ldmpick.costs import DEFAULT, REGISTRY, budget_cost_model, cost_inputs, cost_model
from ldmpick.planning.plan import PLAN_PERCENTILE

COST_HELP = ("What the budget counts: " + "; ".join(f"{name} ({cost_model(name).summary})" for name in REGISTRY)
             + f". Default: the budget's unit picks it ('$0.002': money, '50J': energy, else {DEFAULT}). "
               "See docs/costs.md.")


def recommend_cmd(
    ctx: typer.Context,
    budget: CostBudgetOpt,
    profile: ProfileOpt = None,
    percentile: PercentileOpt = PLAN_PERCENTILE,
    metric: MetricOpt = "fid",
    models: ModelsOpt = None,
    samplers: SamplersOpt = None,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Largest step count considered.")] = 100,
    resolution: ResolutionOpt = None,
    batch: BatchOpt = None,
    cfg: CfgOpt = None,
    mode: ModeOpt = None,
    cost_model: Annotated[Optional[str], typer.Option("--cost-model", help=COST_HELP)] = None,
    price: PriceOpt = None,
    top: Annotated[int, typer.Option("--top", help="Rows in the top-k table.")] = 5,
    law_file: LawOpt = None,
    knobs: KnobsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Recommend the model, sampler and step count with the best predicted quality within a latency budget."""
    from ldmpick.planning.recommendation import recommend

    assert budget is not None  # a required option
    # the budget's unit picks the cost model unless --cost-model names one; money takes its --price here
    cm = budget_cost_model(budget, cost_model, price=price, price_source=price_source(ctx))
    source = ctx.get_parameter_source("mode")  # (typer may vendor click: compared by name)
    if not cm.needs_profile and getattr(source, "name", None) != "COMMANDLINE":
        mode = None  # $LDMPICK_MODE is about measured latency; the paper's cost has none (a typed one is refused)
    rec = recommend(budget, profile=profile, percentile=percentile, metric=metric, models=models, samplers=samplers,
                    max_steps=max_steps, resolution=resolution, batch=batch, cfg=cfg, mode=mode,
                    cost_model=cm, top=top, law_file=law_file, notify=notice, knobs=knobs)  # type: ignore[arg-type]
    if json_out:
        inputs = cost_inputs(cm)
        print_json({**rec.selection.to_json(), "source": rec.source, "percentile": percentile,
                    **({"inputs": inputs} if inputs else {})})
        return
    render_selection(rec.selection, rec.source)


def render_selection(sel: Any, source: dict[str, Any]) -> None:
    """The pick with its cost breakdown, the top-k, the Pareto frontier (thinned) and the explanation. The cost
    model (``sel.cost``) formats every cost: this knows none of them by name."""
    from rich.table import Table

    from ldmpick.models.catalogue import format_params

    from ldmpick.quality.scales import SCALES

    cost = sel.cost
    qname = SCALES[sel.metric].label
    b = sel.best
    out = console()
    head = Table(title=f"Recommended within {cost.format(sel.budget)}", show_header=False)
    head.add_column("", style="bold")
    head.add_column("")
    head.add_row("model", f"{b.model} ({format_params(b.unet_params)}-parameter denoiser)")
    head.add_row("sampler", b.sampler)
    head.add_row("steps", str(b.steps))
    if b.knobs != "none":
        head.add_row("knobs", b.knobs)
    q = (lambda v: f"{v:.2f}") if SCALES[sel.metric].lower_is_better else (lambda v: f"{v:.4f}")
    head.add_row(f"predicted {qname}", f"{q(b.quality)} ± {q(b.sigma)}")
    head.add_row(f"predicted {cost.axis}", sel.describe_cost(b))
    if b.over_budget_chance is not None:
        head.add_row("chance over budget", f"{b.over_budget_chance * 100:.0f}%")
    if "profile" in source:
        head.add_row("profile", f"{source['profile']} ({source['device']})")
    for name, given in cost_inputs(cost).items():  # what the cost rests on besides the profile (money: the price)
        head.add_row(name, given["text"])
    out.print(head)
    topt = make_table(f"Top {len(sel.top)} (best steps per model and sampler; * recommended)",
                      ("#", "model", "sampler", "steps", cost.axis, qname, "80% interval", "basis"))
    for i, c in enumerate(sel.top, 1):  # the recommended row is marked (with headroom it need not be the first)
        interval = f"{q(c.low)}-{q(c.high)}" if c.low is not None and c.high is not None else "-"
        topt.add_row(f"{i}*" if c is b else str(i), c.model + (f" [{c.knobs}]" if c.knobs != "none" else ""),
                     c.sampler, str(c.steps),
                     cost.format(c.latency, precise=True), f"{q(c.quality)} ± {q(c.sigma)}", interval, c.basis or "-")
    out.print(topt)
    shown = sel.frontier
    if len(shown) > 15:  # thin a long frontier evenly, always keeping its best end
        idx = sorted(set(range(0, len(shown), max(1, len(shown) // 15))) | {len(shown) - 1})
        shown = [shown[i] for i in idx]
    thinned = f"; {len(shown)} of its {len(sel.frontier)} points shown, --json has all" if len(shown) < len(sel.frontier) else ""
    front = make_table(f"Pareto frontier within the budget (no configuration is both faster and better{thinned})",
                       (cost.axis, "model", "sampler", "steps", qname))
    for c in shown:
        front.add_row(cost.format(c.latency, precise=True), c.model + (f" [{c.knobs}]" if c.knobs != "none" else ""),
                      c.sampler, str(c.steps), q(c.quality))
    out.print(front)
    out.print(sel.explanation, soft_wrap=True)
    for u in sel.unranked:  # no point at all on this scale: what would measure it
        what = f"{u['model']} with {u['knobs']}" if u.get("knobs") else u["model"]
        notice(f"unranked: {what} (no {qname} data): {u.get('command') or u.get('reason', '')}")
    if sel.excluded:
        notice("not considered: " + "; ".join(sel.excluded))
