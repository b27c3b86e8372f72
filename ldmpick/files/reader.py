"""Reading the files people hand ldmpick: regular files only, a hard byte cap, strict UTF-8, strict JSON.

Every file the tool reads from outside its own code (profiles, laws, quality tables, the model registry, partial
files, prompt files) goes through here, so every one of them refuses the same things with the same one-line errors:
a FIFO or device (``/dev/zero`` would grow without bound, a FIFO would hang), a file over its cap, text that is not
UTF-8, JSON with NaN/Infinity, nesting bombs, and unpaired surrogates (which would later break every print).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from ldmpick.files.errors import UsageError

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 10 * MIB
DEFAULT_MAX_DEPTH = 32
BOM = "\ufeff"


def read_capped_bytes(path: Path, what: str, max_bytes: int = DEFAULT_MAX_BYTES,
                      error: type[UsageError] = UsageError) -> bytes:
    """The bytes of the regular file ``path``, refusing anything else and anything over ``max_bytes``.

    ``what`` names the file in errors ("profile", "quality law"). Opened non-blocking so that a FIFO swapped in after
    the check cannot hang the read; the open descriptor is checked again.
    """
    path = Path(path)
    where = f"{what} '{path}'"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{where} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {where}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{where} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{where} is not a regular file (a device, FIFO or socket); refusing it")
    if st.st_size > max_bytes:
        raise error(f"{where} is larger than {_size(max_bytes)}; refusing it")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise error(f"cannot read {where}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{where} is not a regular file (a device, FIFO or socket); refusing it")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 * MIB, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise error(f"{where} is larger than {_size(max_bytes)}; refusing it")
    except OSError as exc:
        raise error(f"cannot read {where}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def decode_text(raw: bytes, where: str, error: type[UsageError] = UsageError) -> str:
    """Strict UTF-8 text; a leading byte-order mark is dropped (editors on Windows add one)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{where} is not UTF-8 text (bad byte at offset {exc.start})") from None
    return text[1:] if text.startswith(BOM) else text


def read_text_file(path: Path, what: str, max_bytes: int = DEFAULT_MAX_BYTES,
                   error: type[UsageError] = UsageError) -> str:
    """The text of a regular UTF-8 file under ``max_bytes``."""
    return decode_text(read_capped_bytes(path, what, max_bytes, error), f"{what} '{path}'", error)


def parse_json(text: str, where: str, max_depth: int = DEFAULT_MAX_DEPTH,
               error: type[UsageError] = UsageError, infinity: bool = False) -> Any:
    """Strict JSON: no NaN/Infinity, nesting at most ``max_depth``, no unpaired surrogates in any string.
    ``infinity``: ±Infinity are numbers (diffusers writes ``"lambda_min_clipped": -Infinity`` in scheduler
    configs); NaN never is."""
    if text.startswith(BOM):
        text = text[1:]
    if not text.strip():
        raise error(f"{where} is empty")
    if nesting_depth(text, max_depth) > max_depth:
        raise error(f"{where} is nested more than {max_depth} levels deep; refusing it")
    try:
        data = json.loads(text, parse_constant=_infinity_only if infinity else _reject_constant,
                          object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        # the text ends where the parser still wanted more (or inside a string it was reading)
        cut_short = not text[exc.pos:].strip() or exc.msg.startswith("Unterminated string")
        raise error(f"{where} is not valid JSON (line {exc.lineno}: {exc.msg})"
                    + ("; truncated download?" if cut_short else "")) from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's guard on huge integer literals
            raise error(f"{where} holds a number with thousands of digits; not a measurement") from None
        raise error(f"{where}: {exc}") from None
    except RecursionError:
        raise error(f"{where} is nested too deeply; refusing it") from None
    bad = first_unpaired_surrogate(data)
    if bad is not None:
        raise error(f"{where} holds an unpaired UTF-16 surrogate (U+{ord(bad):04X}); not valid text")
    return data


def read_json_file(path: Path, what: str, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH,
                   error: type[UsageError] = UsageError, infinity: bool = False) -> Any:
    """Read and strictly parse the JSON file ``path`` (see ``read_capped_bytes`` and ``parse_json``)."""
    text = read_text_file(path, what, max_bytes, error)
    return parse_json(text, f"{what} '{path}'", max_depth, error, infinity)


def nesting_depth(text: str, stop_above: int | None = None) -> int:
    """Maximum bracket nesting, ignoring brackets inside strings. Linear time; stops once past ``stop_above``."""
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > best:
                best = depth
                if stop_above is not None and best > stop_above:
                    return best
        elif ch in "]}":
            depth -= 1
    return best


def first_unpaired_surrogate(data: Any) -> str | None:
    """The first lone surrogate character in any string (key or value) of parsed JSON, or None."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            for ch in item:
                if "\ud800" <= ch <= "\udfff":
                    return ch
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (which one would win is not something a file should leave open)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key '{key[:60]}' appears twice in one object")
        out[key] = value
    return out


def _infinity_only(name: str) -> Any:
    if name in ("Infinity", "-Infinity"):
        return float(name.replace("Infinity", "inf"))
    return _reject_constant(name)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _size(n: int) -> str:
    return f"{n // MIB} MB" if n >= MIB and n % MIB == 0 else f"{n} bytes"
