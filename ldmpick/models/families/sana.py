"""Sana and SANA-Sprint linear-attention DiTs.

``SanaPipeline`` / ``SanaSprintPipeline``; denoiser ``SanaTransformer2DModel`` called as
``transformer(hidden_states, encoder_hidden_states, timestep, guidance=None, encoder_attention_mask)``; one Gemma-2
encoder (300 tokens after the complex-human-instruction prefix is cut off); ``AutoencoderDC`` with 32 latent
channels and factor 32 (patch 1: a 1024 px image is 32x32 = 1024 tokens). Sana doubles the batch for CFG;
SANA-Sprint embeds guidance (one evaluation per step) and samples with SCM in 1-4 steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldmpick.models.families.base import Family

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts


class Sana(Family):
    name = "sana"
    description = "Sana / SANA-Sprint linear DiT with a Gemma-2 encoder and the 32x DC-AE"
    pipelines = ("SanaPipeline", "SanaSprintPipeline")
    denoiser_component = "transformer"
    denoiser_classes = ("SanaTransformer2DModel",)
    flow_matching = True
    samplers = ("flow-dpmpp-2m", "flow-euler")
    distilled_samplers = ("scm",)
    default_guidance = 4.5
    pipeline_multiple = 32  # SanaPipeline.check_inputs: height % 32 (its DC-AE downsamples by 32 anyway)

    def is_sprint(self, spec: ModelFacts) -> bool:
        return spec.pipeline_class == "SanaSprintPipeline"

    def guidance_distilled(self, spec: ModelFacts) -> bool:
        return bool(self.denoiser_config(spec).get("guidance_embeds"))

    def family_samplers(self, spec: ModelFacts) -> list[str]:
        return ["scm"] if self.is_sprint(spec) else list(self.samplers)

    def misfit_reason(self, spec: ModelFacts, name: str) -> str | None:
        if self.is_sprint(spec) and name != "scm":
            return "SANA-Sprint runs its SCM scheduler only"
        return super().misfit_reason(spec, name)

    def vae_class(self, spec: ModelFacts) -> str:
        return spec.component_classes.get("vae") or "AutoencoderDC"

    def encoder_seq_len(self, spec: ModelFacts, component: str, class_name: str, config: dict[str, Any]) -> int:
        return int(spec.max_sequence_length or 300)

    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        side = self.latent_size(spec, resolution)
        seq = self.text_encoders(spec)[0].seq_len if self.text_encoders(spec) else 300
        inputs: dict[str, Any] = {
            "hidden_states": torch.randn(batch, int(cfg.get("in_channels", 32)), side, side, device=device,
                                         dtype=dtype),
            "encoder_hidden_states": torch.randn(batch, seq, int(cfg.get("caption_channels") or 2304), device=device,
                                                 dtype=dtype),
            "timestep": torch.full((batch,), 500.0, device=device, dtype=dtype),
            "encoder_attention_mask": torch.ones(batch, seq, device=device, dtype=dtype),
        }
        if cfg.get("guidance_embeds"):
            inputs["guidance"] = torch.full((batch,), 4.5, device=device, dtype=dtype)
        return inputs

    def steps_kwargs(self, spec: ModelFacts, steps: int) -> dict[str, Any]:
        # SanaSprintPipeline's intermediate_timesteps (default 1.3) is for its 2-step schedule only; it raises at
        # any other step count unless it is None
        return {"intermediate_timesteps": None} if self.is_sprint(spec) and steps != 2 else {}

    def call_kwargs(self, spec: ModelFacts, guidance: float, n: int) -> dict[str, Any]:
        # no resolution binning: the image is generated at the asked size, as profiled
        return {"guidance_scale": guidance, "use_resolution_binning": False}

    def decode(self, vae: Any, latents: Any) -> Any:
        return vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]


FAMILY = Sana()
