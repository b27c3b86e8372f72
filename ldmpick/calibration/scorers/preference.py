"""PickScore-class preference scores (Kirstain et al. 2023): a CLIP-H ``CLIPModel`` fine-tuned on human choices
between images of one prompt; the score is the checkpoint's logit scale x cosine(image, prompt), as PickScore's own
inference code computes it. Any ``CLIPModel`` checkpoint loads; only one trained on preferences measures them."""

from __future__ import annotations

from typing import Any

from ldmpick.calibration.scorers.clip_score import PromptScore
from ldmpick.calibration.scorers.clip_score import values as values  # the features are the scores, as CLIP score's

PREFIX = "pickscore"
NEEDS_REFERENCE = False


def build(checkpoint: Any) -> PromptScore:
    scale = checkpoint.logit_scale
    return PromptScore(PREFIX, checkpoint, lambda cos: scale * cos)
