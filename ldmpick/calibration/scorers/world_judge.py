"""The demo world's judge as a scorer's image embedding (``--scorer-model world-judge``): its penultimate features,
unit length, in place of a CLIP's. The judge was trained on the demo world, so there it knows what matters in an
image; it has no text tower, so it serves ``self-agreement`` only (prompt following in the demo world is
``ldmpick calibrate``'s prompt accuracy). This is the demo family's check of the cheap scorers (docs/demo.md): a
scorer that knows the world, on the images whose FID was measured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAME = "world-judge"  # what --scorer-model takes


def identity() -> tuple[str, str]:
    """(slug, sha256) of the installed world judge's weights."""
    import hashlib

    from ldmpick.calibration.image_quality import judge_weights_path
    from ldmpick.files.reader import read_capped_bytes

    sha = hashlib.sha256(read_capped_bytes(judge_weights_path(), "world judge weights", 64 * 2**20)).hexdigest()
    return f"{NAME}-{sha[:8]}", sha


@dataclass
class WorldJudgeEmbeddings:
    ref: str
    slug: str
    judge: Any

    @classmethod
    def load(cls) -> WorldJudgeEmbeddings:
        from ldmpick.calibration.image_quality import load_judge

        return cls(NAME, identity()[0], load_judge())

    def image_embeddings(self, images: Any) -> Any:
        """Unit-length judge features, float64 numpy ``(n, feature_dim)``."""
        import numpy as np

        f = np.asarray(self.judge.features(images), dtype=np.float64)
        return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
