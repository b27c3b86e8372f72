"""Shared fixtures. Every test gets its own LDMPICK_HOME so the real user folder is never touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def ldmpick_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("ldmpick_home")
    monkeypatch.setenv("LDMPICK_HOME", str(home))
    monkeypatch.delenv("LDMPICK_PROFILE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def tiny_unet_config(c: int = 8, levels: int = 2, cross_attention_dim: int = 16) -> dict:
    """A tiny config of the paper family's shape (only the base channel count c changes)."""
    return dict(
        block_out_channels=[c * m for m in (1, 2, 4, 4)[:levels]],
        down_block_types=(["CrossAttnDownBlock2D"] * (levels - 1)) + ["DownBlock2D"],
        up_block_types=["UpBlock2D"] + (["CrossAttnUpBlock2D"] * (levels - 1)),
        layers_per_block=1,
        attention_head_dim=2,
        cross_attention_dim=cross_attention_dim,
        in_channels=4,
        out_channels=4,
        norm_num_groups=4,
        sample_size=8,
    )


TINY_TEXT_ENCODER = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=77, vocab_size=1000, hidden_act="quick_gelu")
TINY_VAE = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16], layers_per_block=1,
                latent_channels=4, norm_num_groups=4, sample_size=32)


def write_config_folder(root: Path, name: str, c: int = 8) -> Path:
    """A diffusers-style model folder holding configs only (enough for profiling, not for generation)."""
    folder = root / name
    for comp, cfg in (("unet", tiny_unet_config(c, cross_attention_dim=16)), ("text_encoder", TINY_TEXT_ENCODER),
                      ("vae", TINY_VAE)):
        (folder / comp).mkdir(parents=True)
        (folder / comp / "config.json").write_text(json.dumps(cfg))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return folder


@pytest.fixture
def tiny_models(tmp_path: Path) -> tuple[Path, Path]:
    """Two config-only model folders of the same shape: a small one (c=4) and one with much more work (c=48)."""
    return write_config_folder(tmp_path, "tiny-small", c=4), write_config_folder(tmp_path, "tiny-large", c=48)
