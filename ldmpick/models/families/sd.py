"""Stable Diffusion 1.x / 2.x UNets: SD-1.5, SD-2.1, BK-SDM, the paper's family (Mei et al. 2024), the demo family
and LCM-distilled SD UNets.

``StableDiffusionPipeline`` / ``LatentConsistencyModelPipeline``; denoiser ``UNet2DConditionModel`` called as
``unet(sample, timestep, encoder_hidden_states)`` (LCM adds ``timestep_cond``, the guidance embedding, and does not
double the batch); one CLIP text encoder (77 tokens); ``AutoencoderKL`` with 4 latent channels, factor 8.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldmpick.models.families.base import Family

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts

EPS_SAMPLERS = ("ddim", "ddpm", "dpmpp-2m", "euler", "euler-a", "unipc", "heun")


class UNetFamily(Family):
    """What SD-1.x and SDXL UNets share."""

    denoiser_component = "unet"
    denoiser_classes = ("UNet2DConditionModel",)
    samplers = EPS_SAMPLERS
    distilled_samplers = ("lcm",)
    pipeline_multiple = 8  # StableDiffusion(XL)Pipeline.check_inputs: height % 8 (a demo model's VAE factor is 2)

    # patch size 1: a UNet takes any latent size (diffusers forwards the upsampling sizes), so image sides need be
    # multiples of the VAE factor and of the pipelines' own 8

    def guidance_distilled(self, spec: ModelFacts) -> bool:
        return self.denoiser_config(spec).get("time_cond_proj_dim") is not None

    def family_samplers(self, spec: ModelFacts) -> list[str]:
        """LCM only for consistency-distilled UNets (a guidance embedding or an LCM scheduler); adversarially
        distilled ones (SDXL-Turbo) keep the ordinary samplers at few steps."""
        if self.lcm_pipeline(spec):
            return ["lcm"]  # its __call__ passes original_inference_steps, which only LCMScheduler takes
        lcm = self.guidance_distilled(spec) or spec.component_classes.get("scheduler") == "LCMScheduler"
        return list(self.samplers) + (list(self.distilled_samplers) if lcm else [])

    @staticmethod
    def lcm_pipeline(spec: ModelFacts) -> bool:
        return spec.pipeline_class == "LatentConsistencyModelPipeline"

    def misfit_reason(self, spec: ModelFacts, name: str) -> str | None:
        if self.lcm_pipeline(spec) and name != "lcm":
            return "its LatentConsistencyModelPipeline runs the LCM scheduler only"
        return super().misfit_reason(spec, name)

    def text_tokens(self, spec: ModelFacts) -> int:
        encoders = self.text_encoders(spec)
        return max((e.seq_len for e in encoders), default=77)

    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        side = self.latent_size(spec, resolution)
        inputs: dict[str, Any] = {
            "sample": torch.randn(batch, int(cfg.get("in_channels", 4)), side, side, device=device, dtype=dtype),
            "timestep": torch.tensor(500.0, device=device),
            "encoder_hidden_states": torch.randn(batch, self.text_tokens(spec), spec.cross_attention_dim,
                                                 device=device, dtype=dtype),
        }
        if cfg.get("time_cond_proj_dim") is not None:
            inputs["timestep_cond"] = torch.randn(batch, int(cfg["time_cond_proj_dim"]), device=device, dtype=dtype)
        inputs.update(self.added_conditions(spec, batch, resolution, device, dtype))
        return inputs

    def added_conditions(self, spec: ModelFacts, batch: int, resolution: int, device: str,
                         dtype: Any) -> dict[str, Any]:
        return {}


class StableDiffusion(UNetFamily):
    name = "sd"
    description = "Stable Diffusion 1.x/2.x UNet (SD-1.5, SD-2.1, BK-SDM, the paper's family, LCM)"
    pipelines = ("StableDiffusionPipeline", "LatentConsistencyModelPipeline")
    default_guidance = 7.5

    def pipeline_load_kwargs(self) -> dict[str, Any]:
        return {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


FAMILY = StableDiffusion()
