"""Tiny random Qwen-Image and Z-Image(-Turbo) pipelines, saved to a folder; nothing is downloaded.

    build_qwen_z_pipeline("qwen-image", folder)    # a QwenImagePipeline folder, safetensors only
    DiffusionPipeline.from_pretrained(folder, local_files_only=True, use_safetensors=True)(
        "a red cat", num_inference_steps=2, height=tiny_resolution("qwen-image"), width=...)

Both keep the released models' architecture (``shared/reference/real_models/configs/qwen-image`` and
``z-image-turbo``): the same pipeline, denoiser, text-encoder, tokenizer, VAE and scheduler classes, wired the way
the checkpoints are, with widths and depths cut down:

* Qwen-Image: ``QwenImageTransformer2DModel`` over 2x2-packed latents (in_channels = 4 x z_dim), a
  ``Qwen2_5_VLForConditionalGeneration`` text encoder (with its small vision tower, which text-to-image never runs),
  the Wan-style causal ``AutoencoderKLQwenImage`` with three downsampling levels (factor 8, as released) and its
  per-channel ``latents_mean`` / ``latents_std``, and the released FlowMatchEuler scheduler config (exponential
  dynamic shifting, base/max image sequence 256/8192, shift 0.5/0.9, shift_terminal 0.02).
* Z-Image-Turbo: ``ZImageTransformer2DModel`` (patch 2, noise and context refiners), a ``Qwen3Model`` encoder
  (two layers: the pipeline takes ``hidden_states[-2]``), an f8 16-channel ``AutoencoderKL`` with the FLUX scaling
  and shift factors, and the released static-shift (3.0) FlowMatchEuler scheduler.

The tokenizer is a ``Qwen2Tokenizer`` (byte-level BPE, as both models ship) over the 256 byte symbols, a few merges
and Qwen's special tokens, built in code. Its merges make Qwen-Image's system prompt tokenize the way Qwen's real
tokenizer does: the template's prefix is exactly ``QwenImagePipeline.prompt_template_encode_start_idx`` (34)
tokens, which the pipeline drops. Z-Image's tokenizer carries the part of Qwen3's chat template its pipeline uses
(one user message, ``add_generation_prompt``, ``enable_thinking``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

try:
    from family_pipelines import check_family, supported_families
except ModuleNotFoundError:  # imported from outside tests/: the sibling module by path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from family_pipelines import check_family, supported_families

_REQUIRED_CLASSES: dict[str, tuple[str, ...]] = {
    "qwen-image": ("QwenImagePipeline", "QwenImageTransformer2DModel", "AutoencoderKLQwenImage",
                   "FlowMatchEulerDiscreteScheduler"),
    "z-image": ("ZImagePipeline", "ZImageTransformer2DModel", "AutoencoderKL", "FlowMatchEulerDiscreteScheduler"),
}
# smallest square sides both pipelines take as they are: VAE factor 8 x 2x2 packing
_TINY_RESOLUTION: dict[str, int] = {"qwen-image": 32, "z-image": 32}

# Qwen's special tokens (ids follow the vocabulary; the real ones are 151643...)
_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
            "<|image_pad|>", "<|video_pad|>")
# whole-word tokens: the words of Qwen-Image's system prompt and the chat roles (one token each, as in Qwen's
# vocabulary), and a few prompt words; "Ġ" is the byte-level BPE's space
_WORDS = ("system", "user", "assistant", "Describe") + tuple(
    "Ġ" + w for w in ("the image by detailing color shape size texture quantity text spatial relationships of objects "
                      "and background a red cat dog photo of in on with blue green house tree sky").split())

# Qwen3's chat template (tokenizer_config.json of Qwen3 / Z-Image-Turbo), the branch of it a plain list of
# role/content messages takes: what ZImagePipeline._encode_prompt renders
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)


FAMILIES: tuple[str, ...] = supported_families(_REQUIRED_CLASSES)
"""The families of this module this diffusers can build."""


def pipeline_class_name(family: str) -> str:
    _check_family(family)
    return _REQUIRED_CLASSES[family][0]


def tiny_resolution(family: str) -> int:
    _check_family(family)
    return _TINY_RESOLUTION[family]


def _check_family(family: str) -> None:
    check_family(family, _REQUIRED_CLASSES)


def build_qwen_z_pipeline(family: str, folder: Path, seed: int = 0, **options: Any) -> Path:
    """Build a tiny random pipeline of ``family`` ("qwen-image" or "z-image"), save it to ``folder`` (safetensors
    only) and return the folder. The same family and seed give the same weights; the global torch RNG is left as
    it was.

    Options: ``scheduler`` (a diffusers scheduler class name saved instead of the family's, made with
    ``from_config``).
    """
    _check_family(family)
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} needs diffusers classes this version lacks: "
                         f"{', '.join(_REQUIRED_CLASSES[family])}")
    allowed = {"scheduler"}
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"unknown option(s) for family {family!r}: {', '.join(sorted(unknown))} "
                        f"(known: {', '.join(sorted(allowed))})")
    import diffusers
    import torch

    scheduler = options.pop("scheduler", None)
    if scheduler is not None and not (isinstance(scheduler, str) and scheduler.endswith("Scheduler")
                                      and hasattr(diffusers, scheduler)):
        raise ValueError(f"scheduler must name a diffusers scheduler class, got {scheduler!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = _build_qwen_image() if family == "qwen-image" else _build_z_image()
    if scheduler:
        pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config)
    folder = Path(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


# ----------------------------------------------------------------------------------------------- tokenizer

def tiny_qwen2_tokenizer(chat_template: str | None = None):  # -> transformers.Qwen2Tokenizer
    """A Qwen2 tokenizer: byte-level BPE over the 256 byte symbols, merges for ``_WORDS``, Qwen's special tokens."""
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    vocab: dict[str, int] = {}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    merges: list[tuple[str, str]] = []
    for word in _WORDS:  # left to right: "Ġ"+"t", "Ġt"+"h", "Ġth"+"e"
        left = word[0]
        for c in word[1:]:
            if (left, c) not in merges:
                merges.append((left, c))
            left += c
            vocab.setdefault(left, len(vocab))
    for token in _SPECIAL:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, additional_special_tokens=list(_SPECIAL[1:]),
                               model_max_length=32768)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


# ---------------------------------------------------------------------------------------------- Qwen-Image

def _qwen25_vl(tokenizer, hidden_size: int = 32):
    """A Qwen2.5-VL (text decoder + a one-block vision tower) over ``tokenizer``, as Qwen-Image's text encoder."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _SPECIAL}
    heads = 2
    half_head = hidden_size // heads // 2  # M-RoPE splits half a head's rotary dims over (time, height, width)
    text_config = dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=2,
        num_attention_heads=heads, num_key_value_heads=1, max_position_embeddings=2048, rope_theta=1000000.0,
        rope_scaling={"mrope_section": [half_head - 2 * (half_head // 3), half_head // 3, half_head // 3],
                      "rope_type": "default", "type": "default"},
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=hidden_size,
                           fullatt_block_indexes=[0]),
        vocab_size=len(tokenizer), hidden_size=hidden_size,
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        vision_token_id=ids["<|vision_pad|>"], image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], tie_word_embeddings=False,
    )
    return Qwen2_5_VLForConditionalGeneration(config).eval()


# the released latents_mean / latents_std of Qwen-Image's VAE (vae/config.json), 16 channels
QWEN_LATENTS_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517,
                     -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
QWEN_LATENTS_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
                    1.6382, 1.1253, 2.8251, 1.916]


def _build_qwen_image():
    from diffusers import (AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImagePipeline,
                           QwenImageTransformer2DModel)

    tokenizer = tiny_qwen2_tokenizer()
    text_encoder = _qwen25_vl(tokenizer, hidden_size=32)
    z_dim = 16
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=4 * z_dim, out_channels=z_dim, num_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, guidance_embeds=False, axes_dims_rope=(8, 4, 4),
    )
    vae = AutoencoderKLQwenImage(  # released: base_dim 96, dim_mult [1, 2, 4, 4], 2 res blocks
        base_dim=8, z_dim=z_dim, dim_mult=[1, 2, 4, 4], num_res_blocks=1, attn_scales=[],
        temperal_downsample=[False, True, True], latents_mean=QWEN_LATENTS_MEAN, latents_std=QWEN_LATENTS_STD,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(  # Qwen-Image's scheduler/scheduler_config.json
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
        base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02, time_shift_type="exponential",
    )
    return QwenImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                             transformer=transformer)


# ------------------------------------------------------------------------------------------------- Z-Image

def _qwen3(tokenizer, hidden_size: int = 32):
    """A Qwen3 decoder stack (Z-Image's text encoder, ``Qwen3Model``: no LM head) over ``tokenizer``."""
    from transformers import Qwen3Config, Qwen3Model

    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=1024,
        rope_theta=1000000.0, tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    return Qwen3Model(config).eval()


def _build_z_image():
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel

    tokenizer = tiny_qwen2_tokenizer(chat_template=QWEN3_CHAT_TEMPLATE)
    text_encoder = _qwen3(tokenizer, hidden_size=32)
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=1, n_refiner_layers=1,
        n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True, cap_feat_dim=32, rope_theta=256.0, t_scale=1000.0,
        axes_dims=[8, 4, 4], axes_lens=[1536, 512, 512],
    )
    with torch.no_grad():  # the pad tokens start as torch.empty: random values, never NaN garbage, get saved
        transformer.x_pad_token.copy_(torch.randn_like(transformer.x_pad_token))
        transformer.cap_pad_token.copy_(torch.randn_like(transformer.cap_pad_token))
    vae = AutoencoderKL(  # FLUX.1's f8c16 autoencoder layout (four levels), a few channels
        in_channels=3, out_channels=3, latent_channels=16,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 8, 8, 8), layers_per_block=1, norm_num_groups=4, sample_size=64,
        use_quant_conv=False, use_post_quant_conv=False, scaling_factor=0.3611, shift_factor=0.1159,
        force_upcast=True,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, use_dynamic_shifting=False, shift=3.0)
    return ZImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                          transformer=transformer)
