"""``ldmpick law`` and ``ldmpick fit``: show and refit the quality scaling law."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ldmpick.cli.options import JsonOpt, LawOpt, MetricOpt, OutOpt, StepListOpt, command_line, int_list
from ldmpick.cli.render import console, make_table, notice, print_json
from ldmpick.files.errors import UsageError

DEFAULT_GRID = "1,2,4,8,15,25,50,100"


def fit_cmd(
    out: OutOpt = None,
    table: Annotated[Optional[list[Path]], typer.Option("--table", help="Extra quality table(s) (CSV) to fit on.")] = None,
    forget: Annotated[Optional[str], typer.Option(
        "--forget", metavar="MODEL[,MODEL...]",
        help="First remove every row of these models from your quality table (what 'ldmpick calibrate' added), "
             "so that the shipped rows count for them again; then refit.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Refit the quality scaling law from the shipped quality table (and yours) and write a versioned law file
    to --out, by default into your user data folder. With --forget, your calibrated rows of those models are
    removed from your quality table first."""
    from ldmpick.quality.refit import fit_and_write, unanchored_rows
    from ldmpick.quality.table import forget_user_rows, load_tables, stale_rows, user_table_path

    if forget is not None:
        if out is not None:  # the rows go from your table: the law fitted without them must be the one you use
            raise UsageError("--forget refits your own law (in your user data folder); leave out --out")
        load_tables(list(table or []))  # a bad --table is an error before any row is removed
        where, counts = forget_user_rows(forget.split(","))
        notice(f"forgot {sum(counts.values())} rows of your quality table '{where}' ("
               + ", ".join(f"{m}: {n}" for m, n in counts.items()) + ")")
    law, target = fit_and_write(list(table or []), out, command_line())
    for where, stale in stale_rows(list(table or [])):
        how = (f"'ldmpick fit --forget {','.join(sorted(stale))}' removes them" if Path(where) == user_table_path()
               else "edit that table to remove them")
        notice(f"note: left out the rows of {', '.join(sorted(stale))} in '{where}': another model under a built-in "
               f"name (another parameter count; a calibration of an older release?); {how}")
    unused = unanchored_rows(law, list(table or []))
    if unused:
        notice(f"note: not used: the rows of {', '.join(unused)}: too few points to fit a calibrated curve, and "
               "their sampler has no step curve to anchor them on (flow samplers); calibrate more steps of them")
    notice(f"law written to '{target}' (size-term residual RMS {law.smooth_rms:.2f} FID)")
    render_law(law, json_out, int_list(DEFAULT_GRID, "--steps"))


def law_cmd(
    law_file: LawOpt = None,
    steps: StepListOpt = DEFAULT_GRID,
    model: Annotated[Optional[str], typer.Option(
        "--model", help="Predict this model's quality (with --sampler and --steps) instead of showing the law.")] = None,
    sampler: Annotated[Optional[str], typer.Option("--sampler", help="The sampler of the --model query.")] = None,
    metric: MetricOpt = "fid",
    scales: Annotated[bool, typer.Option("--scales", help="List the quality scales --metric takes.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show the fitted quality law: its parameters with uncertainty and a predicted-FID grid per sampler (one column
    per --steps). With --model and --sampler: one prediction per --steps on the --metric scale, with its interval
    and basis (the published rows it rests on; interpolated, held, anchored or fitted), or 'no quality data'."""
    from ldmpick.quality.law import STALE_LAW_NOTICE, load_law, passed_over_user_law, predict_query
    from ldmpick.quality.scales import SCALES, scale_of_metric

    scale_of_metric(metric)  # a typo is an error before anything else is said
    if scales:
        rows = [{"metric": s.key, "label": s.label, "lower_is_better": s.lower_is_better, "published": s.published,
                 "description": s.description} for s in SCALES.values()]
        if json_out:
            print_json(rows)
            return
        t = make_table("Quality scales (--metric)", ("metric", "better", "description"), left=("metric", "description"))
        for r in rows:
            t.add_row(r["metric"], "lower" if r["lower_is_better"] else "higher", r["description"])
        console().print(t)
        return
    grid = int_list(steps, "--steps")
    if min(grid) < 1 or max(grid) > 10_000:
        raise UsageError("--steps needs integers between 1 and 10000")
    law, path = load_law(law_file)
    if law_file is None and passed_over_user_law(path):
        notice(STALE_LAW_NOTICE)
    if model is not None or sampler is not None:
        if model is None or sampler is None:
            raise UsageError("a prediction needs both --model and --sampler (and --steps)")
        doc = predict_query(law, model, sampler, grid, metric)
        notice(f"law: '{path}'")
        render_query(doc, json_out)
        return
    notice(f"law: '{path}'")
    render_law(law, json_out, grid)


def render_query(doc: dict[str, Any], json_out: bool) -> None:
    """One row per step count: value, interval, basis and flags; then the rows the values rest on."""
    from ldmpick.quality.law import NO_DATA
    from ldmpick.planning.selector import no_data_note

    if json_out:
        missing = [p["steps"] for p in doc["predictions"] if p["basis"] == NO_DATA]
        if missing:
            doc["no_data"] = no_data_note(doc["model"], [doc["sampler"]], doc["metric"])
        print_json(doc)
        return
    out = console()
    level = f"{doc['interval_level']:.0%}"
    t = make_table(f"{doc['model']} with {doc['sampler']} on {doc['scale']} "
                   f"({'lower' if doc['lower_is_better'] else 'higher'} is better)",
                   ("steps", "value", f"{level} interval", "basis", "flags"), left=("basis", "flags"))
    rows: list[str] = []
    for p in doc["predictions"]:
        if p["value"] is None:
            t.add_row(str(p["steps"]), "-", "-", p["basis"], "")
            continue
        lo, hi = p["interval"]
        t.add_row(str(p["steps"]), f"{p['value']:.4g}", f"{lo:.4g} - {hi:.4g}", p["basis"], "; ".join(p["flags"]))
        rows += [r for r in p["rows"] if r not in rows]
    out.print(t)
    if rows:
        out.print("rests on: " + "; ".join(rows), soft_wrap=True)
    if any(p["basis"] == NO_DATA for p in doc["predictions"]):
        notice(no_data_note(doc["model"], [doc["sampler"]], doc["metric"]))


def render_law(law: Any, json_out: bool, grid: list[int]) -> None:
    """The law's step-deficit curves, size term, fits against published points, calibrated families and a
    predicted-FID grid (JSON: the law file plus the grid)."""
    if json_out:
        doc = law.to_json()
        doc["grid"] = {s: {m: {str(k): round(law.predict_fid(n, s, k).value, 3) for k in grid}
                           for m, n, _ in law.size_points} for s in law.curves}
        print_json(doc)
        return
    out = console()
    t = make_table("Step-deficit curves: FID(N, s) = size(N) + C·s^-p − deficit_ddim(50)",
                   ("sampler", "C", "p", "deficit at 4 / 20 steps", "basis"), left=("sampler", "basis"))
    for name, c in law.curves.items():
        t.add_row(name, f"{c.C:.1f} ± {_sd(c.cov, 0):.1f}", f"{c.p:.2f} ± {_sd(c.cov, 1):.2f}",
                  f"{c.deficit(4):.1f} / {c.deficit(20):.2f}", c.basis)
    out.print(t)
    out.print(f"size(N): Table 1 interpolated in log N between its sizes, nothing outside 39M-5B; its trend: "
              f"{law.smooth_a:.2f} − {law.smooth_b:.2f}·ln(N/1e8) (b ± {_sd(law.smooth_cov, 1):.2f}, residual RMS "
              f"{law.smooth_rms:.2f} FID; not used to predict)", soft_wrap=True)
    iv = law.intervals
    for kind, what in (("curve", "along step curves (leave one series out)"),
                       ("interpolation", "between published step counts (leave one point out)")):
        cov = iv.coverage.get(kind)
        if cov:
            out.print(f"{iv.level:.0%} intervals {what}: cover {cov['covered']} of {cov['points']} held-out "
                      "published points", soft_wrap=True)
    if law.published:
        scales = sorted({p.scale for p in law.published if p.model})
        out.print(f"published series: {len(law.published)} ({sum(bool(p.model) for p in law.published)} of catalogue "
                  f"models, on {', '.join(scales)}); 'ldmpick law --model M --sampler S --steps N --metric X' "
                  "predicts one", soft_wrap=True)
    if law.responses is not None:
        render_responses(law.responses)
    fit_rows = law.provenance.get("step_curve_fit") or []
    if fit_rows:
        f = make_table("Step curves vs their published points (fitted = series offset + C·s^-p)",
                       ("series", "sampler", "steps", "published FID", "fitted", "miss"), left=("series", "sampler"))
        for r in fit_rows:
            f.add_row(r["series"], r["sampler"], str(r["steps"]), f"{r['fid']:.2f}", f"{r['fitted']:.2f}",
                      f"{(r['fitted'] - r['fid']) / r['fid']:+.0%}")
        out.print(f)
    for fam in law.calibrated:
        c = make_table(f"Calibrated: {fam.metric} on {fam.scale}, {fam.points} points, residual "
                       f"{100 * fam.rms_log:.1f}% — floor_m + k_m·C·s^-p, corrected by measured residuals",
                       ("model", "floor", "k", *(f"{name} C / p" for name in fam.curves)), left=("model",))
        for m in fam.floors:
            c.add_row(m, f"{fam.floors[m]:.3g}", f"{fam.scales[m]:.2f}",
                      *[f"{v.C:.3g} / {v.p:.2f}" for v in fam.curves.values()])
        out.print(c)
    for sampler in law.curves:
        g = make_table(f"Predicted FID — {sampler}", ("model", *(str(k) for k in grid)), left=("model",))
        for m, n, _ in law.size_points:
            g.add_row(m, *[f"{law.predict_fid(n, sampler, k).value:.1f}" for k in grid])
        out.print(g)


def render_responses(resp: Any) -> None:
    """The step responses a published point is moved along (docs/quality-law.md): per kind of model, per model's
    own sweeps, per your calibration; and how their intervals held on held-out sweeps."""
    from ldmpick.quality.step_response import group_text

    t = make_table("Step responses: R(k) = -A·k^-p in scale units (a published point moves by R(k) - R(k_published))",
                   ("response", "A", "p", "steps", "loss at 4 / 20 steps", "rests on"), left=("response", "rests on"))
    rows = [(group_text(g), r) for g, r in resp.groups.items()]
    rows += [(f"{m} ({group_text(g)})", r) for m, rs in resp.own.items() for g, r in rs.items() if r.A > 0]
    rows += [(f"{m} with {s}: calibrated", r) for m, rs in resp.calibrated.items() for s, r in rs.items()]
    for name, r in rows:
        t.add_row(name, f"{r.A:.3g}", f"{r.p:.2f}", f"{r.min_steps}-{r.max_steps}",
                  f"{-r.at(4):.2f} / {-r.at(20):.2f}", ", ".join(r.scales) + f" ({len(r.sweeps)} sweeps)")
    console().print(t)
    for kind, what in (("other-model", "from other models' sweeps"), ("other-scale", "from the model's other scales")):
        cov = resp.coverage.get(kind)
        if cov:
            console().print(f"80% intervals of responses {what}: cover {cov['covered']} of {cov['points']} held-out "
                            f"published points (k = {cov['k']:.3g})", soft_wrap=True)


def _sd(cov: Any, i: int) -> float:
    """The standard deviation of parameter ``i`` from a covariance matrix (0 where rounding made it negative)."""
    return math.sqrt(max(cov[i][i], 0))
