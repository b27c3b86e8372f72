"""How often the quality law's intervals hold on published points left out of its fit.

    python scripts/quality_coverage.py            # print the coverage block
    python scripts/quality_coverage.py --write    # also replace it in docs/quality-law.md

Leave one series out over the shipped step-curve points (refit the curves without it, anchor it at its point with
the most steps, predict the rest) and leave one point out of every published series with three or more step counts
(interpolate it from its neighbours). A point counts as covered when it lies inside the 80% interval whose width
was calibrated *without its own series*. tests/test_quality_law.py checks the docs match this output.
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
