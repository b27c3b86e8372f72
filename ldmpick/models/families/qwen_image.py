"""Qwen-Image MM-DiT (diffusers ``QwenImagePipeline``, checked against diffusers 0.42.1).

Denoiser ``QwenImageTransformer2DModel`` called as ``transformer(hidden_states=packed latents (B, (H/16)(W/16),
4 x z_dim = 64), timestep=t/1000 (B,), guidance=None (the released model embeds no guidance),
encoder_hidden_states_mask=None (the pipeline drops a mask that is all ones, as one prompt's is),
encoder_hidden_states=(B, L, 3584), img_shapes=[[(1, H/16, W/16)]] * B)``; diffusers 0.42 dropped
``txt_seq_lens``: the transformer takes the text length from ``encoder_hidden_states``. Its ``guidance_embeds``
flag builds no guidance embedder in diffusers 0.42.1 (a guidance tensor makes the forward fail), so every
Qwen-Image model guides with true CFG.

Text encoder: one ``Qwen2_5_VLForConditionalGeneration`` (Qwen2.5-VL-7B; its vision tower is never run for text to
image), called with ``input_ids``, ``attention_mask`` and ``output_hidden_states=True``; the last hidden state is
kept. The prompt goes into a chat template (a system prompt describing the image, then the user turn) and the
pipeline pads to the longest prompt only, so the sequence follows the prompt: the encoder sees
``PROMPT_TEMPLATE_PREFIX_TOKENS`` (34, ``prompt_template_encode_start_idx``: dropped from its output) +
``PROMPT_TOKENS`` + ``PROMPT_TEMPLATE_SUFFIX_TOKENS`` (5: ``<|im_end|>``, newline, ``<|im_start|>assistant``,
newline) tokens, the denoiser ``PROMPT_TOKENS + 5`` (at most ``max_sequence_length``, 512 by default).
``PROMPT_TOKENS`` (64) is the stated prompt length the text parts are costed at.

Guidance: true classifier-free guidance, ``true_cfg_scale`` (default 4.0) with a negative prompt (the model card's
is a single space); without a negative prompt the pipeline runs no CFG at all. With CFG it runs the transformer
twice per step (conditional, then unconditional, each at batch B; costed here as one evaluation at 2B) and encodes
the negative prompt too.

VAE: ``AutoencoderKLQwenImage`` (Wan-style causal 3D, z_dim 16), spatial factor ``2 ** len(temperal_downsample)``
(8), then 2x2 packing: image sides are multiples of 16. Decode = unpack to (B, 16, 1, H/8, W/8),
``latents / (1 / latents_std) + latents_mean``, ``vae.decode(...)[0][:, :, 0]``. Default size 128 x 8 = 1024 px,
50 steps. Flow matching with the resolution-dependent exponential shift ``mu`` (base/max image sequence 256/8192,
shift 0.5/0.9); the pipeline passes custom sigmas and ``mu``, which FlowMatchEuler and (flow-sigma) UniPC accept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldmpick.models.families.base import Family, PackedLatents, TextEncoder, unpack_2x2

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts

# Qwen2.5-VL config keys of the ids that open or stand for pixels (151652-151656 in the released vocabulary)
VISION_TOKEN_KEYS = ("vision_start_token_id", "vision_end_token_id", "vision_token_id", "image_token_id",
                     "video_token_id")


class QwenImage(PackedLatents, Family):
    name = "qwen-image"
    description = "Qwen-Image MM-DiT with a Qwen2.5-VL encoder and the Wan-style 16-channel VAE; true CFG"
    pipelines = ("QwenImagePipeline",)
    denoiser_component = "transformer"
    denoiser_classes = ("QwenImageTransformer2DModel",)
    flow_matching = True
    # the pipeline hands set_timesteps custom sigmas and mu: DPM-Solver's takes no sigmas
    samplers = ("flow-euler", "flow-unipc")
    default_guidance = 4.0  # QwenImagePipeline.__call__: true_cfg_scale=4.0
    default_steps = 50  # QwenImagePipeline.__call__: num_inference_steps=50
    default_sample_size = 128  # QwenImagePipeline.__init__: default_sample_size (x the VAE factor: 1024 px)
    # the prompt's token count the text parts are costed at (the chat template's tokens come on top)
    PROMPT_TOKENS = 64
    PROMPT_TEMPLATE_PREFIX_TOKENS = 34  # QwenImagePipeline.prompt_template_encode_start_idx: dropped after encoding
    PROMPT_TEMPLATE_SUFFIX_TOKENS = 5  # "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n"
    TOKENIZER_MAX_LENGTH = 1024  # QwenImagePipeline.tokenizer_max_length (+ the prefix: the tokenizer's max_length)
    MAX_SEQUENCE_LENGTH = 512  # QwenImagePipeline.__call__: max_sequence_length=512 (check_inputs: at most 1024)
    NEGATIVE_PROMPT = " "  # the model card's: "using an empty string if you do not have specific concept to remove"

    # ------------------------------------------------------------------ shapes
    def vae_class(self, spec: ModelFacts) -> str:
        return spec.component_classes.get("vae") or "AutoencoderKLQwenImage"

    def vae_scale_factor(self, spec: ModelFacts) -> int:
        # QwenImagePipeline.__init__: 2 ** len(self.vae.temperal_downsample)
        return 2 ** len(self.vae_config(spec).get("temperal_downsample") or [False, True, True])

    def latent_channels(self, spec: ModelFacts) -> int:
        return int(self.vae_config(spec).get("z_dim") or int(self.denoiser_config(spec).get("in_channels", 64)) // 4)

    def patch_size(self, spec: ModelFacts) -> int:
        return 2  # the pipeline packs 2x2 latent patches into one token

    def native_resolution(self, spec: ModelFacts) -> int:
        return self.default_sample_size * self.vae_scale_factor(spec)

    def vae_decode_dtype(self, spec: ModelFacts, dtype: str) -> str:
        return dtype  # the pipeline decodes in the VAE's own dtype (no upcast)

    # ------------------------------------------------------------------ text
    def prompt_tokens(self, spec: ModelFacts) -> int:
        """Text tokens the denoiser sees: the prompt and the template's suffix, cut at ``max_sequence_length``."""
        cap = int(spec.max_sequence_length or self.MAX_SEQUENCE_LENGTH)
        return max(1, min(self.PROMPT_TOKENS + self.PROMPT_TEMPLATE_SUFFIX_TOKENS, cap))

    def encoder_seq_len(self, spec: ModelFacts, component: str, class_name: str, config: dict[str, Any]) -> int:
        full = self.PROMPT_TEMPLATE_PREFIX_TOKENS + self.PROMPT_TOKENS + self.PROMPT_TEMPLATE_SUFFIX_TOKENS
        return min(full, self.TOKENIZER_MAX_LENGTH + self.PROMPT_TEMPLATE_PREFIX_TOKENS)

    def text_encoders(self, spec: ModelFacts) -> list[TextEncoder]:
        out = []
        for enc in super().text_encoders(spec):
            config = dict(enc.config)
            text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
            if not config.get("vocab_size") and text.get("vocab_size"):
                config["vocab_size"] = text["vocab_size"]  # the ids the profiler draws stay inside the vocabulary
            label = "Qwen2.5-VL" if enc.class_name.startswith("Qwen2_5_VL") else enc.label
            out.append(TextEncoder(enc.component, enc.class_name, config, enc.seq_len, label))
        return out

    def encode(self, spec: ModelFacts, encoder: TextEncoder, module: Any, input_ids: Any) -> Any:
        import torch

        # a vision-start / image / video token among random ids would make Qwen2.5-VL look for pixels: keep the ids
        # below the first of them (the text vocabulary; a prompt's template holds none of them)
        vision = [v for k, v in encoder.config.items() if k in VISION_TOKEN_KEYS and isinstance(v, int) and v > 0]
        if vision:
            input_ids = input_ids.remainder(min(vision))
        # QwenImagePipeline._get_qwen_prompt_embeds: one prompt, no padding, so the mask is all ones
        out = module(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_hidden_states=True)
        return out.hidden_states[-1]

    # ------------------------------------------------------------------ example inputs
    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        side = self.latent_size(spec, resolution) // 2
        text = self.prompt_tokens(spec)
        inputs: dict[str, Any] = {
            "hidden_states": torch.randn(batch, side * side, int(cfg.get("in_channels", 64)), device=device,
                                         dtype=dtype),
            "timestep": torch.full((batch,), 0.5, device=device, dtype=dtype),  # t / 1000
            "encoder_hidden_states": torch.randn(batch, text, int(cfg.get("joint_attention_dim") or 3584),
                                                 device=device, dtype=dtype),
            "encoder_hidden_states_mask": None,  # encode_prompt: an all-ones mask is passed as None
            "img_shapes": [[(1, side, side)]] * batch,
        }
        return inputs

    # ------------------------------------------------------------------ VAE decode

    def decode(self, vae: Any, latents: Any) -> Any:
        import torch

        # QwenImagePipeline._unpack_latents, then the denormalisation and decode of __call__
        x = unpack_2x2(latents).unsqueeze(2).to(vae.dtype)  # (B, C, 1, H, W): one frame of the video-style VAE
        cfg = vae.config
        mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1).to(x.device, x.dtype)
        std = 1.0 / torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1).to(x.device, x.dtype)
        return vae.decode(x / std + mean, return_dict=False)[0][:, :, 0]

    # ------------------------------------------------------------------ generation
    def call_kwargs(self, spec: ModelFacts, guidance: float, n: int) -> dict[str, Any]:
        # guidance_scale stays None: it is for guidance-embedding transformers, which diffusers 0.42 cannot run
        kwargs: dict[str, Any] = {"true_cfg_scale": guidance,
                                  "max_sequence_length": int(spec.max_sequence_length or self.MAX_SEQUENCE_LENGTH)}
        if guidance > 1.0:  # true CFG runs only with a negative prompt (the user's --negative-prompt replaces this)
            kwargs["negative_prompt"] = self.NEGATIVE_PROMPT
        return kwargs


FAMILY = QwenImage()
