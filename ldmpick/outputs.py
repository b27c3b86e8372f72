"""Where generated images go: numbered PNG files that never overwrite earlier ones, settings in PNG text chunks,
and one JSON sidecar per run.

Names are ``NNNN-<prompt-slug>-s<seed>.png`` with ``NNNN`` the next number free in the folder. A number is claimed
under a lock on the folder (``.ldmpick-names.lock``) by creating the file with ``O_CREAT | O_EXCL``, so two runs
writing to the same folder at once never take the same number or name; the content is then written atomically over
the claimed empty file. The run's sidecar is ``NNNN-run.json``, numbered
like its first image.
"""

from __future__ import annotations

import io
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

from ldmpick.errors import RuntimeFailure, UsageError

SIDECAR_SCHEMA = "ldmpick.generation/1"
NUMBERED = re.compile(r"^(\d{4,})-")
MAX_SLUG = 40


def slugify(text: str, max_len: int = MAX_SLUG) -> str:
    """``'A cat, on the moon!'`` -> ``'a-cat-on-the-moon'``; ASCII only; ``'image'`` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    slug = slug[:max_len].rstrip("-")
    return slug or "image"


def prepare_out_dir(out: Path) -> Path:
    """The output folder, created when its parent exists; a clear error when it cannot be written."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out '{out}' is a file, not a folder")
    if not out.exists():
        if not out.parent.is_dir():
            raise UsageError(f"--out: folder '{out.parent}' does not exist (ldmpick creates only the last level)")
        try:
            out.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            raise UsageError(f"--out: cannot create '{out}' ({exc.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--out: folder '{out}' is not writable")
    return out


def next_number(folder: Path) -> int:
    """One more than the highest ``NNNN-`` prefix in ``folder`` (1 in an empty folder)."""
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := NUMBERED.match(p.name))]
    return max(numbers, default=0) + 1


def claim(folder: Path, name_for: Any) -> tuple[int, Path]:
    """Create an empty file named ``name_for(number)`` at the first free number; return both."""
    from ldmpick.storage import file_lock

    with file_lock(folder / ".ldmpick-names"):
        number = next_number(folder)
        for _ in range(10_000):
            path = folder / name_for(number)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:  # a writer that does not take the lock
                number += 1
                continue
            except OSError as exc:
                raise RuntimeFailure(f"cannot create '{path}': {exc.strerror}") from None
            os.close(fd)
            return number, path
    raise RuntimeFailure(f"no free file name in '{folder}'")


def png_bytes(image: Any, text: dict[str, str]) -> bytes:
    """Encode a PIL image as PNG with ``text`` as text chunks (iTXt when a value is not Latin-1)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def save_image(folder: Path, image: Any, prompt: str, seed: int, text: dict[str, str]) -> Path:
    """Write one image under a new number; returns its path."""
    from ldmpick.storage import atomic_write_bytes

    slug = slugify(prompt)
    _, path = claim(folder, lambda n: f"{n:04d}-{slug}-s{seed}.png")
    try:
        atomic_write_bytes(path, png_bytes(image, text))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def sidecar_path(first_image: Path) -> Path:
    m = NUMBERED.match(first_image.name)
    assert m, first_image
    return first_image.with_name(f"{m.group(1)}-run.json")


def write_sidecar(path: Path, record: dict[str, Any]) -> None:
    """Write (or rewrite, after each prompt) the run's JSON record atomically."""
    from ldmpick.storage import atomic_write_json

    atomic_write_json(path, {"schema": SIDECAR_SCHEMA, **record})


def read_png_text(path: Path) -> dict[str, str]:
    """The text chunks of a PNG file written by ``save_image``."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return {str(k): str(v) for k, v in getattr(im, "text", {}).items()}


def metadata_text(fields: dict[str, Any]) -> dict[str, str]:
    """PNG text values: strings as they are, everything else as JSON (``None`` -> ``'null'``: not known)."""
    return {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in fields.items()}
