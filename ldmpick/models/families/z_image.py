"""Z-Image(-Turbo) single-stream DiT (diffusers ``ZImagePipeline``, checked against diffusers 0.42.1).

Denoiser ``ZImageTransformer2DModel`` called as ``transformer(x, t, cap_feats)`` with lists, one entry per image:
``x`` = latents (16, 1, H/8, W/8) each (it patchifies 2x2 itself), ``t`` = ``(1000 - timestep) / 1000`` (B,)
(float32: 0 is pure noise), ``cap_feats`` = the prompt's valid text tokens (L, 2560) each (the transformer pads
captions and images to multiples of 32 itself).

Text encoder: one ``Qwen3Model`` (Qwen3-4B without its LM head). The prompt is put into Qwen3's chat template (one
user turn, ``add_generation_prompt``, ``enable_thinking=True``: no empty think block), padded to
``max_sequence_length`` (512) and encoded with its attention mask and ``output_hidden_states=True``; the
second-to-last hidden state is kept, and only the valid tokens go to the denoiser: the template's
``PROMPT_TEMPLATE_TOKENS`` (8: ``<|im_start|>user``, newline ... ``<|im_end|>``, newline, ``<|im_start|>assistant``,
newline) + ``PROMPT_TOKENS`` (64, the stated prompt length the denoiser is costed at).

Guidance: ``guidance_scale > 0`` makes the pipeline run classifier-free guidance as a doubled batch (latents
repeated, prompt + negative-prompt captions, negative prompt "" by default, encoded at the same 512 tokens). The
pipeline's own default is 5.0 (50 steps), which is Z-Image's (the base model's); Z-Image-Turbo is distilled to run
without it: guidance 0.0 and 9 steps (its model card; each step is one transformer evaluation at batch B). This
adapter's defaults are Turbo's; a model whose default guidance is above 0 (a catalogue entry's
``default_guidance``) is costed with the doubled batch.

VAE: the FLUX.1 f8c16 ``AutoencoderKL``; decode = ``latents / scaling_factor + shift_factor`` in the VAE's dtype (the
pipeline does not upcast, whatever ``force_upcast`` says). Image sides must be multiples of 16 (``__call__`` raises
otherwise); default 1024 px. Flow matching, static shift 3.0 (``use_dynamic_shifting`` false: the ``mu`` the
pipeline computes is ignored); the pipeline passes custom sigmas as a list, which only FlowMatchEuler takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldmpick.models.families.base import Family, TextEncoder

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts


class ZImage(Family):
    name = "z-image"
    description = "Z-Image(-Turbo) single-stream DiT with a Qwen3 encoder and the FLUX VAE; Turbo runs without CFG"
    pipelines = ("ZImagePipeline",)
    denoiser_component = "transformer"
    denoiser_classes = ("ZImageTransformer2DModel",)
    flow_matching = True
    # the pipeline hands set_timesteps custom sigmas as a Python list (get_default_z_image_sigmas: .tolist()):
    # DPM-Solver's set_timesteps takes no sigmas, and UniPC's does arithmetic on them as an array (a TypeError)
    samplers = ("flow-euler",)
    default_guidance = 0.0  # Z-Image-Turbo (model card, diffusers' example); ZImagePipeline.__call__'s own is 5.0
    default_steps = 9  # Z-Image-Turbo's model card (diffusers' docstring example: 8); __call__'s own is 50
    NATIVE_RESOLUTION = 1024  # ZImagePipeline.__call__: height = height or 1024
    PROMPT_TOKENS = 64  # the prompt's token count the denoiser's caption is costed at
    PROMPT_TEMPLATE_TOKENS = 8  # Qwen3 chat template around one user message, with the generation prompt
    MAX_SEQUENCE_LENGTH = 512  # ZImagePipeline.__call__: max_sequence_length=512 (padding="max_length")

    # ------------------------------------------------------------------ shapes
    def patch_size(self, spec: ModelFacts) -> int:
        return 2  # the pipeline calls the transformer with its default patch_size=2

    def native_resolution(self, spec: ModelFacts) -> int:
        return self.NATIVE_RESOLUTION

    def vae_decode_dtype(self, spec: ModelFacts, dtype: str) -> str:
        return dtype  # latents.to(self.vae.dtype): no upcast, though the released VAE config says force_upcast

    # ------------------------------------------------------------------ guidance
    def guidance(self, spec: ModelFacts) -> float:
        """The guidance the model runs at by default: its own (a catalogue entry's) or Turbo's 0.0."""
        own = getattr(spec, "default_guidance", None)
        return float(own) if own is not None else self.default_guidance

    def uses_cfg(self, spec: ModelFacts, cfg: bool) -> bool:
        # ZImagePipeline.do_classifier_free_guidance is guidance_scale > 0: at Turbo's 0.0 the batch is never doubled
        return cfg and self.guidance(spec) > 0

    # ------------------------------------------------------------------ text
    def sequence_length(self, spec: ModelFacts) -> int:
        return int(spec.max_sequence_length or self.MAX_SEQUENCE_LENGTH)

    def caption_tokens(self, spec: ModelFacts) -> int:
        """Valid text tokens per prompt (what ``cap_feats`` holds): template + prompt, cut at the padded length."""
        return max(1, min(self.PROMPT_TEMPLATE_TOKENS + self.PROMPT_TOKENS, self.sequence_length(spec)))

    def encoder_seq_len(self, spec: ModelFacts, component: str, class_name: str, config: dict[str, Any]) -> int:
        return self.sequence_length(spec)  # padding="max_length"

    def text_encoders(self, spec: ModelFacts) -> list[TextEncoder]:
        return [TextEncoder(e.component, e.class_name, e.config, e.seq_len,
                            "Qwen3" if e.class_name.startswith("Qwen3") else e.label)
                for e in super().text_encoders(spec)]

    def encode(self, spec: ModelFacts, encoder: TextEncoder, module: Any, input_ids: Any) -> Any:
        import torch

        # ZImagePipeline._encode_prompt: the padded ids, the mask of the valid ones, the second-to-last layer
        mask = torch.zeros_like(input_ids, dtype=torch.bool)
        mask[:, : self.caption_tokens(spec)] = True
        return module(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2]

    # ------------------------------------------------------------------ example inputs
    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        side = self.latent_size(spec, resolution)
        channels = int(cfg.get("in_channels") or 16)
        text, width = self.caption_tokens(spec), int(cfg.get("cap_feat_dim") or 2560)
        return {
            "x": [torch.randn(channels, 1, side, side, device=device, dtype=dtype) for _ in range(batch)],
            "t": torch.full((batch,), 0.5, device=device, dtype=torch.float32),  # (1000 - t) / 1000, float32
            "cap_feats": [torch.randn(text, width, device=device, dtype=dtype) for _ in range(batch)],
        }

    # ------------------------------------------------------------------ generation
    def call_kwargs(self, spec: ModelFacts, guidance: float, n: int) -> dict[str, Any]:
        return {"guidance_scale": guidance, "max_sequence_length": self.sequence_length(spec)}


FAMILY = ZImage()
