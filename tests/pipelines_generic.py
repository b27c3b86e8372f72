"""Tiny random AuraFlow and Lumina-Next pipelines, for which ldmpick has no family adapter; nothing is downloaded.

    build_auraflow(folder)    # an AuraFlowPipeline folder, safetensors only
    AuraFlowPipeline.from_pretrained(folder, local_files_only=True, use_safetensors=True)(
        "a cat", num_inference_steps=2, height=GENERIC_RESOLUTION["AuraFlowPipeline"], width=...)

They stand for the pipelines ldmpick only knows through their own ``__call__`` (the generic family). Each keeps the
released model's classes and wiring, with the widths and depths of diffusers' own fast tests
(tests/pipelines/aura_flow/test_pipeline_aura_flow.py and tests/pipelines/lumina/test_lumina_nextdit.py):

* ``AuraFlowPipeline``: ``AuraFlowTransformer2DModel`` (1 MMDiT + 1 single-DiT layer, 4 heads of 8, patch 2,
  learned positions over a 16x16 grid), a ``UMT5EncoderModel`` whose width (32) is the transformer's
  ``joint_attention_dim``, the T5 tokenizer of ``family_pipelines``, an f8 4-channel ``AutoencoderKL`` with the SDXL
  VAE's scaling (fal/AuraFlow ships that VAE; diffusers' test uses an f2 one), and ``FlowMatchEulerDiscreteScheduler``
  with its defaults (as the test).
* ``LuminaPipeline``: ``LuminaNextDiT2DModel`` (2 layers, 1 head of 4, patch 2, learned sigma: the pipeline keeps the
  first half of the output channels), a ``GemmaForCausalLM`` (2 layers: the pipeline takes ``hidden_states[-2]``;
  width 8 = the transformer's ``cross_attention_dim``) over the Gemma tokenizer of ``family_pipelines``, an f8
  4-channel ``AutoencoderKL`` with the SDXL VAE's scaling (the pipeline hard-codes the factor 8; diffusers' test uses
  the one-level default VAE, whose images come out 8x smaller than asked), and ``FlowMatchEulerDiscreteScheduler``.
  diffusers makes the transformer's unused ``pad_token`` with ``torch.empty`` and never initialises it; the builder
  zeroes it, so that a seed fixes every saved byte.

Every builder runs its pipeline once (2 steps at ``GENERIC_RESOLUTION``, guidance 5) before saving, so a folder it
returns is known to generate.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from family_pipelines import _kl_vae_f8, supported_families, tiny_gemma_tokenizer, tiny_t5_tokenizer
except ModuleNotFoundError:  # imported from outside tests/: the sibling module by path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from family_pipelines import _kl_vae_f8, supported_families, tiny_gemma_tokenizer, tiny_t5_tokenizer

# pipeline class -> (it, the other diffusers classes its folder needs)
REQUIRED_CLASSES: dict[str, tuple[str, ...]] = {
    "AuraFlowPipeline": ("AuraFlowPipeline", "AuraFlowTransformer2DModel", "AutoencoderKL",
                         "FlowMatchEulerDiscreteScheduler"),
    "LuminaPipeline": ("LuminaPipeline", "LuminaNextDiT2DModel", "AutoencoderKL", "FlowMatchEulerDiscreteScheduler"),
}
# A small square side each pipeline generates at as asked: both need multiples of 16 (f8 latents, 2x2 patches);
# 32 px is a 4x4 latent, 2x2 image tokens. For Lumina it is also the default size (sample_size 4 x 8), so its
# resolution-dependent RoPE scaling stays at 1.
GENERIC_RESOLUTION: dict[str, int] = {"AuraFlowPipeline": 32, "LuminaPipeline": 32}

PIPELINE_CLASSES: tuple[str, ...] = supported_families(REQUIRED_CLASSES)
"""The pipeline classes of this module that this diffusers has."""


def build_auraflow(folder: Path, seed: int = 0) -> Path:
    """Build a tiny random AuraFlowPipeline, check that it generates, save it to ``folder`` (safetensors), return
    the folder. The same seed gives the same weights; the global torch RNG is left as it was."""
    return _build("AuraFlowPipeline", _auraflow, Path(folder), seed)


def build_lumina_next(folder: Path, seed: int = 0) -> Path:
    """Build a tiny random LuminaPipeline (Lumina-Next), check that it generates, save it to ``folder``
    (safetensors), return the folder. The same seed gives the same weights; the global torch RNG is left as it was."""
    return _build("LuminaPipeline", _lumina_next, Path(folder), seed)


GENERIC_BUILDERS: dict[str, Callable[..., Path]] = {
    "AuraFlowPipeline": build_auraflow, "LuminaPipeline": build_lumina_next,
}


def _build(pipeline_class: str, make: Callable[[], Any], folder: Path, seed: int) -> Path:
    if pipeline_class not in PIPELINE_CLASSES:
        raise ValueError(f"{pipeline_class} needs diffusers classes this version lacks: "
                         f"{', '.join(REQUIRED_CLASSES[pipeline_class])}")
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = make()
        pipe.set_progress_bar_config(disable=True)
        side = GENERIC_RESOLUTION[pipeline_class]
        image = pipe("a photo of a cat", num_inference_steps=2, height=side, width=side, guidance_scale=5.0,
                     generator=torch.Generator().manual_seed(seed), output_type="pil").images[0]
    if image.size != (side, side):
        raise RuntimeError(f"the tiny {pipeline_class} made a {image.size} image, not {side}x{side}")
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _auraflow():
    from diffusers import AuraFlowPipeline, AuraFlowTransformer2DModel, FlowMatchEulerDiscreteScheduler
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = tiny_t5_tokenizer()
    # Pile-T5-XL (2048 wide) in the released model; diffusers' test loads hf-internal-testing/tiny-random-umt5
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))
    transformer = AuraFlowTransformer2DModel(
        sample_size=32, patch_size=2, in_channels=4, out_channels=4, num_mmdit_layers=1, num_single_dit_layers=1,
        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32,
        pos_embed_max_size=256,
    )
    vae = _kl_vae_f8(latent_channels=4, scaling_factor=0.13025)  # the SDXL VAE's latent scaling
    return AuraFlowPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                            scheduler=FlowMatchEulerDiscreteScheduler())


def _lumina_next():
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, LuminaNextDiT2DModel, LuminaPipeline
    from transformers import GemmaConfig, GemmaForCausalLM

    tokenizer = tiny_gemma_tokenizer()
    # Gemma-2B (2048 wide = the transformer's cross_attention_dim) in the released model
    text_encoder = GemmaForCausalLM(GemmaConfig(
        vocab_size=len(tokenizer), hidden_size=8, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, head_dim=2, max_position_embeddings=8192, pad_token_id=0, eos_token_id=1,
        bos_token_id=2,
    ))
    transformer = LuminaNextDiT2DModel(
        sample_size=4, patch_size=2, in_channels=4, hidden_size=4, num_layers=2, num_attention_heads=1,
        num_kv_heads=1, multiple_of=16, ffn_dim_multiplier=None, norm_eps=1e-5, learn_sigma=True, qk_norm=True,
        cross_attention_dim=8, scaling_factor=1.0,
    )
    with torch.no_grad():  # made with torch.empty and never initialised (nor used): fixed, so a seed fixes the bytes
        transformer.pad_token.zero_()
    vae = _kl_vae_f8(latent_channels=4, scaling_factor=0.13025)  # the SDXL VAE Lumina-Next ships
    return LuminaPipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
                          text_encoder=text_encoder, tokenizer=tokenizer)
