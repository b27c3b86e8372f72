"""Fitting the quality law from the quality tables and writing it as a versioned law file, under the file's lock.
No printing."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def fit_and_write(tables: list[Path], out: Path | None, command: str) -> tuple[Any, Path]:
    """Fit on the shipped table, the user's and ``tables``; write to ``out`` (default: the user's law file).
    Returns the law and where it went."""
    from ldmpick.output_paths import check_output_file
    from ldmpick.quality_fit import fit_law
    from ldmpick.quality_law import user_law_path
    from ldmpick.quality_table import load_tables
    from ldmpick.storage import atomic_write_json, file_lock

    law = fit_law(load_tables(list(tables)), command=command)
    target = (out or user_law_path()).expanduser()
    if out is None and not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
    target = check_output_file(target)
    with file_lock(target):
        atomic_write_json(target, law.to_json())
    return law, target


def refit_user_law(command: str) -> tuple[Any, Path]:
    """Read the tables, fit and write the user's law, all under the table's lock: a concurrent calibration's rows
    are either in this fit or in its own later one, never lost."""
    from ldmpick.quality_fit import fit_law
    from ldmpick.quality_law import user_law_path
    from ldmpick.quality_table import load_tables, user_table_path
    from ldmpick.storage import atomic_write_json, file_lock

    target = user_law_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(user_table_path()), file_lock(target):
        law = fit_law(load_tables([]), command=command)
        atomic_write_json(target, law.to_json())
    return law, target
