"""SDXL-class UNets: SDXL, SSD-1B, Segmind-Vega, SDXL-Turbo, Playground v2/v2.5, LCM-SDXL, DMD2-SDXL.

``StableDiffusionXLPipeline``; denoiser ``UNet2DConditionModel`` with ``added_cond_kwargs={"text_embeds": pooled
OpenCLIP-bigG (B, 1280), "time_ids": (B, 6)}``; ``encoder_hidden_states`` = CLIP-L (768) and OpenCLIP-bigG (1280)
concatenated to 2048 over 77 tokens; CFG doubles the batch; the VAE is upcast to fp32 under fp16
(``force_upcast`` in its config).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldmpick.models.families.sd import UNetFamily

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts


class StableDiffusionXL(UNetFamily):
    name = "sdxl"
    description = "SDXL-class UNet with two CLIP encoders and size/crop conditioning (SDXL, SSD-1B, Vega, Turbo)"
    pipelines = ("StableDiffusionXLPipeline",)
    required_components = ("text_encoder", "text_encoder_2")
    default_guidance = 5.0

    def added_conditions(self, spec: ModelFacts, batch: int, resolution: int, device: str,
                         dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        time_dim = int(cfg.get("addition_time_embed_dim") or 256)
        total = int(cfg.get("projection_class_embeddings_input_dim") or (1280 + 6 * time_dim))
        pooled = total - 6 * time_dim
        time_ids = torch.tensor([resolution, resolution, 0, 0, resolution, resolution], device=device, dtype=dtype)
        return {"added_cond_kwargs": {
            "text_embeds": torch.randn(batch, pooled, device=device, dtype=dtype),
            "time_ids": time_ids.repeat(batch, 1),
        }}

    def pipeline_load_kwargs(self) -> dict[str, Any]:
        return {"feature_extractor": None, "image_encoder": None}


FAMILY = StableDiffusionXL()
