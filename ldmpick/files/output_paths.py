"""Checks of the file and folder names a user gives for writing (``--out``), before any work is done. No printing."""

from __future__ import annotations

import os
from pathlib import Path

from ldmpick.files.errors import UsageError
from ldmpick.files.storage import check_output_target


def output_path(text: str | Path) -> Path:
    """An ``--out`` value as typed -> its path. An empty one is refused: ``Path("")`` is the current folder, which
    nobody means by typing nothing (``-o "$UNSET_VARIABLE"``). Usable as a typer ``parser`` (which also passes it
    an option's default, a path already)."""
    if isinstance(text, Path):
        return text
    if not text.strip():
        raise UsageError("--out is empty; name a file or folder ('.' is the current folder)")
    return Path(text)


def check_output_file(out: Path, example: str | None = None) -> Path:
    """``out`` with ``~`` expanded, if it can be written as a file: not a folder, and in a folder that exists.
    ``example`` is a file name suggested when ``out`` is a folder."""
    out = out.expanduser()
    if out.is_dir():
        hint = f" such as '{out / example}'" if example else ""
        raise UsageError(f"--out '{out}' is a folder; give a file name{hint}")
    if not out.parent.is_dir():
        raise missing_folder(out.parent)
    check_output_target(out)  # a link, FIFO or device: refused now, not after the work that would fill it
    if not os.access(out.parent, os.W_OK):
        raise UsageError(f"--out: cannot write in folder '{out.parent}' (read-only, or no permission)")
    return out


def check_output_folder(out: Path) -> Path:
    """``out`` with ``~`` expanded, if it can be the output folder: an existing folder, or a new one whose parent
    exists (ldmpick creates only the last level). Not created here."""
    out = out.expanduser()
    if out.is_symlink() and not out.exists():
        raise UsageError(f"--out '{out}' is a link to something that does not exist")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out '{out}' is a file, not a folder")
    if not out.exists() and not out.parent.is_dir():
        raise missing_folder(out.parent, " (ldmpick creates only the last level)")
    return out


def check_outside_package(out: Path) -> Path:
    """``out``, if it is not inside the installed ldmpick package: training writes never replace the shipped demo
    models or the judge that measured every shipped FID."""
    import ldmpick

    package = Path(ldmpick.__file__).resolve().parent
    where = out.expanduser().resolve()
    if where == package or package in where.parents:
        raise UsageError(f"--out '{out}' is inside the installed ldmpick package ('{package}'); training never "
                         "writes over the shipped demo models or judge: give a folder of your own")
    return out


def missing_folder(folder: Path, note: str = "") -> UsageError:
    """The error for writing into ``folder``, which is not a folder: the file that stands where a folder of its path
    should be, or else the folder that does not exist."""
    for above in (folder, *folder.parents):
        if above.exists():
            if not above.is_dir():
                return UsageError(f"--out: '{above}' is a file, not a folder")
            break
    return UsageError(f"--out: folder '{folder}' does not exist{note}")
