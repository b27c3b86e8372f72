"""Tiny random Lumina-Image-2.0 and CogView4 pipelines, built in code and saved to a folder; nothing is downloaded.

    build_pipeline("lumina2", folder)    # a Lumina2Pipeline folder, safetensors only
    DiffusionPipeline.from_pretrained(folder, local_files_only=True, use_safetensors=True)(
        "a cat", num_inference_steps=2, height=tiny_resolution("lumina2"), width=tiny_resolution("lumina2"))

Each keeps the released model's architecture, cut down to a few channels (the imitated configs:
shared/reference/real_models/configs/lumina-image-2.0 and cogview4-6b):

* ``lumina2``: ``Lumina2Pipeline`` = ``Lumina2Transformer2DModel`` (patch 2, 16 latent channels, noise and context
  refiners, 3-axis RoPE whose axes add up to the head width, caption width = the text encoder's), a ``Gemma2Model``
  over the Gemma tokenizer of ``family_pipelines`` (right padding, as the pipeline sets it), the FLUX-style
  16-channel ``AutoencoderKL`` with four levels (the pipeline's hard-coded factor 8) with scaling and shift, and
  ``FlowMatchEulerDiscreteScheduler`` with the static shift 6.
* ``cogview4``: ``CogView4Pipeline`` = ``CogView4Transformer2DModel`` (patch 2, 16 latent channels, size/crop
  conditioning), a ``GlmModel`` (partial rotary, qkv bias, grouped KV heads) over a GLM-4-like tokenizer made here
  (a byte-free BPE over characters whose post-processor puts ``[gMASK]<sop>`` first, ``<|endoftext|>`` as the pad
  token, left padding: the layout of THUDM's tokenizer), a four-level 16-channel ``AutoencoderKL`` (scaling 1, no
  shift) and ``FlowMatchEulerDiscreteScheduler`` with CogView4's resolution-dependent linear time shift.

Building and saving takes well under a second; a 2-step generation at ``tiny_resolution`` a fraction of one.
"""

from __future__ import annotations

import string
import sys
from pathlib import Path
from typing import Any, Callable

try:
    from family_pipelines import _gemma2, _kl_vae_f8, check_family, supported_families, tiny_gemma_tokenizer
except ModuleNotFoundError:  # imported from outside tests/: the sibling module by path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from family_pipelines import _gemma2, _kl_vae_f8, check_family, supported_families, tiny_gemma_tokenizer

# family -> (the diffusers pipeline class it saves, the other diffusers classes it needs)
REQUIRED_CLASSES: dict[str, tuple[str, ...]] = {
    "lumina2": ("Lumina2Pipeline", "Lumina2Transformer2DModel", "AutoencoderKL", "FlowMatchEulerDiscreteScheduler"),
    "cogview4": ("CogView4Pipeline", "CogView4Transformer2DModel", "AutoencoderKL",
                 "FlowMatchEulerDiscreteScheduler"),
}
# 64 px: an 8x8 latent, 4x4 = 16 image tokens after the 2x2 patches (both pipelines take multiples of 16)
TINY_RESOLUTION = 64
# the ldmpick family each tiny pipeline must be recognised as
ADAPTER = {"lumina2": "lumina2", "cogview4": "cogview4"}


FAMILIES: tuple[str, ...] = supported_families(REQUIRED_CLASSES)
"""The families this diffusers can build."""


def pipeline_class_name(family: str) -> str:
    _check(family)
    return REQUIRED_CLASSES[family][0]


def tiny_resolution(family: str) -> int:
    _check(family)
    return TINY_RESOLUTION


def build_pipeline(family: str, folder: Path, seed: int = 0) -> Path:
    """Build a tiny random pipeline of ``family`` ("lumina2" or "cogview4"), save it to ``folder`` with safetensors,
    return the folder. The same seed gives the same weights; the global torch RNG is left as it was."""
    _check(family)
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} needs diffusers classes this version lacks: "
                         f"{', '.join(REQUIRED_CLASSES[family])}")
    import torch

    folder = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = _BUILDERS[family]()
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _check(family: str) -> None:
    check_family(family, REQUIRED_CLASSES)


# ----------------------------------------------------------------------------------------------- tokenizers

_CHARS = string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation
GLM_SPECIAL = ("<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>")  # GLM-4's, in its id order


def tiny_glm_tokenizer(model_max_length: int = 8192):  # -> transformers.PreTrainedTokenizerFast
    """A GLM-4-like tokenizer: BPE over single characters (space included) with a few merges; encoding a prompt
    gives ``[gMASK] <sop> ...`` as THUDM's does; ``<|endoftext|>`` pads, on the left. No download."""
    from tokenizers import Tokenizer, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for tok in GLM_SPECIAL:
        vocab[tok] = len(vocab)
    for c in " " + _CHARS:
        vocab.setdefault(c, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in (" cat", " dog", " the", " red"):
        left = word[0]
        for c in word[1:]:
            merges.append((left, c))
            left += c
            vocab.setdefault(left, len(vocab))
    backend = Tokenizer(BPE(vocab=vocab, merges=merges))
    backend.add_special_tokens(list(GLM_SPECIAL))
    backend.post_processor = processors.TemplateProcessing(
        single="[gMASK] <sop> $A", pair="[gMASK] <sop> $A $B",
        special_tokens=[("[gMASK]", vocab["[gMASK]"]), ("<sop>", vocab["<sop>"])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   padding_side="left", model_max_length=model_max_length)


# ------------------------------------------------------------------------------------------------- families

def _build_lumina2():
    from diffusers import FlowMatchEulerDiscreteScheduler, Lumina2Pipeline, Lumina2Transformer2DModel

    tokenizer = tiny_gemma_tokenizer()
    text_encoder = _gemma2(tokenizer, hidden_size=16)  # Gemma-2-2B (2304 wide = the transformer's cap_feat_dim)
    transformer = Lumina2Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=16, hidden_size=32, num_layers=1, num_refiner_layers=1,
        num_attention_heads=2, num_kv_heads=1, multiple_of=16, ffn_dim_multiplier=None, norm_eps=1e-5,
        scaling_factor=1.0, axes_dim_rope=(8, 4, 4),  # adds up to the head width 32 / 2
        axes_lens=(300, 512, 512), cap_feat_dim=16,
    )
    vae = _kl_vae_f8(latent_channels=16, use_quant_conv=False, use_post_quant_conv=False, force_upcast=True,
                     scaling_factor=0.3611, shift_factor=0.1159)  # the FLUX VAE Lumina-Image-2.0 ships
    scheduler = FlowMatchEulerDiscreteScheduler(shift=6.0, use_dynamic_shifting=False, base_shift=0.5,
                                                max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    return Lumina2Pipeline(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                           tokenizer=tokenizer)


def _glm(tokenizer, hidden_size: int):
    """A GLM-4 decoder stack (GlmModel, no LM head: what CogView4 ships) over ``tokenizer``."""
    from transformers import GlmConfig, GlmModel

    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = GlmConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, attention_bias=True, partial_rotary_factor=0.5,
        max_position_embeddings=8192, pad_token_id=pad, eos_token_id=pad, tie_word_embeddings=False,
    )
    return GlmModel(config)


def _build_cogview4():
    from diffusers import CogView4Pipeline, CogView4Transformer2DModel, FlowMatchEulerDiscreteScheduler

    tokenizer = tiny_glm_tokenizer()
    text_encoder = _glm(tokenizer, hidden_size=32)  # GLM-4-9B (4096 wide = the transformer's text_embed_dim)
    transformer = CogView4Transformer2DModel(
        patch_size=2, in_channels=16, out_channels=16, num_layers=1, attention_head_dim=8, num_attention_heads=2,
        text_embed_dim=32, time_embed_dim=16, condition_dim=4, pos_embed_max_size=16, sample_size=8,
        rope_axes_dim=(16, 16),
    )
    vae = _kl_vae_f8(latent_channels=16, use_quant_conv=False, use_post_quant_conv=False, force_upcast=True,
                     mid_block_add_attention=False, scaling_factor=1.0, shift_factor=0.0)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=True, time_shift_type="linear",
                                                base_shift=0.25, max_shift=0.75, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    return CogView4Pipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                            scheduler=scheduler)


_BUILDERS: dict[str, Callable[[], Any]] = {"lumina2": _build_lumina2, "cogview4": _build_cogview4}
