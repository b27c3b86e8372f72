"""Self-agreement: how close each image is to the same model's image at the reference step count (the same prompt
and seed), as the cosine similarity of a CLIP checkpoint's image embeddings. It measures the step response
directly (1 at the reference itself) and says nothing of quality across models: a model that converges to a poor
image agrees with itself perfectly."""

from __future__ import annotations

from typing import Any

PREFIX = "self-agreement"
NEEDS_REFERENCE = True


class SelfAgreement:
    prefix = PREFIX
    needs_reference = NEEDS_REFERENCE

    def __init__(self, checkpoint: Any):
        self.checkpoint = checkpoint

    def features(self, images: Any, prompts: list[str]) -> Any:
        return self.checkpoint.image_embeddings(images)


def values(features: Any, reference: Any | None) -> Any:
    """cosine(image i, reference image i): both rows are unit-length embeddings of images of one seed and prompt."""
    if reference is None or reference.shape != features.shape:
        raise ValueError("self-agreement needs the reference configuration's embeddings of the same images")
    import numpy as np

    return np.clip((features * reference).sum(axis=1), -1.0, 1.0)  # (float rounding at the reference)


def build(checkpoint: Any) -> SelfAgreement:
    return SelfAgreement(checkpoint)
