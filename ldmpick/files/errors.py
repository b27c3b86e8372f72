"""One exception family. The core raises these; only the CLI catches them and prints one line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LdmpickError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(LdmpickError):
    """The user asked for something invalid (bad option value, unknown name, bad file). Exit 2."""

    exit_code = 2


class ProfileError(UsageError):
    """A profile file is malformed, of an unknown version, or lacks what was asked for."""


class ModelError(UsageError):
    """A model name or folder cannot be resolved or is unsafe to load."""


class RuntimeFailure(LdmpickError):
    """Something failed while running (device error, I/O failure). Exit 1."""

    exit_code = 1


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UsageError:
    """An error for an unknown ``kind`` called ``name``, suggesting the closest valid name."""
    valid = sorted(valid)
    by_lower = {v.lower(): v for v in valid}  # 'FID' -> 'fid': case is the likeliest slip
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
    hint = f"; did you mean '{by_lower[close[0]]}'?" if close else ""
    return UsageError(f"unknown {kind} '{name}'{hint} (valid: {', '.join(valid)})")


def clipped_message(exc: BaseException, limit: int = 300) -> str:
    """A library's error on one line, cut at a word boundary with an ellipsis (never mid-word)."""
    text = " ".join(str(exc).split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + " ..."
