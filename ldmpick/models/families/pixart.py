"""PixArt-α / PixArt-Σ diffusion transformers.

``PixArtAlphaPipeline`` / ``PixArtSigmaPipeline``; denoiser ``PixArtTransformer2DModel`` called as
``transformer(hidden_states, encoder_hidden_states, timestep, added_cond_kwargs, encoder_attention_mask)``;
``added_cond_kwargs`` = resolution and aspect ratio tensors only for the PixArt-α 1024 model (``sample_size`` 128),
``None`` otherwise; one T5-XXL encoder (120 tokens for α, 300 for Σ); SD's 4-channel VAE; patch 2; CFG doubles the
batch; epsilon prediction with learned sigma (the pipeline keeps the first half of the output channels).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldmpick.models.families.base import Family
from ldmpick.models.families.sd import EPS_SAMPLERS

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts


class PixArt(Family):
    name = "pixart"
    description = "PixArt-α/Σ DiT with a T5-XXL encoder"
    pipelines = ("PixArtSigmaPipeline", "PixArtAlphaPipeline")
    denoiser_component = "transformer"
    # released PixArt folders name the legacy "Transformer2DModel", which diffusers maps to PixArtTransformer2DModel
    denoiser_classes = ("PixArtTransformer2DModel", "Transformer2DModel")
    samplers = EPS_SAMPLERS
    default_guidance = 4.5
    pipeline_multiple = 8  # PixArtAlpha/SigmaPipeline.check_inputs: height % 8

    def denoiser_class(self, spec: ModelFacts) -> str:
        return "PixArtTransformer2DModel"

    def call_kwargs(self, spec: ModelFacts, guidance: float, n: int) -> dict[str, Any]:
        # no aspect-ratio binning: the image is generated at the asked size, as profiled
        return {"guidance_scale": guidance, "use_resolution_binning": False}

    def encoder_seq_len(self, spec: ModelFacts, component: str, class_name: str, config: dict[str, Any]) -> int:
        if spec.max_sequence_length:
            return int(spec.max_sequence_length)
        return 120 if spec.pipeline_class == "PixArtAlphaPipeline" else 300

    def uses_additional_conditions(self, spec: ModelFacts) -> bool:
        cfg = self.denoiser_config(spec)
        flag = cfg.get("use_additional_conditions")
        return bool(flag) if flag is not None else int(cfg.get("sample_size") or 0) == 128

    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        side = self.latent_size(spec, resolution)
        seq = self.text_encoders(spec)[0].seq_len if self.text_encoders(spec) else 300
        added: dict[str, Any] = {"resolution": None, "aspect_ratio": None}
        if self.uses_additional_conditions(spec):
            added = {"resolution": torch.tensor([[resolution, resolution]] * batch, device=device, dtype=dtype),
                     "aspect_ratio": torch.ones(batch, 1, device=device, dtype=dtype)}
        return {
            "hidden_states": torch.randn(batch, int(cfg.get("in_channels", 4)), side, side, device=device, dtype=dtype),
            "encoder_hidden_states": torch.randn(batch, seq, int(cfg.get("caption_channels") or 4096), device=device,
                                                 dtype=dtype),
            "timestep": torch.full((batch,), 500, device=device, dtype=torch.long),
            "added_cond_kwargs": added,
            "encoder_attention_mask": torch.ones(batch, seq, device=device, dtype=dtype),
        }


FAMILY = PixArt()
