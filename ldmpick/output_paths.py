"""Checks of the file names a user gives for writing (``--out``), before any work is done. No printing."""

from __future__ import annotations

from pathlib import Path

from ldmpick.errors import UsageError


def check_output_file(out: Path, example: str | None = None) -> Path:
    """``out`` with ``~`` expanded, if it can be written as a file: not a folder, and in a folder that exists.
    ``example`` is a file name suggested when ``out`` is a folder."""
    out = out.expanduser()
    if out.is_dir():
        hint = f" such as '{out / example}'" if example else ""
        raise UsageError(f"--out '{out}' is a folder; give a file name{hint}")
    if not out.parent.is_dir():
        raise UsageError(f"--out: folder '{out.parent}' does not exist")
    return out
