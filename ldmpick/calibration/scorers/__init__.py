"""Reference-free scorers for ``ldmpick calibrate --scorer``: quality measured from a few prompts, without a folder of
reference images or thousands of images per point. One module per scorer, each over a transformers ``CLIPModel``
checkpoint (``clip_checkpoint``: safetensors only, a local folder or a cached hub id):

- ``clip`` (``clip_score``): CLIP score of each image against its prompt;
- ``pickscore`` (``preference``): a PickScore-class preference model (a CLIP-H ``CLIPModel`` fine-tuned on human
  preferences) scoring each image against its prompt;
- ``self-agreement`` (``self_agreement``): how close each image is, in the checkpoint's image embedding, to the same
  model's image at the reference step count (same prompt, same seed): the step response measured directly. In the
  demo world the world judge can be its embedding (``world_judge``: ``--scorer-model world-judge``).

Each scorer measures on its own scale (``ldmpick.quality.scorer_scales``), keyed by checkpoint, prompt set and
resolution. A scorer keeps per image what its value needs (``features``), so that finished configurations resume,
and its module turns them into per-image values (``values(features, reference)``, arithmetic only: a resumed run
needs no checkpoint for what it kept). Adding one is a module with ``PREFIX``, ``NEEDS_REFERENCE``, ``values`` and
``build(checkpoint)``, and one line in ``SCORERS``. No printing here.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from ldmpick.files.errors import UsageError, unknown_name

# --scorer name -> its module in this package
SCORERS: dict[str, str] = {"clip": "clip_score", "pickscore": "preference", "self-agreement": "self_agreement"}


class Scorer(Protocol):
    prefix: str  # its kind of scale (quality.scorer_scales.SCORER_KINDS)
    needs_reference: bool  # its values compare each image with the model's image at the reference step count
    checkpoint: Any  # ClipCheckpoint

    def features(self, images: Any, prompts: list[str]) -> Any:
        """What is kept per image (float64 numpy ``(n, d)``) of uint8 ``images`` made from ``prompts``."""


def scorer_module(name: str) -> Any:
    """The module of scorer ``name`` (a one-line error naming the valid ones otherwise)."""
    if name not in SCORERS:
        raise unknown_name("scorer", name, SCORERS)
    return importlib.import_module(f"{__name__}.{SCORERS[name]}")


def scorer_prefix(name: str) -> str:
    """The scale kind scorer ``name`` measures on, without loading anything."""
    return scorer_module(name).PREFIX


def needs_reference(name: str) -> bool:
    return bool(scorer_module(name).NEEDS_REFERENCE)


def scorer_values(name: str, features: Any, reference: Any | None = None) -> Any:
    """Per-image values (numpy ``(n,)``) of scorer ``name`` from kept ``features`` and, where it needs one, the
    reference configuration's features of the same seeds and prompts."""
    return scorer_module(name).values(features, reference)


def check_pairing(name: str, checkpoint: str) -> None:
    """The demo world judge has no text tower: it embeds images for self-agreement only (one-line error)."""
    from ldmpick.calibration.scorers.world_judge import NAME as WORLD_JUDGE

    if checkpoint == WORLD_JUDGE and not needs_reference(name):
        raise UsageError(f"--scorer-model {WORLD_JUDGE} has no text tower: it goes with --scorer self-agreement "
                         f"(scorer '{name}' compares images with prompts: give it a CLIP checkpoint)")


def checkpoint_identity(checkpoint: str) -> tuple[str, str]:
    """(slug, sha256 of the weights) of a scorer checkpoint: a CLIP folder or cached hub id, or ``world-judge``."""
    from ldmpick.calibration.scorers import clip_checkpoint, world_judge

    return world_judge.identity() if checkpoint == world_judge.NAME else clip_checkpoint.checkpoint_identity(checkpoint)


def load_scorer(name: str, checkpoint: str, device: str = "cpu") -> Scorer:
    """Scorer ``name`` over the CLIP checkpoint ``checkpoint`` (a folder or a cached hub id; ``world-judge``: the
    demo world's judge, for self-agreement), loaded on ``device``."""
    from ldmpick.calibration.scorers import world_judge
    from ldmpick.calibration.scorers.clip_checkpoint import ClipCheckpoint

    module = scorer_module(name)
    check_pairing(name, checkpoint)
    if checkpoint == world_judge.NAME:
        return module.build(world_judge.WorldJudgeEmbeddings.load())
    return module.build(ClipCheckpoint.load(checkpoint, device))
