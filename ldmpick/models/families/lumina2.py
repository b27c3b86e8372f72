"""Lumina-Image-2.0: a unified single-stream DiT with a Gemma-2 text encoder.

``Lumina2Pipeline`` (diffusers 0.42.1 ``pipelines/lumina2/pipeline_lumina2.py``); denoiser
``Lumina2Transformer2DModel`` called as ``transformer(hidden_states=latents (B, 16, H/8, W/8),
timestep=1 - t/1000 (B,), encoder_hidden_states=Gemma's penultimate hidden states (B, 256, 2304),
encoder_attention_mask=the tokenizer's mask (B, 256))``. The pipeline prepends its system prompt ("You are an
assistant designed to generate superior images ... <Prompt Start> ") to the prompt (not to the negative prompt) and
pads to ``max_sequence_length`` (256) with the mask marking the real tokens; Gemma runs on all 256
(``output_hidden_states=True``, ``hidden_states[-2]``), the transformer's context refiner too, but its joint blocks
only see the real caption tokens followed by the image tokens. CFG is two transformer calls per step (prompt, then
negative prompt) on every step where ``(i + 1) / steps <= cfg_trunc_ratio`` (1.0 by default: all of them), with the
guided prediction renormalised to the conditional one's norm (``cfg_normalization``). The FLUX 16-channel VAE with
the pipeline's hard-coded factor 8, patch 2 (sides are multiples of 16); decode ``latents / scaling + shift``. Flow
matching with FlowMatchEuler's static shift (6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldmpick.models.families.base import Family

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts, TextEncoder

# Lumina2Pipeline.__init__ (pipeline_lumina2.py:184); encode_prompt joins it to each prompt as
# f"{system_prompt} <Prompt Start> {prompt}" (pipeline_lumina2.py:287)
SYSTEM_PROMPT = ("You are an assistant designed to generate superior images with the superior degree of image-text "
                 "alignment based on textual prompts or user prompts.")
# _get_gemma_prompt_embeds pads to max_length=max_sequence_length (default 256, pipeline_lumina2.py:199-205);
# check_inputs refuses more than 512 (pipeline_lumina2.py:427)
DEFAULT_SEQUENCE_LENGTH = 256
MAX_SEQUENCE_LENGTH = 512
# Real (unmasked) caption tokens of a typical prompt, which set the length of the joint blocks: <bos>, the system
# prompt and " <Prompt Start> " (30 words and punctuation marks: about 30 Gemma tokens), and a prompt like the
# pipeline's own example (EXAMPLE_DOC_STRING: 29 words, 33 with punctuation).
CAPTION_TOKENS = 1 + 30 + 33


class Lumina2(Family):
    name = "lumina2"
    description = "Lumina-Image-2.0 unified DiT with a Gemma-2 encoder (system prompt) and the FLUX VAE"
    pipelines = ("Lumina2Pipeline",)
    denoiser_component = "transformer"
    denoiser_classes = ("Lumina2Transformer2DModel",)
    flow_matching = True
    # the pipeline passes custom sigmas to set_timesteps (retrieve_timesteps, pipeline_lumina2.py:654): FlowMatchEuler
    # and UniPC (use_flow_sigmas) take them; DPMSolverMultistep's set_timesteps has no `sigmas` and is refused
    samplers = ("flow-euler", "flow-unipc")
    # cudagraph: the forward reads the caption lengths back to the host (attention_mask.sum(dim=1).tolist()) and copies
    # its CPU RoPE tables to the device on every call, neither allowed under CUDA-graph capture; compile: the per-sample
    # Python loops over those lengths specialise the graph to each prompt's length (a recompilation per prompt)
    fast_modes = ("eager",)
    default_guidance = 4.0  # __call__'s guidance_scale
    default_steps = 30  # __call__'s num_inference_steps (the model card's example runs 50)
    pipeline_multiple = 16  # check_inputs: height % (vae_scale_factor * 2)

    def vae_scale_factor(self, spec: ModelFacts) -> int:
        return 8  # Lumina2Pipeline.__init__ sets vae_scale_factor = 8, whatever the VAE config says

    def sequence_length(self, spec: ModelFacts) -> int:
        """The padded Gemma sequence the pipeline encodes (``max_sequence_length``)."""
        return min(int(spec.max_sequence_length or DEFAULT_SEQUENCE_LENGTH), MAX_SEQUENCE_LENGTH)

    def caption_tokens(self, spec: ModelFacts) -> int:
        """The real tokens of a typical prompt's caption (system prompt included), at most the padded length."""
        return min(CAPTION_TOKENS, self.sequence_length(spec))

    def encoder_seq_len(self, spec: ModelFacts, component: str, class_name: str, config: dict[str, Any]) -> int:
        return self.sequence_length(spec)

    def encode(self, spec: ModelFacts, encoder: TextEncoder, module: Any, input_ids: Any) -> Any:
        """``text_encoder(ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2]``, the mask marking
        the caption's real tokens and the right padding (``_get_gemma_prompt_embeds``)."""
        import torch

        mask = torch.zeros_like(input_ids)
        mask[:, : self.caption_tokens(spec)] = 1
        return module(input_ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2]

    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        side = self.latent_size(spec, resolution)
        seq = self.sequence_length(spec)
        mask = torch.zeros(batch, seq, device=device, dtype=torch.int64)  # the tokenizer's attention_mask
        mask[:, : self.caption_tokens(spec)] = 1
        return {
            "hidden_states": torch.randn(batch, int(cfg.get("in_channels") or 16), side, side, device=device,
                                         dtype=dtype),
            # 1 - t / num_train_timesteps: the scheduler's float32 timesteps, reversed (t = 0 is noise)
            "timestep": torch.full((batch,), 0.5, device=device, dtype=torch.float32),
            "encoder_hidden_states": torch.randn(batch, seq, int(cfg.get("cap_feat_dim") or 2304), device=device,
                                                 dtype=dtype),
            "encoder_attention_mask": mask,
        }

    def vae_decode_dtype(self, spec: ModelFacts, dtype: str) -> str:
        return dtype  # the pipeline decodes in the VAE's own dtype: no fp32 upcast, whatever force_upcast says

    def timestep_kwargs(self, spec: ModelFacts, scheduler: Any, resolution: int) -> dict[str, Any]:
        """``mu`` as ``Lumina2Pipeline.__call__`` computes it and always passes (FlowMatchEuler uses it only with
        ``use_dynamic_shifting``, off for Lumina-Image-2.0): Flux's ``calculate_shift`` of ``latents.shape[1]``,
        which for these (B, C, H, W) latents is the channel count, not the token count (pipeline_lumina2.py:642)."""
        cfg = scheduler.config
        image_seq_len = self.latent_channels(spec)
        base_seq, max_seq = cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096)
        base_shift, max_shift = cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15)
        m = (max_shift - base_shift) / (max_seq - base_seq)
        return {"mu": image_seq_len * m + base_shift - m * base_seq}

    def call_kwargs(self, spec: ModelFacts, guidance: float, n: int) -> dict[str, Any]:
        # CFG on every step (cfg_trunc_ratio 1.0, the pipeline's default), so that generation costs what the profile
        # says (2 evaluations per step); renormalised guidance as the pipeline does by default
        return {"guidance_scale": guidance, "max_sequence_length": self.sequence_length(spec),
                "cfg_trunc_ratio": 1.0, "cfg_normalization": True}


FAMILY = Lumina2()
