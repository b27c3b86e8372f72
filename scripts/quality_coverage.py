"""How often the quality law's intervals hold on published points left out of its fit.

    python scripts/quality_coverage.py            # print the coverage block
    python scripts/quality_coverage.py --write    # also replace it in docs/quality-law.md

Leave one series out over the shipped step-curve points (refit the curves without it, anchor it at its point with
the most steps, predict the rest) and leave one point out of every published series with three or more step counts
(interpolate it from its neighbours). A point counts as covered when it lies inside the 80% interval whose width
was calibrated *without its own series*. Then the step responses (``quality.response_fit``): every sweep predicted
from its point with the most steps along the response of the other models of its kind (leave one model out) and
along its own model's sweeps on other scales (leave one scale out), covered when inside the interval whose width
was chosen without its own model. tests/test_quality_law.py and tests/test_step_response.py check the docs match
this output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "quality-law.md"
START, END = "<!-- coverage:start (scripts/quality_coverage.py --write) -->", "<!-- coverage:end -->"


def coverage_block() -> str:
    from ldmpick.quality.fit import interval_calibration, step_curve_points
    from ldmpick.quality.scales import series_from_points
    from ldmpick.quality.table import load_published, read_table, shipped_table_path

    points = read_table(shipped_table_path().read_text(encoding="utf-8"), "shipped quality table")
    fit = interval_calibration(step_curve_points(points), series_from_points(load_published()))
    level = f"{fit.level:.0%}"
    curve, interp = fit.coverage["curve"], fit.coverage["interpolation"]
    lines = [
        f"- Along fitted step curves (leave one series out, {curve['series']} series): the {level} interval covers "
        f"**{curve['covered']} of {curve['points']}** held-out points (k = {fit.k_curve:.3g}).",
        f"- Between published step counts (leave one point out, {interp['series']} series): the {level} interval "
        f"covers **{interp['covered']} of {interp['points']}** held-out points (k = {fit.k_interp:.3g}).",
        "",
        "| held out | sampler | steps | published | predicted | inside |",
        "|---|---|---|---|---|---|",
    ]
    for r in curve["rows"]:
        lines.append(f"| {r['series']} | {r['sampler']} | {r['steps']} | {r['published']:g} | {r['predicted']:.2f} | "
                     f"{'yes' if r['covered'] else 'no'} |")
    return "\n".join(lines + ["", response_block(points)])


def response_block(points) -> str:
    """The held-out check of the step responses, per kind of transfer and per kind of model."""
    from ldmpick.quality.response_fit import fit_step_responses
    from ldmpick.quality.scales import series_from_points
    from ldmpick.quality.step_response import OTHER_MODEL, OTHER_SCALE, group_text
    from ldmpick.quality.table import load_published

    rows: list = []
    resp = fit_step_responses(points, series_from_points(load_published()), [], rows)
    what = {OTHER_MODEL: "from other models of its kind (leave one model out)",
            OTHER_SCALE: "from its own model's sweeps on other scales (leave one scale out)"}
    lines = ["Step responses (transferred predictions):", ""]
    for kind in (OTHER_MODEL, OTHER_SCALE):
        c = resp.coverage[kind]
        lines.append(f"- {what[kind]}, {c['series']} sweeps of {c['models']} models: the 80% interval covers "
                     f"**{c['covered']} of {c['points']}** held-out points (k = {c['k']:.3g}).")
    lines += ["", "| kind of model | transfer | held-out points | inside |", "|---|---|---|---|"]
    for group in sorted({r["group"] for r in rows}):
        for kind in (OTHER_MODEL, OTHER_SCALE):
            mine = [r for r in rows if r["group"] == group and r["kind"] == kind]
            if mine:
                lines.append(f"| {group_text(group)} | {kind} | {len(mine)} | {sum(r['covered'] for r in mine)} |")
    lines += ["", "The flow-matching sweeps held out (FLUX.1-dev's two DrawBench scales, SD3-Medium's two RAS "
              "scales):", "", "| held out | transfer | steps | published | predicted | inside |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        if r["group"].startswith("flow"):
            lines.append(f"| {r['series'].replace('|', '/')} | {r['kind']} | {r['steps']} (from {r['anchor_steps']}) | "
                         f"{r['published']:g} | {r['predicted']:.4g} | {'yes' if r['covered'] else 'no'} |")
    return "\n".join(lines + ["", example_block()])


EXAMPLES = [("flux-dev", "flow-euler", "geneval", [1, 2, 4, 8, 20, 28, 50]),
            ("sana-1.6b", "flow-dpmpp-2m", "mjhq-fid", [2, 4, 8, 14, 20]),
            ("sd3.5-large-turbo", "flow-euler", "geneval", [1, 2, 3, 4, 8])]


def example_block() -> str:
    """What the shipped law says for a few real models (``ldmpick law --model M --sampler S --metric X``)."""
    from ldmpick.quality.law import load_law, predict_query, shipped_law_path

    law = load_law(shipped_law_path())[0]
    lines = ["What the shipped law gives (`ldmpick law --model M --sampler S --metric X --steps ...`):", "",
             "| model, sampler, scale | steps | value | 80% interval | basis |", "|---|---|---|---|---|"]
    for model, sampler, metric, steps in EXAMPLES:
        for p in predict_query(law, model, sampler, steps, metric)["predictions"]:
            if p["value"] is None:
                value, interval, basis = "-", "-", p["basis"]
            else:
                value, interval = f"{p['value']:.3g}", f"{p['interval'][0]:.3g} - {p['interval'][1]:.3g}"
                basis = p["basis"] + (f": {p['basis_detail']}" if p.get("basis_detail") else "")
            lines.append(f"| {model}, {sampler}, {metric} | {p['steps']} | {value} | {interval} | {basis} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="replace the block in docs/quality-law.md")
    args = ap.parse_args()
    block = coverage_block()
    print(block)
    if args.write:
        text = DOC.read_text(encoding="utf-8")
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        DOC.write_text(f"{head}{START}\n{block}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
