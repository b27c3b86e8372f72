"""CogView4-6B: a DiT over joint text and image tokens with a GLM-4 text encoder.

``CogView4Pipeline`` (diffusers 0.42.1 ``pipelines/cogview4/pipeline_cogview4.py``); denoiser
``CogView4Transformer2DModel`` called as ``transformer(hidden_states=latents (B, 16, H/8, W/8),
encoder_hidden_states=GLM-4's penultimate hidden states (B, L, 4096), timestep=t (B,), original_size=(h, w),
target_size=(h, w), crop_coords=(0, 0))``, each size/crop tensor (B, 2) in the text encoder's dtype. The prompt is
tokenized to its own length (``padding="longest"``, ``[gMASK]<sop>`` first, truncated at ``max_sequence_length``
1024) and padded on the left with pad tokens to a multiple of 16; GLM-4 runs on it without an attention mask
(``output_hidden_states=True``, ``hidden_states[-2]``). L therefore depends on the prompt: profiles assume a
detailed prompt like the model card's (``max_sequence_length`` of a model sets another). CFG is two transformer
calls per step (prompt, then negative prompt, "" by default). VAE factor 2^(levels - 1) = 8, patch 2 (sides are
multiples of 16); decode ``latents / scaling`` (no shift). Flow matching: the pipeline passes integer timesteps
1000 ... 1 and their sigmas, which FlowMatchEuler shifts with CogView4's linear time shift
``mu = sqrt(tokens / 256) * max_shift + base_shift``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from ldmpick.models.families.base import Family

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts, TextEncoder

PAD_MULTIPLE = 16  # _get_glm_embeds: pad_length = (16 - (current_length % 16)) % 16 (pipeline_cogview4.py:207)
MAX_SEQUENCE_LENGTH = 1024  # __call__'s max_sequence_length: the truncation length (pipeline_cogview4.py:426)
SPECIAL_TOKENS = 2  # [gMASK] <sop>, which the GLM-4 tokenizer puts before every prompt (add_special_tokens=True)
# A detailed prompt as CogView4 is meant to be prompted: the THUDM/CogView4-6B model card's example (105 words, 126
# with punctuation marks: about 128 GLM-4 tokens)
PROMPT_TOKENS = 128


def padded_length(tokens: int) -> int:
    """The sequence GLM-4 encodes for a prompt of ``tokens`` tokens (special tokens included): truncated at 1024,
    left-padded to a multiple of 16."""
    tokens = max(1, min(int(tokens), MAX_SEQUENCE_LENGTH))
    return PAD_MULTIPLE * math.ceil(tokens / PAD_MULTIPLE)


class CogView4(Family):
    name = "cogview4"
    description = "CogView4 DiT with a GLM-4 encoder, size conditioning and a resolution-dependent shift"
    pipelines = ("CogView4Pipeline",)
    denoiser_component = "transformer"
    denoiser_classes = ("CogView4Transformer2DModel",)
    flow_matching = True
    # the pipeline passes both custom timesteps and sigmas to set_timesteps (retrieve_timesteps,
    # pipeline_cogview4.py:604): only FlowMatchEuler's takes both (UniPC has no `timesteps`, DPM-Solver no `sigmas`)
    samplers = ("flow-euler",)
    # cudagraph: the transformer builds its RoPE tables on the CPU in every forward and copies them to the device in
    # each attention (apply_rotary_emb), which CUDA-graph capture does not allow
    fast_modes = ("eager", "compile")
    default_guidance = 5.0  # __call__'s guidance_scale (the model card's example uses 3.5)
    default_steps = 50  # __call__'s num_inference_steps
    pipeline_multiple = 16  # check_inputs: height % 16

    def sequence_length(self, spec: ModelFacts) -> int:
        """The GLM-4 sequence of the profiled prompt: ``max_sequence_length`` tokens when the model sets it, else a
        detailed prompt's, padded as the pipeline pads it."""
        tokens = spec.max_sequence_length or PROMPT_TOKENS + SPECIAL_TOKENS
        return padded_length(tokens)

    def text_encoders(self, spec: ModelFacts) -> list[TextEncoder]:
        return [dataclasses.replace(e, label="GLM-4") if e.class_name.startswith("Glm") else e
                for e in super().text_encoders(spec)]

    def encoder_seq_len(self, spec: ModelFacts, component: str, class_name: str, config: dict[str, Any]) -> int:
        return self.sequence_length(spec)

    def encode(self, spec: ModelFacts, encoder: TextEncoder, module: Any, input_ids: Any) -> Any:
        """``text_encoder(ids, output_hidden_states=True).hidden_states[-2]``: no attention mask, even over the pad
        tokens (``_get_glm_embeds``)."""
        return module(input_ids, output_hidden_states=True).hidden_states[-2]

    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        side = self.latent_size(spec, resolution)

        def pair(a: float, b: float) -> Any:  # (B, 2), in the prompt embeddings' dtype
            return torch.tensor([[a, b]], device=device, dtype=dtype).repeat(batch, 1)

        return {
            "hidden_states": torch.randn(batch, int(cfg.get("in_channels") or 16), side, side, device=device,
                                         dtype=dtype),
            "encoder_hidden_states": torch.randn(batch, self.sequence_length(spec),
                                                 int(cfg.get("text_embed_dim") or 4096), device=device, dtype=dtype),
            "timestep": torch.full((batch,), 500.0, device=device, dtype=torch.float32),  # the scheduler's, float32
            "original_size": pair(resolution, resolution),
            "target_size": pair(resolution, resolution),
            "crop_coords": pair(0, 0),
        }

    def vae_decode_dtype(self, spec: ModelFacts, dtype: str) -> str:
        return dtype  # latents.to(self.vae.dtype): no fp32 upcast, whatever force_upcast says

    def decode(self, vae: Any, latents: Any) -> Any:
        return vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]  # no shift_factor

    def timestep_kwargs(self, spec: ModelFacts, scheduler: Any, resolution: int) -> dict[str, Any]:
        """``mu`` as ``CogView4Pipeline.__call__`` computes and always passes it: its own ``calculate_shift``,
        ``sqrt(image tokens / base_image_seq_len) * max_shift + base_shift`` (pipeline_cogview4.py:59-67, 584-599)."""
        cfg = scheduler.config
        side = self.latent_size(spec, resolution)
        image_seq_len = side * side // self.patch_size(spec) ** 2
        m = (image_seq_len / cfg.get("base_image_seq_len", 256)) ** 0.5
        return {"mu": m * cfg.get("max_shift", 0.75) + cfg.get("base_shift", 0.25)}

    def call_kwargs(self, spec: ModelFacts, guidance: float, n: int) -> dict[str, Any]:
        # original_size = target_size = (height, width) and crops (0, 0): the pipeline's defaults, as profiled
        return {"guidance_scale": guidance}


FAMILY = CogView4()
