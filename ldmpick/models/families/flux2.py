"""FLUX.2: [dev] (``Flux2Pipeline``) and [klein] 4B / 9B (``Flux2KleinPipeline``), one MM-DiT family.

Denoiser ``Flux2Transformer2DModel`` called as ``transformer(hidden_states=packed latents (B, (H/16)(W/16), 128),
timestep=t/1000 (B,), guidance=(B,) fp32 for [dev] / None for [klein], encoder_hidden_states=(B, 512,
joint_attention_dim), txt_ids=(B, 512, 4), img_ids=(B, tokens, 4))``: position ids have four axes (T, H, W, L), int64.

Text: one decoder LM run on a chat-templated prompt padded to ``max_sequence_length`` (512) with its attention mask
and ``output_hidden_states=True``; the hidden states of three layers are stacked into the prompt embedding (width
3 x hidden). [dev]: Mistral-Small-3.x (``Mistral3ForConditionalGeneration``, layers 10/20/30, FLUX.2's system
prompt first); [klein]: Qwen3 (``Qwen3ForCausalLM``, layers 9/18/27, Qwen's user turn and generation prompt with
thinking off).

Guidance: [dev] embeds it (one evaluation per step, no CFG). [klein] step-distilled (``is_distilled`` in
model_index.json: the released 4B and 9B) never guides; [klein] base runs true CFG with an empty negative prompt
(the negative prompt is encoded too, and each step evaluates the transformer twice).

VAE ``AutoencoderKLFlux2``: 32 channels at /8; the pipeline packs 2x2 patches into 128-channel tokens (image sides
multiples of 16) and normalises them with the VAE's batch-norm running statistics; decode = unpack, ``x * sqrt(var
+ eps) + mean``, unpatchify, ``vae.decode`` (no scaling or shift factor, no fp32 upcast).

Sampling: flow matching; the pipeline passes ``sigmas = linspace(1, 1/n, n)`` (dropped for a scheduler with
``use_flow_sigmas``) and ``mu = compute_empirical_mu(image tokens, n)`` to ``set_timesteps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ldmpick.models.families.base import Family, TextEncoder

if TYPE_CHECKING:  # pragma: no cover
    from ldmpick.models.families.base import ModelFacts

FLOW_SAMPLERS = ("flow-euler", "flow-dpmpp-2m", "flow-unipc")
DEV_PIPELINE, KLEIN_PIPELINE = "Flux2Pipeline", "Flux2KleinPipeline"
MAX_SEQUENCE_LENGTH = 512  # both pipelines' __call__ default: the chat-templated prompt is padded / cut to it
DEFAULT_STEPS = 50  # both pipelines' num_inference_steps default
# Flux2Pipeline's text_encoder_out_layers default (10, 20, 30); Flux2KleinPipeline's (9, 18, 27)
HIDDEN_STATE_LAYERS = {DEV_PIPELINE: (10, 20, 30), KLEIN_PIPELINE: (9, 18, 27)}
# Real (unpadded) tokens of a profiled prompt, an estimate: FLUX.2's one-sentence system prompt with Mistral's
# template, or Qwen's template, plus a short prompt. The rest of the 512 is padding the attention mask hides: what
# keeps the encoder on the masked attention path the pipeline takes (the count itself barely changes the cost).
PROFILED_PROMPT_TOKENS = 64
MAX_INDEX_BYTES = 1024 * 1024  # a model_index.json is a few hundred bytes


@dataclass(frozen=True)
class _NestedTextEncoder(TextEncoder):
    """A text encoder whose vocabulary size sits in ``text_config`` (Mistral3ForConditionalGeneration)."""

    @property
    def vocab_size(self) -> int:
        inner = self.config.get("text_config") or {}
        return int(self.config.get("vocab_size") or inner.get("vocab_size") or 1000)


class Flux2(Family):
    name = "flux2"
    description = ("FLUX.2 MM-DiT: [dev] with Mistral-Small-3 (guidance-distilled), [klein] with Qwen3 "
                   "(step-distilled, or base with CFG)")
    pipelines = (DEV_PIPELINE, KLEIN_PIPELINE)
    denoiser_component = "transformer"
    denoiser_classes = ("Flux2Transformer2DModel",)
    flow_matching = True
    # the pipelines pass custom sigmas to FlowMatchEuler and none to a scheduler with use_flow_sigmas (DPM-Solver,
    # UniPC), with mu for dynamic shifting: all three run
    samplers = FLOW_SAMPLERS
    default_guidance = 4.0  # both pipelines' guidance_scale default
    vae_class_name = "AutoencoderKLFlux2"

    # ------------------------------------------------------------------ which model
    def is_klein(self, spec: ModelFacts) -> bool:
        return spec.pipeline_class == KLEIN_PIPELINE

    def step_distilled(self, spec: ModelFacts) -> bool:
        """A [klein] model distilled to a few steps (``Flux2KleinPipeline(is_distilled=True)``: it never guides)."""
        return self.is_klein(spec) and (bool(spec.distilled) or _index_flag(spec, "is_distilled"))

    # ------------------------------------------------------------------ guidance
    def guidance_distilled(self, spec: ModelFacts) -> bool:
        """No CFG batch: [dev] passes guidance to its guidance embedder; step-distilled [klein] ignores guidance
        (``Flux2KleinPipeline.do_classifier_free_guidance`` is ``guidance_scale > 1 and not is_distilled``)."""
        return not self.is_klein(spec) or self.step_distilled(spec)

    # ------------------------------------------------------------------ samplers
    def family_samplers(self, spec: ModelFacts) -> list[str]:
        # a step-distilled [klein] was distilled on the pipeline's own Euler schedule (sigmas linspace(1, 1/n, n))
        return ["flow-euler"] if self.step_distilled(spec) else list(self.samplers)

    def misfit_reason(self, spec: ModelFacts, name: str) -> str | None:
        if self.step_distilled(spec) and name in self.samplers and name != "flow-euler":
            return "step-distilled on the pipeline's Euler flow schedule"
        return super().misfit_reason(spec, name)

    # ------------------------------------------------------------------ shapes
    def vae_class(self, spec: ModelFacts) -> str:
        return spec.component_classes.get("vae") or self.vae_class_name

    def patch_size(self, spec: ModelFacts) -> int:
        return 2  # the pipeline's _patchify_latents: 2x2 latent patches per token (vae_scale_factor * 2)

    def latent_channels(self, spec: ModelFacts) -> int:
        # the pipeline's num_channels_latents = transformer in_channels // 4 (the VAE's 32)
        in_channels = self.denoiser_config(spec).get("in_channels")
        if in_channels:
            return int(in_channels) // 4
        return int(self.vae_config(spec).get("latent_channels") or 32)

    def native_resolution(self, spec: ModelFacts) -> int:
        return 128 * self.vae_scale_factor(spec)  # the pipelines' default_sample_size

    def vae_decode_dtype(self, spec: ModelFacts, dtype: str) -> str:
        return dtype  # the pipelines decode in the VAE's dtype ('force_upcast' in the released configs is unused)

    def image_tokens(self, spec: ModelFacts, resolution: int) -> int:
        side = self.latent_size(spec, resolution) // 2
        return side * side

    # ------------------------------------------------------------------ text encoder
    def text_encoders(self, spec: ModelFacts) -> list[TextEncoder]:
        if "text_encoder" not in spec.components:
            return []
        cfg = spec.components["text_encoder"]
        default = "Qwen3ForCausalLM" if self.is_klein(spec) else "Mistral3ForConditionalGeneration"
        cls = spec.component_classes.get("text_encoder") or default
        return [_NestedTextEncoder("text_encoder", cls, cfg, self.text_tokens(spec), _label(cls, cfg))]

    def text_tokens(self, spec: ModelFacts) -> int:
        return int(spec.max_sequence_length or MAX_SEQUENCE_LENGTH)

    def encoder_seq_len(self, spec: ModelFacts, component: str, class_name: str, config: dict[str, Any]) -> int:
        return self.text_tokens(spec)

    def hidden_state_layers(self, spec: ModelFacts) -> tuple[int, ...]:
        return HIDDEN_STATE_LAYERS[KLEIN_PIPELINE if self.is_klein(spec) else DEV_PIPELINE]

    def encode(self, spec: ModelFacts, encoder: TextEncoder, module: Any, input_ids: Any) -> Any:
        """As ``_get_mistral_3_small_prompt_embeds`` / ``_get_qwen3_prompt_embeds``: the padded ids with their
        attention mask, all hidden states, no cache; three layers stacked into (B, L, 3 x hidden)."""
        import torch

        mask = torch.zeros_like(input_ids)
        mask[:, : min(PROFILED_PROMPT_TOKENS, input_ids.shape[1])] = 1
        out = module(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
        states = out.hidden_states
        layers = [k for k in self.hidden_state_layers(spec) if k < len(states)] or [len(states) - 1]
        stacked = torch.stack([states[k] for k in layers], dim=1)
        b, n, length, width = stacked.shape
        return stacked.permute(0, 2, 1, 3).reshape(b, length, n * width)

    # ------------------------------------------------------------------ profiling inputs
    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        import torch

        cfg = self.denoiser_config(spec)
        side = self.latent_size(spec, resolution) // 2
        text = self.text_tokens(spec)
        # _prepare_latent_ids: cartesian_prod(T=[0], H, W, L=[0]) per image; _prepare_text_ids: (0, 0, 0, l)
        img_ids = torch.cartesian_prod(torch.arange(1), torch.arange(side), torch.arange(side), torch.arange(1))
        txt_ids = torch.cartesian_prod(torch.arange(1), torch.arange(1), torch.arange(1), torch.arange(text))
        inputs: dict[str, Any] = {
            "hidden_states": torch.randn(batch, side * side, int(cfg.get("in_channels") or 128), device=device,
                                         dtype=dtype),
            "timestep": torch.full((batch,), 0.5, device=device, dtype=dtype),  # t / 1000, in the latents' dtype
            "encoder_hidden_states": torch.randn(batch, text, int(cfg.get("joint_attention_dim") or 15360),
                                                 device=device, dtype=dtype),
            "txt_ids": txt_ids.unsqueeze(0).expand(batch, -1, -1).to(device),
            "img_ids": img_ids.unsqueeze(0).expand(batch, -1, -1).to(device),
        }
        if not self.is_klein(spec):  # Flux2Pipeline always passes the guidance scale (fp32); Klein passes None
            inputs["guidance"] = torch.full((batch,), self.default_guidance, device=device, dtype=torch.float32)
        return inputs

    # ------------------------------------------------------------------ VAE decode
    def decode_latents(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> Any:
        """The packed latents of the denoising loop (B, tokens, 4 x latent channels), which decode unpacks."""
        import torch

        return torch.randn(batch, self.image_tokens(spec, resolution), self.latent_channels(spec) * 4,
                           device=device, dtype=dtype)

    def decode(self, vae: Any, latents: Any) -> Any:
        """As the pipelines after the loop: unpack the tokens onto their grid (row-major, as the position ids lay
        them), undo the batch-norm normalisation, unpatchify 2x2, decode."""
        import torch

        b, tokens, channels = latents.shape
        side = int(round(tokens ** 0.5))
        x = latents.permute(0, 2, 1).reshape(b, channels, side, side)
        mean = vae.bn.running_mean.view(1, -1, 1, 1).to(x.device, x.dtype)
        std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).to(x.device, x.dtype)
        x = x * std + mean
        x = x.reshape(b, channels // 4, 2, 2, side, side).permute(0, 1, 4, 2, 5, 3)
        x = x.reshape(b, channels // 4, side * 2, side * 2)
        return vae.decode(x, return_dict=False)[0]

    # ------------------------------------------------------------------ schedule
    def timestep_kwargs(self, spec: ModelFacts, scheduler: Any, resolution: int,
                        steps: int | None = None) -> dict[str, Any]:
        """``mu`` as the pipelines compute it: ``compute_empirical_mu(image tokens, steps)`` (it depends on the step
        count; without one, the model's default steps or the pipelines' 50). A scheduler without dynamic shifting
        ignores it (FlowMatchEuler) or refuses it (DPM-Solver), so it gets none."""
        if not getattr(scheduler.config, "use_dynamic_shifting", False):
            return {}
        from diffusers.pipelines.flux2.pipeline_flux2 import compute_empirical_mu

        n = int(steps or getattr(spec, "default_steps", None) or DEFAULT_STEPS)
        return {"mu": compute_empirical_mu(image_seq_len=self.image_tokens(spec, resolution), num_steps=n)}

    # ------------------------------------------------------------------ generation
    def call_kwargs(self, spec: ModelFacts, guidance: float, n: int) -> dict[str, Any]:
        return {"guidance_scale": guidance, "max_sequence_length": self.text_tokens(spec)}


def _label(class_name: str, config: dict[str, Any]) -> str:
    """'Mistral-Small-3' (5120 wide), 'Qwen3-4B' (2560) / 'Qwen3-8B' (4096), else the class and width."""
    inner = config.get("text_config") or {}
    width = int(config.get("hidden_size") or inner.get("hidden_size") or 0)
    if class_name.startswith("Mistral3"):
        return "Mistral-Small-3" if width == 5120 else f"Mistral3-{width}"
    if class_name.startswith("Qwen3"):
        return {2560: "Qwen3-4B", 4096: "Qwen3-8B"}.get(width, f"Qwen3-{width}")
    return class_name


def _index_flag(spec: ModelFacts, key: str) -> bool:
    """A pipeline argument of the model folder's model_index.json (``is_distilled``), False when unreadable."""
    path = getattr(spec, "path", None)
    if path is None:
        return False
    from ldmpick.files.errors import LdmpickError
    from ldmpick.files.reader import read_json_file

    try:
        index = read_json_file(path / "model_index.json", "model_index.json", max_bytes=MAX_INDEX_BYTES)
    except (LdmpickError, OSError):
        return False
    return isinstance(index, dict) and index.get(key) is True


FAMILY = Flux2()
