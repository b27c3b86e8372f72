"""Stable Diffusion 3 / 3.5 MM-DiT: SD3-Medium, SD3.5-Medium, SD3.5-Large (and Large-Turbo).

``StableDiffusion3Pipeline``; denoiser ``SD3Transformer2DModel`` called as ``transformer(hidden_states,
encoder_hidden_states, pooled_projections, timestep)``: joint tokens = 77 CLIP tokens (CLIP-L and OpenCLIP-bigG,
padded to 4096) followed by the T5-XXL tokens (``max_sequence_length`` 256 by default); ``pooled_projections`` = the
two CLIP pooled outputs (2048). 16-channel VAE with ``scaling_factor`` and ``shift_factor``; patch 2; flow matching;
CFG doubles the batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldmpick.models.families.base import Family

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts

FLOW_SAMPLERS = ("flow-euler", "flow-dpmpp-2m", "flow-unipc")


class StableDiffusion3(Family):
    name = "sd3"
    description = "SD3/SD3.5 MM-DiT with CLIP-L, OpenCLIP-bigG and T5-XXL"
    pipelines = ("StableDiffusion3Pipeline",)
    required_components = ("text_encoder", "text_encoder_2")
    optional_components = ("text_encoder_3", "tokenizer_3")  # SD3 runs without T5 (text_encoder_3=None)
    denoiser_component = "transformer"
    denoiser_classes = ("SD3Transformer2DModel",)
    flow_matching = True
    samplers = FLOW_SAMPLERS
    default_guidance = 7.0

    def clip_tokens(self, spec: ModelFacts) -> int:
        clips = [e.seq_len for e in self.text_encoders(spec) if e.class_name.startswith("CLIP")]
        return max(clips, default=77)

    def t5_tokens(self, spec: ModelFacts) -> int:
        t5 = [e.seq_len for e in self.text_encoders(spec) if not e.class_name.startswith("CLIP")]
        return max(t5, default=int(spec.max_sequence_length or 256))

    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        side = self.latent_size(spec, resolution)
        tokens = self.clip_tokens(spec) + self.t5_tokens(spec)
        return {
            "hidden_states": torch.randn(batch, int(cfg.get("in_channels", 16)), side, side, device=device,
                                         dtype=dtype),
            "encoder_hidden_states": torch.randn(batch, tokens, int(cfg.get("joint_attention_dim") or 4096),
                                                 device=device, dtype=dtype),
            "pooled_projections": torch.randn(batch, int(cfg.get("pooled_projection_dim") or 2048), device=device,
                                              dtype=dtype),
            "timestep": torch.full((batch,), 500.0, device=device),
        }


FAMILY = StableDiffusion3()
