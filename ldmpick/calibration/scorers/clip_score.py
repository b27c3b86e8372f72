"""CLIP score (Hessel et al. 2021, as torchmetrics computes it): ``100 x max(cosine(image, prompt), 0)`` in a CLIP
checkpoint's embedding space, per image against the prompt it was made from. ``PromptScore`` is any score of that
cosine (the preference scorer's too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PREFIX = "clip-score"
NEEDS_REFERENCE = False


class PromptEmbeddings:
    """Prompt embeddings of one checkpoint, computed once per prompt (every configuration uses the same prompts)."""

    def __init__(self, checkpoint: Any):
        self.checkpoint = checkpoint
        self._cache: dict[str, Any] = {}

    def __call__(self, prompts: list[str]) -> Any:
        import numpy as np

        new = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if new:
            self._cache.update(zip(new, self.checkpoint.text_embeddings(new)))
        return np.stack([self._cache[p] for p in prompts])


class PromptScore:
    """A score of cosine(image, its prompt) per image; the features are the scores themselves (one column)."""

    needs_reference = False

    def __init__(self, prefix: str, checkpoint: Any, of_cosine: Callable[[Any], Any]):
        self.prefix, self.checkpoint, self.of_cosine = prefix, checkpoint, of_cosine
        self.prompts = PromptEmbeddings(checkpoint)

    def features(self, images: Any, prompts: list[str]) -> Any:
        cos = (self.checkpoint.image_embeddings(images) * self.prompts(prompts)).sum(axis=1)
        return self.of_cosine(cos)[:, None]


def values(features: Any, reference: Any | None = None) -> Any:
    """The per-image scores: the features are the scores (one column)."""
    return features[:, 0]


def build(checkpoint: Any) -> PromptScore:
    import numpy as np

    return PromptScore(PREFIX, checkpoint, lambda cos: 100.0 * np.maximum(cos, 0.0))
