"""HiDream-I1 (Full, Dev, Fast): a sparse mixture-of-experts DiT with four text encoders.

``HiDreamImagePipeline`` (diffusers ``pipelines/hidream_image/pipeline_hidream_image.py``); denoiser
``HiDreamImageTransformer2DModel`` called as ``transformer(hidden_states=latents (B, 16, H/8, W/8), timesteps=t (B,),
encoder_hidden_states_t5=(B, L, 4096), encoder_hidden_states_llama3=(layers, B, L, 4096), pooled_embeds=(B, 2048))``.
The transformer patchifies 2x2 itself and feeds each block one Llama layer's hidden states (``llama_layers``); the
routed experts (4, 2 active per token) pick tokens by value, so the step is not capturable as a CUDA graph.

* Text: CLIP-L and CLIP-G (``CLIPTextModelWithProjection``: only the projected pooled output is used, the two
  concatenated into ``pooled_embeds``) at ``min(max_sequence_length, 218)`` tokens, T5-XXL (with its attention mask)
  and Llama-3.1-8B-Instruct (``text_encoder_4``, which the user supplies: ``output_hidden_states=True``,
  ``output_attentions=True``, with its mask; every layer's hidden state after the embeddings is stacked) at
  ``max_sequence_length`` tokens; ``max_sequence_length`` is 128 by default.
* Guidance: the pipeline does CFG when ``guidance_scale > 1`` (one doubled batch). Full runs at 5.0; Dev and Fast
  are guidance-distilled and run at 0.0. Their configs differ only in the scheduler: Full ships a flow UniPC, Dev and
  Fast a ``FlowMatchLCMScheduler``, which is how a distilled model is recognised here.
* Resolution: the pipeline rescales any requested size to the area of ``default_sample_size`` (128 latent pixels) x
  the VAE factor, floored to multiples of ``2 x VAE factor``: a square request always becomes 1024 x 1024 with the
  released VAE. The example inputs and latents are shaped at that size, which is what the pipeline runs.
* Decode: ``latents / scaling_factor + shift_factor`` (FLUX.1's 16-channel VAE), no packing.
* Schedule: UniPC gets ``set_timesteps(N)`` alone; every other scheduler gets ``mu`` computed from the transformer's
  ``max_seq`` (not the image's token count) with the FLUX shift line's defaults, which DPM-Solver refuses unless it
  shifts dynamically: the fitting samplers are flow UniPC and FlowMatchEuler.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ldmpick.models.families.base import Family, TextEncoder, encoder_label

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts

DEFAULT_SAMPLE_SIZE = 128  # HiDreamImagePipeline.default_sample_size (latent pixels)
MAX_SEQUENCE_LENGTH = 128  # HiDreamImagePipeline.__call__ max_sequence_length
CLIP_MAX_TOKENS = 218  # _get_clip_prompt_embeds: max_length=min(max_sequence_length, 218)
ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3", "text_encoder_4")
ENCODER_CLASSES = {"text_encoder": "CLIPTextModelWithProjection", "text_encoder_2": "CLIPTextModelWithProjection",
                   "text_encoder_3": "T5EncoderModel", "text_encoder_4": "LlamaForCausalLM"}
DISTILLED_SCHEDULERS = ("FlowMatchLCMScheduler",)  # HiDream-I1-Dev and -Fast; Full: UniPCMultistepScheduler
# default steps: the pipeline's 50 (Full); HiDream-I1 README: Dev 28, Fast 16 (Dev's scheduler shifts by 6, Fast's by 3)
FULL_STEPS, DEV_STEPS, FAST_STEPS = 50, 28, 16


def calculate_shift(image_seq_len: int, base_seq_len: int = 256, max_seq_len: int = 4096, base_shift: float = 0.5,
                    max_shift: float = 1.15) -> float:
    """pipeline_hidream_image.calculate_shift, with the defaults the pipeline calls it with."""
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * m + base_shift - m * base_seq_len


class HiDream(Family):
    name = "hidream"
    description = "HiDream-I1 MoE DiT with CLIP-L, CLIP-G, T5-XXL and Llama-3.1-8B; Dev/Fast guidance-distilled"
    pipelines = ("HiDreamImagePipeline",)
    denoiser_component = "transformer"
    denoiser_classes = ("HiDreamImageTransformer2DModel",)
    flow_matching = True
    samplers = ("flow-unipc", "flow-euler")
    # routing reads the router's output on the host (moe_infer: bincount().cpu()): no CUDA-graph capture
    fast_modes = ("eager", "compile")
    default_guidance = 5.0  # HiDreamImagePipeline.__call__ guidance_scale (Full); Dev/Fast run at 0 (call_kwargs)
    # HiDreamImagePipeline has no optional components: it cannot run without any of the four encoders (the released
    # repos ship no text_encoder_4; the user adds Llama-3.1-8B-Instruct to the folder)
    required_components = ENCODERS

    # ------------------------------------------------------------------ variants
    def guidance_distilled(self, spec: ModelFacts) -> bool:
        """Dev and Fast: one evaluation per step (the pipeline is called with guidance 0, so no doubled batch)."""
        sched = spec.component_classes.get("scheduler") or (spec.scheduler_config or {}).get("_class_name", "")
        card = getattr(spec, "default_guidance", None)
        return sched in DISTILLED_SCHEDULERS or (card is not None and card <= 1.0)

    def default_steps(self, spec: ModelFacts) -> int:
        if getattr(spec, "default_steps", None):
            return int(spec.default_steps)  # type: ignore[attr-defined]
        if not self.guidance_distilled(spec):
            return FULL_STEPS
        shift = float((spec.scheduler_config or {}).get("shift") or 0.0)
        return FAST_STEPS if shift and shift <= 3.0 else DEV_STEPS

    # ------------------------------------------------------------------ shapes
    def native_resolution(self, spec: ModelFacts) -> int:
        return DEFAULT_SAMPLE_SIZE * self.vae_scale_factor(spec)

    def resolution_multiple(self, spec: ModelFacts) -> int:
        # the latent grid (VAE factor x patch) and the pipeline's own rounding (2 x VAE factor)
        factor = self.vae_scale_factor(spec)
        return math.lcm(factor * self.patch_size(spec), factor * 2)

    def generated_size(self, spec: ModelFacts, height: int, width: int | None = None) -> tuple[int, int]:
        """The (height, width) HiDreamImagePipeline.__call__ really generates when asked for ``height`` x ``width``:
        rescaled to the native area, floored to multiples of 2 x the VAE factor (the same float arithmetic)."""
        width = height if width is None else width
        factor = self.vae_scale_factor(spec)
        division = factor * 2
        s_max = (DEFAULT_SAMPLE_SIZE * factor) ** 2
        scale = math.sqrt(s_max / (width * height))
        return int(height * scale // division * division), int(width * scale // division * division)

    def generated_latent_size(self, spec: ModelFacts, resolution: int) -> int:
        return self.generated_size(spec, resolution)[0] // self.vae_scale_factor(spec)

    def generated_resolution(self, spec: ModelFacts, resolution: int) -> int:
        return self.generated_size(spec, resolution)[0]

    def max_seq(self, spec: ModelFacts) -> int:
        """The transformer's ``max_seq``: max_resolution[0] x max_resolution[1] // patch_size^2."""
        cfg = self.denoiser_config(spec)
        res = cfg.get("max_resolution") or (128, 128)
        return int(res[0]) * int(res[1]) // (self.patch_size(spec) ** 2)

    # ------------------------------------------------------------------ text encoders
    def text_encoders(self, spec: ModelFacts) -> list[TextEncoder]:
        out = []
        for comp in ENCODERS:
            if comp in spec.components:
                cls = spec.component_classes.get(comp) or ENCODER_CLASSES[comp]
                cfg = spec.components[comp]
                out.append(TextEncoder(comp, cls, cfg, self.encoder_seq_len(spec, comp, cls, cfg),
                                       self._label(cls, cfg)))
        return out

    @staticmethod
    def _label(class_name: str, config: dict[str, Any]) -> str:
        if class_name.startswith("Llama"):
            width, layers = int(config.get("hidden_size") or 0), int(config.get("num_hidden_layers") or 0)
            return "Llama-3.1-8B" if (width, layers) == (4096, 32) else f"Llama-{width}x{layers}"
        label = encoder_label(class_name, config)
        if int(config.get("max_position_embeddings") or 77) > 77:  # HiDream's Long-CLIP towers: 248 positions
            label = {"CLIP-L": "Long-CLIP-L", "OpenCLIP-bigG": "Long-CLIP-G"}.get(label, label)
        return label

    def sequence_length(self, spec: ModelFacts) -> int:
        return int(spec.max_sequence_length or MAX_SEQUENCE_LENGTH)

    def encoder_seq_len(self, spec: ModelFacts, component: str, class_name: str, config: dict[str, Any]) -> int:
        if class_name.startswith("CLIP"):
            return min(self.sequence_length(spec), CLIP_MAX_TOKENS)
        return self.sequence_length(spec)  # T5 and Llama: min(max_sequence_length, tokenizer.model_max_length)

    def encode(self, spec: ModelFacts, encoder: TextEncoder, module: Any, input_ids: Any) -> Any:
        import torch

        if encoder.class_name.startswith("CLIP"):  # _get_clip_prompt_embeds: no mask, the pooled projection
            return module(input_ids, output_hidden_states=True)[0]
        mask = torch.ones_like(input_ids)
        if encoder.class_name.startswith("T5"):  # _get_t5_prompt_embeds
            return module(input_ids, attention_mask=mask)[0]
        # _get_llama3_prompt_embeds: every layer's hidden state after the embeddings, stacked
        out = module(input_ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        return torch.stack(out.hidden_states[1:], dim=0)

    def llama_states(self, spec: ModelFacts) -> int:
        """How many stacked Llama hidden states the pipeline passes (the encoder's layers; at least as many as the
        transformer's ``llama_layers`` index)."""
        wanted = max((int(k) for k in self.denoiser_config(spec).get("llama_layers") or [0]), default=0) + 1
        llama = spec.components.get("text_encoder_4") or {}
        return max(int(llama.get("num_hidden_layers") or 0), wanted)

    # ------------------------------------------------------------------ denoiser inputs
    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        side = self.generated_latent_size(spec, resolution)
        channels = cfg.get("caption_channels") or [4096, 4096]  # [T5 width, Llama width]
        seq = self.sequence_length(spec)  # T5 and Llama tokens (CLIP gives only the pooled projection)
        # UniPC's timesteps are integers, the flow-matching schedulers' floats; the pipeline expands t to the batch
        sched = spec.component_classes.get("scheduler", "")
        timestep = (torch.full((batch,), 500, device=device, dtype=torch.long) if sched == "UniPCMultistepScheduler"
                    else torch.full((batch,), 500.0, device=device))
        return {
            "hidden_states": torch.randn(batch, int(cfg.get("in_channels", 16)), side, side, device=device,
                                         dtype=dtype),
            "timesteps": timestep,
            "encoder_hidden_states_t5": torch.randn(batch, seq, int(channels[0]), device=device, dtype=dtype),
            "encoder_hidden_states_llama3": torch.randn(self.llama_states(spec), batch, seq, int(channels[1]),
                                                        device=device, dtype=dtype),
            "pooled_embeds": torch.randn(batch, int(cfg.get("text_emb_dim") or 2048), device=device, dtype=dtype),
        }

    # ------------------------------------------------------------------ VAE decode
    def decode_latents(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> Any:
        import torch

        side = self.generated_latent_size(spec, resolution)
        return torch.randn(batch, self.latent_channels(spec), side, side, device=device, dtype=dtype)

    def timestep_kwargs(self, spec: ModelFacts, scheduler: Any, resolution: int) -> dict[str, Any]:
        if type(scheduler).__name__ == "UniPCMultistepScheduler":
            return {}  # the pipeline's UniPC branch: set_timesteps(num_inference_steps, device) alone
        return {"mu": calculate_shift(self.max_seq(spec))}  # retrieve_timesteps(..., mu=mu) for every other one

    # ------------------------------------------------------------------ generation
    def call_kwargs(self, spec: ModelFacts, guidance: float, n: int) -> dict[str, Any]:
        # Dev/Fast: guidance 0 (the README's), so the pipeline never doubles the batch of a distilled model
        scale = 0.0 if self.guidance_distilled(spec) else guidance
        return {"guidance_scale": scale, "max_sequence_length": self.sequence_length(spec)}


FAMILY = HiDream()
