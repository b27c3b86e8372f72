"""The quality table: known quality points (published or calibrated), one per CSV row with its citation.

Columns, reading and validating (every bad row is a one-line error), and the text of a table to write. Files are read
through ``ldmpick.files.reader`` (regular files only, a byte cap, strict UTF-8). No fitting here (``quality_fit``).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ldmpick import PACKAGE_DIR
from ldmpick.files.errors import UsageError

TABLE_SCHEMA = "ldmpick.quality/2"
# /2: the metric column may also hold a calibrated scorer's scale key (``quality.scorer_scales``: its own scale per
# scorer checkpoint, prompt set and resolution); /1 tables (fid, clip and prompt_acc only) read as they are
READABLE_TABLE_SCHEMAS = ("ldmpick.quality/1", TABLE_SCHEMA)
# Rows of these series are quality anchors of the model they name (by ldmpick name): measured by
# `ldmpick calibrate` ("calibrated:<profile id>") or declared by the user from a publication ("anchor:<citation>").
ANCHOR_SERIES = ("calibrated", "anchor")


@dataclass
class QualityPoint:
    model: str
    unet_params: int | None
    sampler: str
    steps: int
    guidance: float | None
    resolution: int
    metric: str
    value: float
    num_samples: int | None
    dataset: str
    series: str
    source: str



TABLE_COLUMNS = ["model", "unet_params", "sampler", "steps", "guidance", "resolution", "metric", "value",
                 "num_samples", "dataset", "series", "source"]
MAX_TABLE_BYTES = 20_000_000  # quality tables larger than this are refused
USER_TABLE_COMMENT = "Your measured quality points (ldmpick calibrate)."


def shipped_table_path() -> Path:
    return PACKAGE_DIR / "data" / "quality_points.csv"


def user_table_path() -> Path:
    from ldmpick.files.storage import data_dir

    return data_dir() / "quality_points.csv"


def shipped_table_digest() -> str:
    """sha256 of the shipped quality table: a law records the table it was fitted on."""
    import hashlib

    return hashlib.sha256(shipped_table_path().read_bytes()).hexdigest()


def read_table_file(path: Path) -> list[QualityPoint]:
    """The rows of the quality table at ``path`` (read through ``file_input``: a regular file of at most
    ``MAX_TABLE_BYTES``); every bad row is a one-line error naming the file."""
    from ldmpick.files.reader import read_text_file

    return read_table(read_text_file(path, "quality table", MAX_TABLE_BYTES), f"'{path}'")


def load_tables(extra: list[Path]) -> list[tuple[list[QualityPoint], str]]:
    """The shipped quality table, then ``extra`` tables, then the user's (calibrated) table if it exists. Rows of
    those under a built-in model name whose parameter count is not the installed model's (a calibration of an older
    demo family) are left out: they measured another model. ``stale_rows`` says which."""
    from ldmpick.files.reader import read_text_file

    tables = [(read_table(read_text_file(shipped_table_path(), "shipped quality table", MAX_TABLE_BYTES),
                          "shipped quality table"), "ldmpick/data/quality_points.csv")]
    paths = list(extra)
    if user_table_path().exists() and user_table_path() not in paths:
        paths.append(user_table_path())
    for path in paths:
        points = read_table_file(path)
        if not points and path in extra:
            raise UsageError(f"quality table '{path}' has no data rows (columns: {', '.join(TABLE_COLUMNS)})")
        stale = left_out_rows(points)
        tables.append(([p for p in points if p.model not in stale], str(path)))
    return tables


def stale_rows(extra: list[Path]) -> list[tuple[str, dict[str, int]]]:
    """For ``extra`` tables and the user's: where ``load_tables`` left rows out, and whose (``left_out_rows``)."""
    paths = list(extra) + ([user_table_path()] if user_table_path().exists() and user_table_path() not in extra
                           else [])
    out = []
    for path in paths:
        stale = left_out_rows(read_table_file(path))
        if stale:
            out.append((str(path), stale))
    return out


def left_out_rows(points: list[QualityPoint]) -> dict[str, int]:
    """Models of ``points`` under a built-in name whose rows give another parameter count than the installed
    model's (name -> the rows' count): another model under that name, whose quality says nothing about this one."""
    from ldmpick.models.catalogue import other_model_under_builtin_name

    first = {}
    for p in points:
        if p.unet_params:
            first.setdefault(p.model, p.unet_params)
    return {name: n for name, n in sorted(first.items()) if other_model_under_builtin_name(name, n)}


def forget_user_rows(models: list[str]) -> tuple[Path, dict[str, int]]:
    """Remove every row of ``models`` from the user's quality table (what ``ldmpick calibrate`` added), atomically
    and under the table's lock; the rows of other models stay. Returns the table and the rows removed per model.
    Nothing is written unless every name has rows: a name that is no model, or a model without rows, is a one-line
    error."""
    from ldmpick.models.catalogue import known_names, model_labels
    from ldmpick.files.errors import unknown_name
    from ldmpick.files.storage import atomic_write_text, file_lock

    names = model_labels([m.strip() for m in models if m.strip()]) or []  # a folder: the name its rows are under
    if not names:
        raise UsageError("empty model list; name the models whose calibrated rows to forget, like 'demo-c8,demo-c16'")
    path = user_table_path()
    if not path.exists():
        raise UsageError(f"you have no quality table of your own ('{path}'): no calibrated rows to forget "
                         "('ldmpick calibrate' adds them)")
    with file_lock(path):
        points = read_table_file(path)
        counts = {name: sum(p.model == name for p in points) for name in names}
        present = sorted({p.model for p in points})
        for name, count in counts.items():
            if count:
                continue
            if name not in known_names():
                raise unknown_name("model", name, set(known_names()) | set(present))
            has = f"it has rows of: {', '.join(present)}" if present else "it has no rows"
            raise UsageError(f"no rows of '{name}' to forget in your quality table '{path}' ({has})")
        kept = [p for p in points if p.model not in counts]
        atomic_write_text(path, table_text(kept, USER_TABLE_COMMENT))
    return path, counts


def table_text(points: list[QualityPoint], comment: str) -> str:
    """A quality table's CSV text: the schema line, ``comment`` lines, the header and one row per point."""
    from ldmpick.files.storage import csv_cell  # text a spreadsheet would run as a formula gets a leading quote

    buf = io.StringIO()
    buf.write(f"# schema: {TABLE_SCHEMA}\n")
    for line in comment.splitlines():
        buf.write(f"# {line}\n")
    w = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    w.writeheader()
    for p in points:
        d = {k: getattr(p, k) for k in TABLE_COLUMNS}
        w.writerow({k: "" if v is None else csv_cell(v) for k, v in d.items()})
    return buf.getvalue()


def read_table(text: str, where: str) -> list[QualityPoint]:
    """Parse a quality table (CSV with ``#`` comment lines). Every bad row is a one-line error; so is a table of a
    schema this version does not read (a table without a schema line is read as ``ldmpick.quality/1``)."""
    check_table_schema(text, where)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return []
    try:
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        missing = [c for c in TABLE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(f"{where}: missing columns {', '.join(missing)}")
        points = []
        for i, row in enumerate(reader, start=2):
            if len(points) >= MAX_TABLE_ROWS:  # 150,000 rows made a 24 MB law that every command then refused
                raise UsageError(f"{where}: more than {MAX_TABLE_ROWS:,} data rows; a quality table holds measured "
                                 "configurations (a calibration grid is a few hundred): split or trim it")
            try:
                points.append(_point(row))
            except (TypeError, ValueError, OverflowError) as exc:
                raise UsageError(f"{where}: data row {i}: {exc}") from None
    except csv.Error as exc:  # a field over the csv module's size limit, a NUL byte, a bad quote
        raise UsageError(f"{where}: not a readable CSV table ({exc})") from None
    return points


def check_table_schema(text: str, where: str) -> None:
    """Refuse a quality table whose first line names a schema other than ``READABLE_TABLE_SCHEMAS``."""
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    m = re.match(r"#\s*schema:\s*(\S+)\s*$", first)
    if m and m.group(1) not in READABLE_TABLE_SCHEMAS:
        raise UsageError(f"{where}: quality table schema '{m.group(1)[:80]}' is not one this version of ldmpick reads "
                         f"({', '.join(READABLE_TABLE_SCHEMAS)})")


def metric_bounds(metric: str) -> tuple[float, float] | None:
    """The smallest and largest value that is still a measurement of ``metric`` (a table metric or a scorer scale
    key), or None when the quality table cannot hold it."""
    if metric in TABLE_METRICS:
        return 0.0, TABLE_METRICS[metric]
    from ldmpick.quality.scorer_scales import scorer_value_range

    return scorer_value_range(metric)


def _number(row: dict, key: str, kind: type, minimum: float, optional: bool = False) -> Any:
    text = row.get(key)
    if text is None:
        raise ValueError(f"the row has no '{key}' field (too few columns)")
    if not text.strip():
        if optional:
            return None
        raise ValueError(f"'{key}' is empty")
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"'{key}' must be {what} (got {text!r})") from None
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"'{key}' must be a finite number >= {minimum:g} (got {text!r})")
    return value


# what a quality table's ``metric`` column may hold, and the largest value that is still a measurement of it
TABLE_METRICS = {"fid": 1e5, "clip": 100.0, "prompt_acc": 1.0}
MAX_TABLE_STEPS = 10_000
MAX_TABLE_ROWS = 20_000


def _point(row: dict) -> QualityPoint:
    texts = {}
    for key in ("model", "sampler", "metric", "dataset", "series", "source"):
        if not isinstance(row.get(key), str):
            raise ValueError(f"the row has no '{key}' field (too few columns)")
        texts[key] = row[key]
    if not texts["model"].strip() or not texts["metric"].strip():
        raise ValueError("model and metric must not be empty")
    if None in row:
        raise ValueError("the row has more fields than the header")
    from ldmpick.files.errors import unknown_name
    from ldmpick.models.samplers import SAMPLERS

    metric = texts["metric"]
    bounds = metric_bounds(metric)
    if bounds is None:  # (a scorer scale key is also valid: 'clip-score:CHECKPOINT:PROMPTS:RESpx')
        raise ValueError(str(unknown_name("metric", metric, TABLE_METRICS)))  # the row number is added above
    if texts["sampler"] not in SAMPLERS:  # the law would refuse it later, from a file it had already written
        raise ValueError(str(unknown_name("sampler", texts["sampler"], SAMPLERS)))
    point = QualityPoint(
        unet_params=_number(row, "unet_params", int, 1, optional=True),
        steps=_number(row, "steps", int, 1), guidance=_number(row, "guidance", float, 0, optional=True),
        resolution=_number(row, "resolution", int, 1), value=_number(row, "value", float, bounds[0]),
        num_samples=_number(row, "num_samples", int, 1, optional=True), **texts)
    if point.value > bounds[1]:
        raise ValueError(f"'value' {point.value:g} is not a plausible {metric} (at most {bounds[1]:g})")
    if metric == "fid" and point.value <= 0:  # a Fréchet distance of finite samples is never 0: an interval of 0 width
        raise ValueError(f"'value' {point.value:g} is not a plausible fid (a measured FID is above 0)")
    if point.steps > MAX_TABLE_STEPS:
        raise ValueError(f"'steps' {point.steps} is more than {MAX_TABLE_STEPS}")
    return point


# ---------------------------------------------------------------------------------------------- published results

PUBLISHED_SCHEMA = "ldmpick.published-quality/1"
PUBLISHED_COLUMNS = ["scale", "model", "reference_model", "metric", "dataset", "value", "steps", "steps_stated",
                     "sampler", "guidance", "resolution", "num_samples", "series", "protocol", "source",
                     "reference_row"]


@dataclass
class PublishedPoint:
    """One published quality value of a released model on one scale (``ldmpick.quality.law.SCALES``)."""

    scale: str
    model: str  # the ldmpick catalogue name ("" when the model is not in the catalogue)
    reference_model: str
    value: float
    steps: int
    steps_stated: bool  # False: the source does not say; ``steps`` is the pipeline default
    sampler: str  # ldmpick sampler name, another sampler's name, or "" (not stated)
    guidance: float | None
    resolution: int | None
    num_samples: int | None
    series: str  # rows of one series differ only in their step count
    source: str


def shipped_published_path() -> Path:
    return PACKAGE_DIR / "data" / "published_quality.csv"


def load_published(path: Path | None = None) -> list[PublishedPoint]:
    """The shipped published-quality table (or ``path``)."""
    from ldmpick.files.reader import read_text_file

    path = path or shipped_published_path()
    return read_published_table(read_text_file(path, "published quality table", MAX_TABLE_BYTES), f"'{path}'")


def read_published_table(text: str, where: str) -> list[PublishedPoint]:
    """Parse the published-quality table (``scripts/build_published_quality.py`` writes it)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    points = []
    try:
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        missing = [c for c in PUBLISHED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(f"{where}: missing columns {', '.join(missing)}")
        for i, row in enumerate(reader, start=2):
            try:
                if None in row or any(not isinstance(row.get(c), str) for c in PUBLISHED_COLUMNS):
                    raise ValueError("the row's field count differs from the header's")
                points.append(PublishedPoint(
                    scale=row["scale"], model=row["model"], reference_model=row["reference_model"],
                    value=_number(row, "value", float, -1e9), steps=_number(row, "steps", int, 1),
                    steps_stated=row["steps_stated"] == "yes", sampler=row["sampler"],
                    guidance=_number(row, "guidance", float, 0, optional=True),
                    resolution=_number(row, "resolution", int, 1, optional=True),
                    num_samples=_number(row, "num_samples", int, 1, optional=True),
                    series=row["series"], source=row["source"]))
            except (TypeError, ValueError, OverflowError) as exc:
                raise UsageError(f"{where}: data row {i}: {exc}") from None
    except csv.Error as exc:
        raise UsageError(f"{where}: not a readable CSV table ({exc})") from None
    return points
