"""``ldmpick plot``: quality against measured latency, the paper's key figure on this hardware."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ldmpick.cli.options import (BudgetOpt, JsonOpt, LawOpt, MetricOpt, ModelsOpt, OutOpt, PercentileOpt, ProfileOpt,
                                 SamplersOpt)
from ldmpick.planning.plan import PLAN_PERCENTILE, check_percentile
from ldmpick.cli.render import console, make_table, notice, print_json


def plot_cmd(
    out: OutOpt = Path("quality_vs_latency.png"),
    budget: BudgetOpt = None,
    profile: ProfileOpt = None,
    models: ModelsOpt = None,
    samplers: SamplersOpt = None,
    metric: MetricOpt = "fid",
    law_file: LawOpt = None,
    percentile: PercentileOpt = PLAN_PERCENTILE,
    no_law: Annotated[bool, typer.Option("--no-law", help="Draw measured points only, not the law's curves.")] = False,
    knobs: Annotated[str, typer.Option("--knobs", metavar="none|auto|LIST", help="Also draw the Pareto frontier with knobs in the choice (as recommend --knobs makes it: 'auto', the variants the profile measured, or knob lists separated by ';'), beside the plain one.")] = "none",
    json_out: JsonOpt = False,
) -> None:
    """Draw quality against measured latency for every model and sampler, with the budget line and the Pareto
    frontier: the paper's key figure, on your hardware. Writes --out (.png or .svg). Latencies are at --percentile
    (90, as recommend plans), so the points left of the budget line are the ones recommend can pick."""
    from ldmpick.models.catalogue import parse_model_list
    from ldmpick.plots.data import plot_points
    from ldmpick.plots.figure import plot_quality_vs_latency
    from ldmpick.costs import cost_model
    from ldmpick.costs.latency import NAME as LATENCY
    from ldmpick.profiles.choice import choose_profile, quality_data_for
    from ldmpick.quality.law import load_law
    from ldmpick.planning.selector import sampler_names

    # every option is checked before the profile notice, so that bad input is one line on any machine
    pct = check_percentile(percentile)
    budget_ms = cost_model(LATENCY).parse_budget(budget) * 1e3 if budget else None
    sampler_list = sampler_names(samplers) if samplers is not None else None
    model_list = parse_model_list(models) if models is not None else None
    from ldmpick.planning.plan import parse_knobs_choice

    with_knobs = parse_knobs_choice(knobs) != []  # (bad text: one line, before anything is read)
    law, _ = load_law(law_file)
    choice = choose_profile(profile, models=model_list,
                            rankable=None if model_list else quality_data_for(law, metric, sampler_list))
    frontier_with_knobs = None
    if with_knobs:
        from ldmpick.plots.data import knob_frontier

        frontier_with_knobs = knob_frontier(choice.profile, law, metric, pct, knobs, choice.models, sampler_list,
                                            budget_ms / 1e3 if budget_ms else None)
    summary = plot_quality_vs_latency(
        plot_points(law, metric), choice.profile, law=None if no_law else law, budget_ms=budget_ms,
        out=out or Path("quality_vs_latency.png"), metric=metric, percentile=pct, samplers=sampler_list,
        models=choice.models, knob_frontier=frontier_with_knobs)
    notice(choice.notice)
    notice(f"plot written to '{summary.path}'")
    if json_out:
        print_json(summary.to_json())
        return
    t = make_table(f"Pareto frontier ({summary.basis}, {summary.points} points)",
                   ("latency", "model", "sampler", "steps", metric))
    for f in summary.frontier:
        t.add_row(f"{f['latency_ms']:.1f} ms", f["model"], f["sampler"], str(f["steps"]), f"{f['value']:.3f}")
    console().print(t)
    if summary.knob_frontier is not None:
        k = make_table(f"Pareto frontier with knobs ({knobs})", ("latency", "model", "sampler", "steps", "knobs", metric))
        for f in summary.knob_frontier:
            k.add_row(f"{f['latency_ms']:.1f} ms", f["model"], f["sampler"], str(f["steps"]), f["knobs"],
                      f"{f['value']:.3f}")
        console().print(k)
