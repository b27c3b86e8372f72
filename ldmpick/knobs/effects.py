"""Published quality effects of knobs (``ldmpick/data/knob_effects.csv``, built by ``scripts/build_knob_effects.py``)
and the lookup that says what a knob does to quality, on which evidence.

An effect is a change against its own source's baseline (same table and protocol), on one scale (metric x data set
x protocol; values of different scales never meet), at the step count and on the model the source measured. The
sources state no spread, so the interval around a change is ldmpick's stated rule, not a measurement: half-width
``max(FLOOR x |baseline|, SPREAD x |delta|)``, doubled when the published method maps only approximately to the
diffusers config, and widened again (``TRANSFER_STEPS``, ``TRANSFER_MODEL``) when the effect is used at another
step count or on another model -- then it is labelled ``transferred``. Where no row maps to the knob, the answer is
``unmeasured``, with the command that would measure it; never a guess.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from ldmpick.files.errors import UsageError
from ldmpick.knobs import KnobSetting

SCHEMA = "ldmpick.knob-effects/1"
COLUMNS = ("scale", "model", "reference_model", "method", "knob", "mapping", "diffusers_config", "mapping_note",
           "metric", "dataset", "steps", "guidance", "baseline", "value", "delta", "higher_is_better",
           "speedup_stated", "protocol", "source", "table", "reference_row")
PROVENANCE_KEYS = ("schema", "source", "source_sha256", "command", "date", "device", "versions")
MAPPINGS = ("exact", "approximate", "none")
MAX_TABLE_BYTES = 2_000_000

FLOOR = 0.01  # the least half-width, as a fraction of the baseline value
SPREAD = 0.5  # half-width as a fraction of the change itself, for an exact mapping
APPROXIMATE = 2.0  # widening when the published method maps only approximately to the diffusers config
TRANSFER_STEPS = 2.0  # widening for an effect used at another step count than measured
TRANSFER_MODEL = 3.0  # widening for an effect used on another model than measured

PUBLISHED = "published"
TRANSFERRED = "transferred"
UNMEASURED = "unmeasured"


@dataclass(frozen=True)
class KnobEffect:
    """One published effect (a row of the table)."""

    scale: str
    model: str  # ldmpick catalogue model, or "" when the reference model is not in the catalogue
    reference_model: str
    method: str  # the published method as its source writes it
    knob: str  # the ldmpick knob it maps to (text form), or ""
    mapping: str  # exact / approximate / none
    diffusers_config: str
    mapping_note: str
    metric: str
    dataset: str
    steps: int
    baseline: float
    value: float
    delta: float
    higher_is_better: bool
    speedup_stated: str
    protocol: str
    source: str
    table: str
    reference_row: int


@dataclass(frozen=True)
class EffectsTable:
    rows: tuple[KnobEffect, ...]
    provenance: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EffectEstimate:
    """What a knob does to quality on one scale for one model and step count, and on what evidence."""

    knob: str
    scale: str
    basis: str  # published / transferred / unmeasured
    delta: float | None = None  # change against the baseline configuration (same model, steps, no knob)
    low: float | None = None
    high: float | None = None
    rows: tuple[KnobEffect, ...] = ()
    note: str = ""
    command: str | None = None  # for unmeasured: what measures it


def shipped_effects_path() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "knob_effects.csv"


def load_effects(path: Path | None = None) -> EffectsTable:
    """The shipped effects table (or ``path``), checked (one-line errors)."""
    from ldmpick.files.reader import read_text_file

    path = path or shipped_effects_path()
    return read_effects(read_text_file(path, "knob effects table", MAX_TABLE_BYTES), f"'{path}'")


def read_effects(text: str, where: str) -> EffectsTable:
    provenance: dict[str, str] = {}
    body = []
    for line in text.splitlines():
        if line.startswith("#"):
            key, sep, value = line[1:].strip().partition(":")
            if sep and key.strip() in PROVENANCE_KEYS:
                provenance[key.strip()] = value.strip()
        elif line.strip():
            body.append(line)
    if provenance.get("schema") != SCHEMA:
        got = provenance.get("schema") or "none"
        raise UsageError(f"{where}: schema '{got[:60]}' is not {SCHEMA}")
    missing = [k for k in PROVENANCE_KEYS if not provenance.get(k)]
    if missing:
        raise UsageError(f"{where}: provenance lacks {', '.join(missing)}")
    try:
        reader = csv.DictReader(io.StringIO("\n".join(body)))
        absent = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if absent:
            raise UsageError(f"{where}: missing columns {', '.join(absent)}")
        rows = []
        for i, r in enumerate(reader, start=2):
            try:
                if None in r or any(not isinstance(r.get(c), str) for c in COLUMNS):
                    raise ValueError("the row's field count differs from the header's")
                if r["mapping"] not in MAPPINGS:
                    raise ValueError(f"mapping '{r['mapping'][:20]}' is not one of {', '.join(MAPPINGS)}")
                if bool(r["knob"]) == (r["mapping"] == "none"):
                    raise ValueError("a knob is named exactly when the mapping is not 'none'")
                if not (r["source"] and r["table"] and r["protocol"] and r["scale"]):
                    raise ValueError("a row needs its scale, protocol, source and table")
                rows.append(KnobEffect(
                    scale=r["scale"], model=r["model"], reference_model=r["reference_model"], method=r["method"],
                    knob=r["knob"], mapping=r["mapping"], diffusers_config=r["diffusers_config"],
                    mapping_note=r["mapping_note"], metric=r["metric"], dataset=r["dataset"], steps=int(r["steps"]),
                    baseline=_finite(r["baseline"]), value=_finite(r["value"]), delta=_finite(r["delta"]),
                    higher_is_better=r["higher_is_better"] == "yes", speedup_stated=r["speedup_stated"],
                    protocol=r["protocol"], source=r["source"], table=r["table"],
                    reference_row=int(r["reference_row"])))
            except (TypeError, ValueError, OverflowError) as exc:
                raise UsageError(f"{where}: data row {i}: {exc}") from None
    except csv.Error as exc:
        raise UsageError(f"{where}: not a readable CSV table ({exc})") from None
    return EffectsTable(tuple(rows), provenance)


def scales_of(setting: KnobSetting, table: EffectsTable | None = None) -> list[str]:
    """The scales on which some published row maps to ``setting``."""
    table = table or load_effects()
    return sorted({r.scale for r in table.rows if r.knob == setting.text})


def effect(setting: KnobSetting, model: str, scale: str, steps: int, table: EffectsTable | None = None,
           ) -> EffectEstimate:
    """What ``setting`` does on ``scale`` for ``model`` at ``steps``: ``published`` (a row of this model at these
    steps), ``transferred`` (another step count or another model, interval widened) or ``unmeasured``."""
    table = table or load_effects()
    rows = [r for r in table.rows if r.knob == setting.text and r.scale == scale]
    # no ldmpick command measures a knob's quality effect yet ('calibrate --knobs' is not built): say so, never a
    # command that does not exist
    command = (f"no ldmpick command measures it yet: compare 'ldmpick generate ... --model {model} --knobs "
               f"\"{setting.text}\"' with the plain run at the same --seed ('calibrate --knobs' is not built)")
    if not rows:
        near = sorted({r.knob for r in table.rows if r.scale == scale and r.knob.startswith(f"{setting.kind}="
                                                                                       f"{setting.name}(")})
        also = f" (published on it: {'; '.join(near)})" if near else ""
        return EffectEstimate(setting.text, scale, UNMEASURED, note=f"no published row maps to {setting.text} on "
                              f"{scale}{also}", command=command)
    same_model = [r for r in rows if r.model and r.model == model]
    exact = [r for r in same_model if r.steps == steps]
    if exact:
        return _estimate(setting, scale, PUBLISHED, exact, 1.0, f"published for {model} at {steps} steps")
    if same_model:
        nearest = min(same_model, key=lambda r: abs(r.steps - steps))
        return _estimate(setting, scale, TRANSFERRED, [nearest], TRANSFER_STEPS,
                         f"transferred from {nearest.steps} steps (measured) to {steps}")
    nearest = min(rows, key=lambda r: abs(r.steps - steps))
    widen = TRANSFER_MODEL * (TRANSFER_STEPS if nearest.steps != steps else 1.0)
    return _estimate(setting, scale, TRANSFERRED, [nearest], widen,
                     f"transferred from {nearest.reference_model} at {nearest.steps} steps to {model} at {steps}")


def _estimate(setting: KnobSetting, scale: str, basis: str, rows: list[KnobEffect], widen: float, note: str,
              ) -> EffectEstimate:
    delta = sum(r.delta for r in rows) / len(rows)
    baseline = sum(r.baseline for r in rows) / len(rows)
    half = max(FLOOR * abs(baseline), SPREAD * abs(delta)) * widen
    if any(r.mapping == "approximate" for r in rows):
        half *= APPROXIMATE
        note += "; the published method maps to this config approximately"
    return EffectEstimate(setting.text, scale, basis, delta, delta - half, delta + half, tuple(rows), note)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"'{text[:20]}' is not a finite number")
    return value
