"""Fitting the quality law from the quality tables and writing it as a versioned law file, under the file's lock.
No printing."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def fit_and_write(tables: list[Path], out: Path | None, command: str) -> tuple[Any, Path]:
    """Fit on the shipped table, the user's and ``tables``; write to ``out`` (default: the user's law file).
    Returns the law and where it went."""
    from ldmpick.files.output_paths import check_output_file
    from ldmpick.quality.fit import fit_law
    from ldmpick.quality.law import user_law_path
    from ldmpick.quality.table import load_tables
    from ldmpick.files.storage import atomic_write_json, file_lock

    target = (out or user_law_path()).expanduser()
    if out is None and not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
    target = check_output_file(target)
    if out is not None:
        check_replaces_a_law(target)
    law = fit_law(load_tables(list(tables)), command=command)
    with file_lock(target):
        atomic_write_json(target, law.to_json())
    return law, target


def unanchored_rows(law: Any, tables: list[Path]) -> list[str]:
    """'model sampler' of the calibrated or anchor FID rows (of the shipped, ``tables`` and your table) that the
    fitted ``law`` uses nowhere: too few to fit a calibrated family, with a sampler no step curve can anchor."""
    from ldmpick.quality.table import ANCHOR_SERIES, load_tables

    fitted = {(m, s) for f in law.calibrated for m in f.floors for s in f.curves}
    out: list[str] = []
    for points, _ in load_tables(tables):
        for p in points:
            label = f"{p.model} {p.sampler}"
            if (p.series.startswith(ANCHOR_SERIES) and p.metric == "fid" and p.sampler not in law.curves
                    and (p.model, p.sampler) not in fitted and label not in out):
                out.append(label)
    return out


def check_replaces_a_law(target: Path) -> None:
    """``fit --out`` replaces an earlier law file, never anything else (a prompts file given by mistake was
    overwritten with the law's JSON)."""
    import json

    from ldmpick.files.errors import UsageError
    from ldmpick.quality.law import SCHEMA

    if not target.exists():
        return
    try:
        with target.open("rb") as fh:
            doc = json.loads(fh.read(64 * 2**20))
    except (OSError, ValueError):
        doc = None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise UsageError(f"--out '{target}' exists and is not a law file ({SCHEMA}); fit replaces only an earlier "
                         "law: give a new file name")


def refit_user_law(command: str) -> tuple[Any, Path]:
    """Read the tables, fit and write the user's law, all under the table's lock: a concurrent calibration's rows
    are either in this fit or in its own later one, never lost."""
    from ldmpick.quality.fit import fit_law
    from ldmpick.quality.law import user_law_path
    from ldmpick.quality.table import load_tables, user_table_path
    from ldmpick.files.storage import atomic_write_json, file_lock

    target = user_law_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(user_table_path()), file_lock(target):
        law = fit_law(load_tables([]), command=command)
        atomic_write_json(target, law.to_json())
    return law, target
