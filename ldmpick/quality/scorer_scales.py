"""The scales of reference-free calibration scorers (``ldmpick calibrate --scorer``): one scale per scorer
checkpoint, prompt set and resolution.

A scorer's number means something only against the same scorer weights, the same prompts and the same image size,
so each such combination is a scale of its own, never merged with the paper's ``clip`` or a published scale (a
published CLIP score used another CLIP, other prompts, another resolution). The key is what ``--metric`` takes and
what the quality table's ``metric`` column holds::

    clip-score:<checkpoint>:<prompt set>:<resolution>px
    pickscore:<checkpoint>:<prompt set>:<resolution>px
    self-agreement:<checkpoint>:<prompt set>:<resolution>px:ref<steps>

``<checkpoint>`` names the scorer's weights by content (the folder's name and the first 8 hex digits of their
sha256), so a hub id and a local copy of the same weights are one scale and two fine-tunes in folders of one name
are two. Pure Python: on the ``recommend`` path.

``scales.scale_of_metric`` falls back on ``scorer_scale``, so this module cannot import ``scales`` (that would be an
import circle): ``ScorerScale`` has the fields of ``scales.Scale``, and reads as one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass



@dataclass(frozen=True)
class ScorerScale:
    """A scorer's scale, with the fields of ``scales.Scale`` (key, label, description, lower_is_better, published)."""

    key: str
    label: str
    description: str
    lower_is_better: bool = False  # higher is better on every scorer scale
    published: bool = False  # measured by the user, never published


@dataclass(frozen=True)
class ScorerKind:
    """One kind of scorer scale: what its numbers are and the range a measured value can take."""

    prefix: str  # the key's first part
    label: str
    what: str  # the measurement, for the scale's description
    low: float
    high: float
    reference_steps: bool = False  # the key ends with ':ref<steps>' (agreement with the model's own output)


SCORER_KINDS: dict[str, ScorerKind] = {k.prefix: k for k in [
    ScorerKind("clip-score", "CLIP score", "CLIP score, 100 x max(cosine(image, prompt), 0) (Hessel et al. 2021), "
               "mean over images", 0.0, 100.0),
    ScorerKind("pickscore", "PickScore", "preference score, the scorer's logit scale x cosine(image, prompt) "
               "(PickScore, Kirstain et al. 2023), mean over images", -100.0, 100.0),
    ScorerKind("self-agreement", "self-agreement", "cosine similarity of the scorer's image embeddings of each image "
               "and the same model's image at the reference step count (same prompt, same seed), mean over images: "
               "a measure of the step response only (a model that converges to a poor image agrees with itself)",
               -1.0, 1.0, reference_steps=True),
]}

_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
KEY_PATTERN = re.compile(rf"^(?P<prefix>[a-z-]+):(?P<checkpoint>{_PART}):(?P<prompts>{_PART}):"
                         r"(?P<res>[1-9][0-9]{0,4})px(?::ref(?P<ref>[1-9][0-9]{0,3}))?$")


def scorer_key(prefix: str, checkpoint: str, prompt_set: str, resolution: int,
               reference_steps: int | None = None) -> str:
    """The scale key of one scorer setting (``scorer_scale`` reads it back); a part that cannot be in a key is a
    ValueError (the callers make the parts)."""
    kind = SCORER_KINDS[prefix]
    key = f"{prefix}:{checkpoint}:{prompt_set}:{resolution}px"
    if kind.reference_steps:
        key += f":ref{reference_steps}"
    if scorer_scale(key) is None:
        raise ValueError(f"not a scorer scale key: {key!r}")
    return key


def scorer_kind(key: str) -> ScorerKind | None:
    """The kind of scorer scale ``key`` is, or None when it is no scorer scale key."""
    m = KEY_PATTERN.match(key) if isinstance(key, str) else None
    kind = SCORER_KINDS.get(m.group("prefix")) if m else None
    if kind is None or kind.reference_steps != (m.group("ref") is not None):  # type: ignore[union-attr]
        return None
    return kind


def scorer_scale(key: str) -> ScorerScale | None:
    """The scale of a calibrated scorer's key (``clip-score:clip-vit-large-patch14-0a1b2c3d:parti-48:1024px``), or
    None when ``key`` is no scorer scale key. Higher is better on every scorer scale."""
    kind = scorer_kind(key)
    if kind is None:
        return None
    m = KEY_PATTERN.match(key)
    assert m is not None
    ref = f", against its own output at {m.group('ref')} steps" if kind.reference_steps else ""
    return ScorerScale(key, kind.label, f"{kind.what}; scorer {m.group('checkpoint')}, prompt set "
                                        f"{m.group('prompts')}, {m.group('res')} px{ref}; measured by 'ldmpick "
                                        "calibrate --scorer' (its own scale: never compared with the paper's clip or "
                                        "a published scale)")


def scorer_value_range(key: str) -> tuple[float, float] | None:
    """The values a measurement on scorer scale ``key`` can take, or None when it is no scorer scale key."""
    kind = scorer_kind(key)
    return None if kind is None else (kind.low, kind.high)
