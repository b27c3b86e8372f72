"""FLUX.1 (dev, schnell) MM-DiT.

``FluxPipeline``; denoiser ``FluxTransformer2DModel`` called as ``transformer(hidden_states=packed latents
(B, (H/16)(W/16), 64), encoder_hidden_states=T5 (B, L, 4096), pooled_projections=CLIP-L pooled (B, 768),
timestep=t/1000, img_ids=(tokens, 3), txt_ids=(L, 3), guidance=(B,) for dev / None for schnell)``. Guidance is
distilled: one evaluation per step (no CFG batch doubling). 16-channel VAE, factor 8, then 2x2 packing (image sides
are multiples of 16); decode = unpack, ``latents / scaling + shift``. Flow matching with a resolution-dependent
shift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldmpick.models.families.base import Family, PackedLatents, packed_image_ids

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts


class Flux(PackedLatents, Family):
    name = "flux"
    description = "FLUX.1 MM-DiT with CLIP-L (pooled) and T5-XXL; guidance-distilled"
    pipelines = ("FluxPipeline",)
    required_components = ("text_encoder", "text_encoder_2")
    denoiser_component = "transformer"
    denoiser_classes = ("FluxTransformer2DModel",)
    flow_matching = True
    samplers = ("flow-euler",)  # the pipeline passes custom sigmas, which only FlowMatchEuler accepts
    default_guidance = 3.5

    def guidance_distilled(self, spec: ModelFacts) -> bool:
        return True

    def patch_size(self, spec: ModelFacts) -> int:
        return 2  # 2x2 latent packing

    def native_resolution(self, spec: ModelFacts) -> int:
        return 128 * self.vae_scale_factor(spec)  # the pipeline's default_sample_size

    def latent_channels(self, spec: ModelFacts) -> int:
        return int(self.vae_config(spec).get("latent_channels") or self.denoiser_config(spec).get("in_channels", 64) // 4)

    def t5_tokens(self, spec: ModelFacts) -> int:
        t5 = [e.seq_len for e in self.text_encoders(spec) if not e.class_name.startswith("CLIP")]
        return max(t5, default=int(spec.max_sequence_length or 512))

    def encoder_seq_len(self, spec: ModelFacts, component: str, class_name: str, config: dict[str, Any]) -> int:
        if class_name.startswith("CLIP"):
            return int(config.get("max_position_embeddings") or 77)
        return int(spec.max_sequence_length or 512)

    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        side = self.latent_size(spec, resolution) // 2
        tokens, text = side * side, self.t5_tokens(spec)
        inputs: dict[str, Any] = {
            "hidden_states": torch.randn(batch, tokens, int(cfg.get("in_channels", 64)), device=device, dtype=dtype),
            "encoder_hidden_states": torch.randn(batch, text, int(cfg.get("joint_attention_dim") or 4096),
                                                 device=device, dtype=dtype),
            "pooled_projections": torch.randn(batch, int(cfg.get("pooled_projection_dim") or 768), device=device,
                                              dtype=dtype),
            "timestep": torch.full((batch,), 0.5, device=device, dtype=dtype),
            "img_ids": packed_image_ids(side, device, dtype),
            "txt_ids": torch.zeros(text, 3, device=device, dtype=dtype),
        }
        if cfg.get("guidance_embeds"):
            inputs["guidance"] = torch.full((batch,), 3.5, device=device, dtype=torch.float32)
        return inputs


    def call_kwargs(self, spec: ModelFacts, guidance: float, n: int) -> dict[str, Any]:
        return {"guidance_scale": guidance, "max_sequence_length": self.t5_tokens(spec)}


FAMILY = Flux()
