"""Where generated images go: numbered PNG files that never overwrite earlier ones, settings in PNG text chunks,
and one JSON sidecar per run.

Names are ``NNNN-<prompt-slug>-s<seed>.png`` with ``NNNN`` the next number free in the folder. Every file is
written complete to a hidden temporary file first and only then given its name, with a hard link that fails if the
name is taken (then the next number is tried): a name never exists before its content, so ``kill -9`` at any moment
leaves no empty or half-written image, two runs writing to one folder never take the same name, and nothing (no
lock file) is left beside the images. The run's sidecar ``NNNN-run.json`` is written before its first image, which
takes the same number, and is rewritten after every image: no image is ever without its run's record.
"""

from __future__ import annotations

import io
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

from ldmpick.files.errors import RuntimeFailure, UsageError
from ldmpick.files.output_paths import check_output_folder

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
    out = check_output_folder(Path(out))
    if not out.exists():
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


def publish(folder: Path, data: bytes, name_for: Any, first: int | None = None) -> tuple[int, Path]:
    """Write ``data`` under the first free name ``name_for(number)`` from ``first`` (default: the next number in the
    folder) and return the number and the path. The name appears only once the content is complete and on disk."""
    from ldmpick.files.storage import fsync_folder, new_file_mode

    fd, tmp_name = _hidden_temp(folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:  # complete and on disk before any name points at it
            os.fchmod(fh.fileno(), new_file_mode())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        number = next_number(folder) if first is None else first
        for _ in range(10_000):
            path = folder / name_for(number)
            try:
                _link_no_clobber(tmp, path)
            except FileExistsError:
                number += 1
                continue
            except OSError as exc:
                raise RuntimeFailure(f"cannot create '{path}': {exc.strerror}") from None
            fsync_folder(folder)
            return number, path
        raise RuntimeFailure(f"no free file name in '{folder}'")
    finally:
        tmp.unlink(missing_ok=True)


def _link_no_clobber(tmp: Path, path: Path) -> None:
    """Give ``tmp``'s complete content the name ``path``, raising ``FileExistsError`` if the name is taken. A hard
    link does it atomically; on a file system without hard links (FAT, some network shares) the name is claimed
    with an exclusive create and the content renamed over it at once."""
    import errno

    try:
        os.link(tmp, path)
        return
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
            raise
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    os.close(fd)
    os.replace(tmp, path)


def _hidden_temp(folder: Path) -> tuple[int, str]:
    import tempfile

    try:
        return tempfile.mkstemp(prefix=".ldmpick-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write to '{folder}': {exc.strerror}") from None


def png_bytes(image: Any, text: dict[str, str]) -> bytes:
    """Encode a PIL image as PNG with ``text`` as text chunks (iTXt when a value is not Latin-1)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def save_image(folder: Path, image: Any, prompt: str, seed: int, text: dict[str, str],
               first: int | None = None) -> Path:
    """Write one image under a new number (from ``first``, default the next free one); returns its path."""
    slug = slugify(prompt)
    _, path = publish(folder, png_bytes(image, text), lambda n: f"{n:04d}-{slug}-s{seed}.png", first)
    return path


def sidecar_path(first_image: Path) -> Path:
    m = NUMBERED.match(first_image.name)
    assert m, first_image
    return first_image.with_name(f"{m.group(1)}-run.json")


def sidecar_number(sidecar: Path) -> int:
    m = NUMBERED.match(sidecar.name)
    assert m, sidecar
    return int(m.group(1))


def sidecar_document(record: dict[str, Any]) -> dict[str, Any]:
    """A run's record as the versioned document the sidecar holds (and ``generate --json`` prints)."""
    return {"schema": SIDECAR_SCHEMA, **record}


def sidecar_bytes(record: dict[str, Any]) -> bytes:
    return (json.dumps(sidecar_document(record), indent=2, allow_nan=False) + "\n").encode("utf-8")


def create_sidecar(folder: Path, record: dict[str, Any]) -> Path:
    """Write a run's first record under a new number ``NNNN-run.json``, before any of its images exists; its first
    image takes the same number (``save_image(..., first=sidecar_number(path))``)."""
    _, path = publish(folder, sidecar_bytes(record), lambda n: f"{n:04d}-run.json")
    return path


def write_sidecar(path: Path, record: dict[str, Any]) -> None:
    """Rewrite the run's JSON record atomically (after each image)."""
    from ldmpick.files.storage import atomic_write_bytes

    atomic_write_bytes(path, sidecar_bytes(record))


def read_png_text(path: Path) -> dict[str, str]:
    """The text chunks of a PNG file written by ``save_image``."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return {str(k): str(v) for k, v in getattr(im, "text", {}).items()}


def metadata_text(fields: dict[str, Any]) -> dict[str, str]:
    """PNG text values: strings as they are, everything else as JSON (``None`` -> ``'null'``: not known)."""
    return {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in fields.items()}
