"""Checking the fields of a JSON file people hand ldmpick (a profile, so far): each checker takes the parsed
object, a key and where it is ("models[3].denoiser_step"), and returns the value or raises a one-line
``ProfileError`` naming the field. Torch-free (the ``recommend`` path)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ldmpick.files.errors import ProfileError

MAX_COUNT = 1_000_000  # cores, threads, GPU index: anything larger is not a real machine
MAX_NAME_CHARS = 200  # model, sampler and device names
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # would break the one-line messages names are printed in


def obj(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ProfileError(f"{where} must be a JSON object")
    return data


def nonempty_str(d: dict[str, Any], key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v or len(v) > 1000:
        raise ProfileError(f"{where}.{key} must be a non-empty string")
    return v


def label(d: dict[str, Any], key: str, where: str, limit: int, optional: bool = False) -> str | None:
    """A name or label: a string without control characters (it is printed inside one-line messages)."""
    v = d.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str) or (not v and not optional) or len(v) > limit:
        what = "a string" if optional else "a non-empty string"
        raise ProfileError(f"{where}.{key} must be {what} of at most {limit} characters")
    if CONTROL.search(v):
        raise ProfileError(f"{where}.{key} holds control characters")
    return v


def model_name(d: dict[str, Any], where: str) -> str:
    """A model's name as profiling writes it: a family, demo or registered name, a folder's base name, or a hub id
    (``owner/name``). Never a path: no leading '/' or '~', no backslash, no '.'/'..' parts, at most one '/'."""
    name = label(d, "name", where, MAX_NAME_CHARS)
    assert name is not None
    import unicodedata

    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        # zero-width and bidi characters: 'demo-c8\u200b' shows as demo-c8 and would pass for it in every table
        raise ProfileError(f"{where}.name {name!r} holds invisible or direction-changing characters")
    parts = name.split("/")
    if (len(parts) > 2 or "\\" in name or name.startswith("~") or any(p in ("", ".", "..") for p in parts)
            or name != name.strip()):
        raise ProfileError(f"{where}.name '{clip(name)}' is not a model name (it looks like a path)")
    return name


def opt_str(d: dict[str, Any], key: str, where: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > 10000:
        raise ProfileError(f"{where}.{key} must be a string")
    return v


def integer(d: dict[str, Any], key: str, where: str, minimum: int = 0, maximum: int = 10**15) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not minimum <= v <= maximum:
        raise ProfileError(f"{where}.{key} must be an integer in [{minimum}, {maximum}]")
    return v


def opt_int(d: dict[str, Any], key: str, where: str) -> int | None:
    return None if d.get(key) is None else integer(d, key, where)


def choice(d: dict[str, Any], key: str, choices: tuple[str, ...], where: str) -> str:
    v = d.get(key)
    if v not in choices:
        raise ProfileError(f"{where}.{key} must be one of {', '.join(choices)}")
    return v


def is_finite_number(v: Any) -> bool:
    """A JSON number that is not NaN or infinite. Integers are checked without float(): a 400-digit integer literal
    is valid JSON, and math.isfinite would raise OverflowError on it."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return isinstance(v, int) or math.isfinite(v)


def check_latency(v: Any, where: str) -> float:
    if not is_finite_number(v):
        raise ProfileError(f"{where} must be a finite number")
    if v < 0:
        raise ProfileError(f"{where} is negative ({v})")
    if v > 1e9:
        raise ProfileError(f"{where} is implausibly large ({v})")
    return float(v)


def nonneg(d: dict[str, Any], key: str, where: str) -> float:
    return check_latency(d.get(key), f"{where}.{key}")



def describe(value: Any) -> str:
    """What a wrong value is, for an error message: its JSON type, and the value itself when short."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             int: "an integer", float: "a number"}
    what = names.get(type(value), type(value).__name__)
    if value is None:
        return what
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"{what} of {len(str(abs(value))) if value.bit_length() < 10_000 else 'many'} digits"
    if isinstance(value, (bool, int, float)):
        return f"{what} {clip(json.dumps(value))}"
    if isinstance(value, str):
        return f"{what} '{clip(value)}'"
    return what


def value_range(lo: float | None, hi: float | None) -> str:
    def fmt(x: float | None) -> str:
        return str(int(x)) if x is not None and float(x).is_integer() and abs(x) < 1e9 else f"{x:g}"

    return f"[{fmt(lo)}, {fmt(hi)}]"


def clip(text: str, limit: int = 40) -> str:
    """A short, single-line rendering of an untrusted string for an error message."""
    text = CONTROL.sub("?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."

