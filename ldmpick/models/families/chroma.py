"""Chroma (Chroma1-HD): FLUX.1-schnell's MM-DiT geometry, T5-XXL only, real classifier-free guidance.

``ChromaPipeline`` (diffusers ``pipelines/chroma/pipeline_chroma.py``); denoiser ``ChromaTransformer2DModel`` called as
``transformer(hidden_states=packed latents (B, (H/16)(W/16), 64), timestep=t/1000, encoder_hidden_states=T5 (B, L,
4096), txt_ids=(L, 3), img_ids=(tokens, 3), attention_mask=(B, L + tokens))``: no pooled CLIP input and no guidance
embedding (a small "distilled guidance" approximator makes the modulation from the timestep alone). The attention
mask is the T5 padding mask with one padding token left unmasked, followed by ones for the image tokens.

* Text: one T5-XXL encoder at ``max_sequence_length`` tokens (512 by default, at most 512), called with the
  tokenizer's attention mask.
* Guidance: real CFG (``guidance_scale > 1``, default 5.0): the transformer runs a second time per step on the
  negative prompt (two calls of batch B, not one of 2B), so each step costs two evaluations.
* Latents: 16 channels (``transformer.in_channels // 4``), factor 8, packed 2x2 (sides are multiples of 16; the
  pipeline only warns otherwise and floors). Decode: unpack, ``latents / scaling_factor + shift_factor``.
* Schedule: custom sigmas ``linspace(1, 1/N, N)`` and ``mu`` from the packed token count (the FLUX shift line), so
  only schedulers whose ``set_timesteps`` take ``sigmas`` fit: FlowMatchEuler, and flow UniPC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldmpick.models.families.base import Family, PackedLatents, packed_image_ids

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts, TextEncoder

MAX_SEQUENCE_LENGTH = 512  # ChromaPipeline.check_inputs: max_sequence_length cannot be greater than 512
DEFAULT_STEPS = 35  # ChromaPipeline.__call__ num_inference_steps
DEFAULT_SAMPLE_SIZE = 128  # ChromaPipeline.default_sample_size (latent pixels): 1024 px with the f8 VAE
PROMPT_TOKENS = 32  # the T5 tokens of a typical prompt, for the example attention mask (its values cost nothing)


class Chroma(PackedLatents, Family):
    name = "chroma"
    description = "Chroma1-HD MM-DiT (FLUX.1 geometry) with a T5-XXL encoder; real CFG"
    pipelines = ("ChromaPipeline",)
    denoiser_component = "transformer"
    denoiser_classes = ("ChromaTransformer2DModel",)
    flow_matching = True
    # the pipeline passes custom sigmas (and mu): DPM-Solver's set_timesteps takes no sigmas
    samplers = ("flow-euler", "flow-unipc")
    default_guidance = 5.0  # ChromaPipeline.__call__ guidance_scale

    def default_steps(self, spec: ModelFacts) -> int:
        return int(getattr(spec, "default_steps", None) or DEFAULT_STEPS)

    # ------------------------------------------------------------------ shapes
    def patch_size(self, spec: ModelFacts) -> int:
        return 2  # 2x2 latent packing (the transformer's own patch_size is 1)

    def native_resolution(self, spec: ModelFacts) -> int:
        return DEFAULT_SAMPLE_SIZE * self.vae_scale_factor(spec)

    def latent_channels(self, spec: ModelFacts) -> int:
        # prepare_latents: num_channels_latents = transformer.config.in_channels // 4
        packed = self.denoiser_config(spec).get("in_channels")
        return int(packed) // 4 if packed else int(self.vae_config(spec).get("latent_channels") or 16)

    # ------------------------------------------------------------------ text encoder
    def t5_tokens(self, spec: ModelFacts) -> int:
        return int(spec.max_sequence_length or MAX_SEQUENCE_LENGTH)

    def encoder_seq_len(self, spec: ModelFacts, component: str, class_name: str, config: dict[str, Any]) -> int:
        return self.t5_tokens(spec)

    def encode(self, spec: ModelFacts, encoder: TextEncoder, module: Any, input_ids: Any) -> Any:
        import torch

        # _get_t5_prompt_embeds: text_encoder(ids, output_hidden_states=False, attention_mask=tokenizer mask)[0]
        mask = torch.ones_like(input_ids)
        return module(input_ids, output_hidden_states=False, attention_mask=mask)[0]

    # ------------------------------------------------------------------ denoiser inputs
    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        side = self.latent_size(spec, resolution) // 2
        tokens, text = side * side, self.t5_tokens(spec)
        # _get_t5_prompt_embeds: the prompt's tokens and one padding token unmasked (mask_indices <= seq_lengths);
        # _prepare_attention_mask: then ones for every image token
        prompt = torch.arange(text, device=device)[None, :] <= min(PROMPT_TOKENS, text - 1)
        text_mask = prompt.expand(batch, text).to(dtype)
        mask = torch.cat([text_mask, torch.ones(batch, tokens, device=device, dtype=torch.bool)], dim=1)
        return {
            "hidden_states": torch.randn(batch, tokens, int(cfg.get("in_channels", 64)), device=device, dtype=dtype),
            "timestep": torch.full((batch,), 0.5, device=device, dtype=dtype),  # t / 1000
            "encoder_hidden_states": torch.randn(batch, text, int(cfg.get("joint_attention_dim") or 4096),
                                                 device=device, dtype=dtype),
            "txt_ids": torch.zeros(text, 3, device=device, dtype=dtype),
            "img_ids": packed_image_ids(side, device, dtype),
            "attention_mask": mask,
        }

    # ------------------------------------------------------------------ VAE decode

    # ------------------------------------------------------------------ generation
    def call_kwargs(self, spec: ModelFacts, guidance: float, n: int) -> dict[str, Any]:
        return {"guidance_scale": guidance, "max_sequence_length": self.t5_tokens(spec)}


FAMILY = Chroma()
