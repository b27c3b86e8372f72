"""Tiny random diffusers text-to-image pipelines of every backbone family, saved to a folder; nothing is downloaded.

    build_family_pipeline("flux", folder, guidance_embeds=True)   # a FluxPipeline folder (dev-like), safetensors only
    DiffusionPipeline.from_pretrained(folder, local_files_only=True, use_safetensors=True)(
        "a cat", num_inference_steps=2, height=tiny_resolution("flux"), width=tiny_resolution("flux"))

Every family keeps the real model's architecture (the same pipeline, denoiser, text-encoder, tokenizer, VAE and
scheduler classes, wired the way the released checkpoints are: two CLIP encoders whose hidden sizes add up to the
SDXL UNet's cross-attention width, SD3's CLIP-L + CLIP-G + T5 joint embedding, Flux's 2x2 latent packing, Sana's
deep-compression autoencoder, ...) with widths and depths cut down until building and saving takes well under a
second and a 2-step generation at ``tiny_resolution(family)`` a fraction of a second on a CPU.

Tokenizers are built in code: the CLIP one comes from ``tiny_pipeline.tiny_tokenizer()``; T5 (a Unigram model)
and Gemma (a byte-fallback BPE model) are made from a small vocabulary written here, through the classes the real
models use, so the saved ``tokenizer.json`` loads back offline.

Families whose pipeline classes this diffusers lacks are left out of ``FAMILIES``.
"""

from __future__ import annotations

import string
import sys
from pathlib import Path
from typing import Any, Callable

try:
    from tiny_pipeline import TINY_VAE, build_tiny_pipeline, tiny_tokenizer
except ModuleNotFoundError:  # imported from outside tests/ (a script, a bench): the sibling module by path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tiny_pipeline import TINY_VAE, build_tiny_pipeline, tiny_tokenizer

# family -> (the diffusers pipeline class it saves, the other diffusers classes it needs)
_REQUIRED_CLASSES: dict[str, tuple[str, ...]] = {
    "sd": ("StableDiffusionPipeline", "UNet2DConditionModel", "AutoencoderKL"),
    "lcm": ("LatentConsistencyModelPipeline", "UNet2DConditionModel", "AutoencoderKL", "LCMScheduler"),
    "sdxl": ("StableDiffusionXLPipeline", "UNet2DConditionModel", "AutoencoderKL", "EulerDiscreteScheduler"),
    "pixart": ("PixArtSigmaPipeline", "PixArtTransformer2DModel", "AutoencoderKL", "DPMSolverMultistepScheduler"),
    "sd3": ("StableDiffusion3Pipeline", "SD3Transformer2DModel", "AutoencoderKL", "FlowMatchEulerDiscreteScheduler"),
    "flux": ("FluxPipeline", "FluxTransformer2DModel", "AutoencoderKL", "FlowMatchEulerDiscreteScheduler"),
    "sana": ("SanaPipeline", "SanaTransformer2DModel", "AutoencoderDC", "DPMSolverMultistepScheduler"),
    "sana-sprint": ("SanaSprintPipeline", "SanaTransformer2DModel", "AutoencoderDC", "SCMScheduler"),
}

# A small image side each pipeline accepts as is. PixArt-Sigma and Sana(-Sprint) snap the requested size to an
# aspect-ratio bin table chosen by the transformer's sample_size (use_resolution_binning=True, the default), generate
# there and resize back; their tiny sides are therefore the smallest square bins (sample_size 32 -> the 256 px table,
# 16 -> 512 px, Sprint only knows 32 -> 1024 px), reached with real-sized latent grids through f8 / f32 autoencoders.
_TINY_RESOLUTION: dict[str, int] = {
    "sd": 16, "lcm": 16, "sdxl": 32, "pixart": 256, "sd3": 64, "flux": 64, "sana": 512, "sana-sprint": 1024,
}


def supported_families(required: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The families of ``required`` (family -> the diffusers classes it needs) that this diffusers has, in order
    (the builders of tests/pipelines_*.py use it too)."""
    try:
        import diffusers
    except ImportError:
        return ()
    return tuple(f for f, names in required.items() if all(hasattr(diffusers, n) for n in names))


def check_family(family: str, known: Any) -> None:
    """A one-line ValueError for a family no builder of this module makes."""
    if family not in known:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(known)}")


FAMILIES: tuple[str, ...] = supported_families(_REQUIRED_CLASSES)
"""The families this diffusers can build, in a fixed order (UNet families first)."""


def pipeline_class_name(family: str) -> str:
    """The diffusers pipeline class a family's folder names in model_index.json (e.g. "FluxPipeline")."""
    _check_family(family)
    return _REQUIRED_CLASSES[family][0]


def tiny_resolution(family: str) -> int:
    """A small square image side that ``family``'s pipeline generates at directly (no snapping, no resizing)."""
    _check_family(family)
    return _TINY_RESOLUTION[family]


def build_family_pipeline(family: str, folder: Path, seed: int = 0, **options: Any) -> Path:
    """Build a tiny random pipeline of ``family``, save it to ``folder`` (safetensors only), return the folder.

    The same family and seed give the same weights, byte for byte; the global torch RNG is left as it was.

    Options:
        scheduler (str): a diffusers scheduler class name to save instead of the family's default; it is made with
            ``from_config`` of the default one (for "sd", ``tiny_pipeline.build_tiny_pipeline`` makes it).
        guidance_embeds (bool, "flux" only): False (default) for a schnell-like model (no guidance embedder,
            static shift 1), True for a dev-like one (distilled guidance embedder, resolution-dependent shift).
    """
    _check_family(family)
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} needs diffusers classes this version lacks: "
                         f"{', '.join(_REQUIRED_CLASSES[family])}")
    allowed = {"scheduler"} | ({"guidance_embeds"} if family == "flux" else set())
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"unknown option(s) for family {family!r}: {', '.join(sorted(unknown))} "
                        f"(known: {', '.join(sorted(allowed))})")
    import diffusers
    import torch

    folder = Path(folder)
    scheduler = options.pop("scheduler", None)
    if scheduler is not None and not (isinstance(scheduler, str) and scheduler.endswith("Scheduler")
                                      and hasattr(diffusers, scheduler)):
        raise ValueError(f"scheduler must name a diffusers scheduler class, got {scheduler!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "sd":
            return build_tiny_pipeline(folder, seed=seed, **({"scheduler": scheduler} if scheduler else {}))
        pipe = _BUILDERS[family](**options)
    if scheduler:
        pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _check_family(family: str) -> None:
    check_family(family, _REQUIRED_CLASSES)


# ----------------------------------------------------------------------------------------------- tokenizers

def _transformers_major() -> int:
    try:
        import transformers
    except ImportError:
        return 0
    return int(transformers.__version__.split(".")[0])


# transformers 5 merged the slow/fast tokenizer pairs (T5TokenizerFast is T5Tokenizer, backed by `tokenizers`, and it
# builds its backend from a vocabulary); transformers 4's fast classes take a ready `tokenizers.Tokenizer` instead.
_TRANSFORMERS_5 = _transformers_major() >= 5

_CHARS = string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation
_WORDS = ("a", "an", "the", "of", "in", "on", "with", "and", "photo", "painting", "portrait", "cat", "dog", "red",
          "blue", "green", "house", "tree", "sky", "city", "high", "quality", "detailed", "image", "prompt")


def tiny_t5_tokenizer(model_max_length: int = 512):  # -> transformers.T5TokenizerFast
    """A T5 tokenizer (Unigram over "▁"-prefixed words and single characters, no sentinels); no download."""
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + w, -4.0) for w in _WORDS]
    pieces += [(c, -8.0) for c in _CHARS]
    special = dict(eos_token="</s>", unk_token="<unk>", pad_token="<pad>", model_max_length=model_max_length)
    if _TRANSFORMERS_5:  # the tokenizer class builds its own Unigram backend from a vocabulary
        from transformers import T5Tokenizer

        return T5Tokenizer(vocab=pieces, extra_ids=0, **special)
    else:  # transformers 4: a T5TokenizerFast around a tokenizers.Tokenizer made here
        from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
        from tokenizers.models import Unigram
        from transformers import T5TokenizerFast

        backend = Tokenizer(Unigram(pieces, unk_id=2))
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        backend.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                               special_tokens=[("</s>", 1)])
        return T5TokenizerFast(tokenizer_object=backend, extra_ids=0, **special)


def tiny_gemma_tokenizer(model_max_length: int = 8192):  # -> transformers.GemmaTokenizerFast
    """A Gemma tokenizer (BPE with byte fallback over single characters, a few merges); no download."""
    vocab: dict[str, int] = {}
    for tok in ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + [f"<0x{b:02X}>" for b in range(256)] + ["▁"]:
        vocab[tok] = len(vocab)
    for c in _CHARS:
        vocab.setdefault(c, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in ("cat", "dog", "the"):  # "▁c" + "a" ... "▁ca" + "t": enough to exercise merging
        left = "▁"
        for c in word:
            merges.append((left, c))
            left += c
            vocab.setdefault(left, len(vocab))
    special = dict(unk_token="<unk>", bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", mask_token="<mask>",
                   model_max_length=model_max_length, add_bos_token=True)  # <bos> first, as Gemma's own tokenizer
    if _TRANSFORMERS_5:
        from transformers import GemmaTokenizer

        return GemmaTokenizer(vocab=vocab, merges=merges, **special)
    else:  # transformers 4: a GemmaTokenizerFast around a tokenizers.Tokenizer made here
        from tokenizers import Tokenizer, decoders, normalizers, processors
        from tokenizers.models import BPE
        from transformers import GemmaTokenizerFast

        backend = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
        backend.normalizer = normalizers.Replace(" ", "▁")
        backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
        backend.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                               special_tokens=[("<bos>", 2)])
        return GemmaTokenizerFast(tokenizer_object=backend, **special)


# ------------------------------------------------------------------------------------------- text encoders

def _clip(tokenizer, hidden_size: int, projection_dim: int | None = None, layers: int = 2):
    """A CLIP text encoder over ``tokenizer``: CLIPTextModel, or CLIPTextModelWithProjection if projection_dim."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu",
        projection_dim=projection_dim or hidden_size,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"), eos_token_id=eos, pad_token_id=eos,
    )
    return (CLIPTextModelWithProjection if projection_dim else CLIPTextModel)(config)


def _t5(tokenizer, d_model: int):
    """A T5 v1.1-style encoder (gated GELU) over ``tokenizer``."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=1, num_heads=d_model // 8,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    return T5EncoderModel(config)


def _gemma2(tokenizer, hidden_size: int):
    """A Gemma-2 decoder stack (the Sana text encoder) over ``tokenizer``."""
    from transformers import Gemma2Config, Gemma2Model

    config = Gemma2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=8192,
        pad_token_id=0, eos_token_id=1, bos_token_id=2, attn_implementation="eager",
    )
    return Gemma2Model(config)


# ---------------------------------------------------------------------------------------------- autoencoders

def _kl_vae_f8(latent_channels: int, **extra: Any):
    """An AutoencoderKL with four levels (the real 8x downsampling) and a few channels."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 8, 8, 8), layers_per_block=1, norm_num_groups=4, sample_size=64, **extra,
    )


def _dc_ae_f32(latent_channels: int = 32):
    """An AutoencoderDC shaped like Sana's DC-AE f32c32 (six levels, ViT blocks at the bottom), a few channels."""
    from diffusers import AutoencoderDC

    blocks = ("ResBlock",) * 3 + ("EfficientViTBlock",) * 3
    channels = (4, 8, 8, 16, 16, 32)  # the decoder's input shortcut repeats the latent: last % latent_channels == 0
    return AutoencoderDC(
        in_channels=3, latent_channels=latent_channels, attention_head_dim=4,
        encoder_block_types=blocks, decoder_block_types=blocks,
        encoder_block_out_channels=channels, decoder_block_out_channels=channels,
        encoder_layers_per_block=(1,) * 6, decoder_layers_per_block=(1,) * 6,
        encoder_qkv_multiscales=((), (), (), (5,), (5,), (5,)), decoder_qkv_multiscales=((), (), (), (5,), (5,), (5,)),
        upsample_block_type="interpolate", downsample_block_type="Conv",
        decoder_norm_types=("batch_norm",) * 3 + ("rms_norm",) * 3, decoder_act_fns=("relu",) * 3 + ("silu",) * 3,
        scaling_factor=0.41407,
    )


# ------------------------------------------------------------------------------------------------- families

def _unet(cross_attention_dim: int, **extra: Any):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8, in_channels=4, out_channels=4,
        cross_attention_dim=cross_attention_dim, **extra,
    )


def _build_lcm():
    from diffusers import AutoencoderKL, LatentConsistencyModelPipeline, LCMScheduler

    tokenizer = tiny_tokenizer()
    text_encoder = _clip(tokenizer, hidden_size=32)
    unet = _unet(32, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=4, sample_size=8,
                 time_cond_proj_dim=32)  # the guidance-scale (w) embedding of a distilled LCM UNet
    vae = AutoencoderKL(**TINY_VAE)
    scheduler = LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                             set_alpha_to_one=True, steps_offset=1, original_inference_steps=50)
    return LatentConsistencyModelPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False,
    )


def _build_sdxl():
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline

    tokenizer, tokenizer_2 = tiny_tokenizer(), tiny_tokenizer()
    text_encoder = _clip(tokenizer, hidden_size=16)  # CLIP ViT-L (768 wide in SDXL)
    text_encoder_2 = _clip(tokenizer_2, hidden_size=32, projection_dim=32)  # OpenCLIP bigG (1280), pooled + proj
    time_embed_dim = 8
    unet = _unet(
        16 + 32,  # the two encoders' penultimate hidden states, concatenated
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, transformer_layers_per_block=(1, 1), sample_size=16,
        addition_embed_type="text_time", addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=6 * time_embed_dim + 32,  # 6 size/crop ids + the pooled bigG embedding
    )
    vae = AutoencoderKL(**{**TINY_VAE, "force_upcast": True})
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler, image_encoder=None, feature_extractor=None,
        force_zeros_for_empty_prompt=True, add_watermarker=False,
    )


def _build_pixart():
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    tokenizer = tiny_t5_tokenizer()
    text_encoder = _t5(tokenizer, d_model=32)
    transformer = PixArtTransformer2DModel(
        sample_size=32, patch_size=2, in_channels=4, out_channels=8,  # learned sigma: eps and variance
        num_layers=1, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16, caption_channels=32,
        attention_bias=True, activation_fn="gelu-approximate", num_embeds_ada_norm=1000, norm_type="ada_norm_single",
        norm_elementwise_affine=False, norm_eps=1e-6, use_additional_conditions=False,
    )
    vae = _kl_vae_f8(latent_channels=4, scaling_factor=0.13025)
    scheduler = DPMSolverMultistepScheduler()  # epsilon prediction, linear betas: PixArt-Sigma's
    return PixArtSigmaPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                               scheduler=scheduler)


def _build_sd3():
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    tokenizer, tokenizer_2, tokenizer_3 = tiny_tokenizer(), tiny_tokenizer(), tiny_t5_tokenizer()
    text_encoder = _clip(tokenizer, hidden_size=16, projection_dim=16)  # CLIP-L
    text_encoder_2 = _clip(tokenizer_2, hidden_size=32, projection_dim=32)  # CLIP-G
    text_encoder_3 = _t5(tokenizer_3, d_model=64)  # T5-XXL; the CLIP states (16 + 32) are zero-padded to its width
    transformer = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=16, out_channels=16, num_layers=1, attention_head_dim=8,
        num_attention_heads=4, joint_attention_dim=64, caption_projection_dim=32, pooled_projection_dim=16 + 32,
        pos_embed_max_size=16,
    )
    vae = _kl_vae_f8(latent_channels=16, use_quant_conv=False, use_post_quant_conv=False,
                     scaling_factor=1.5305, shift_factor=0.0609)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )


def _build_flux(guidance_embeds: bool = False):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    tokenizer, tokenizer_2 = tiny_tokenizer(), tiny_t5_tokenizer()
    text_encoder = _clip(tokenizer, hidden_size=32)  # CLIP-L: only its pooled output is used
    text_encoder_2 = _t5(tokenizer_2, d_model=32)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4 * 16,  # 16 latent channels packed 2x2
        num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
        pooled_projection_dim=32, guidance_embeds=bool(guidance_embeds), axes_dims_rope=(4, 4, 8),
    )
    vae = _kl_vae_f8(latent_channels=16, use_quant_conv=False, use_post_quant_conv=False,
                     scaling_factor=0.3611, shift_factor=0.1159)
    if guidance_embeds:  # FLUX.1-dev: shift grows with the image's token count
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                    max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    else:  # FLUX.1-schnell
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)


def _sana_transformer(sample_size: int, **extra: Any):
    from diffusers import SanaTransformer2DModel

    return SanaTransformer2DModel(
        in_channels=32, out_channels=32, num_attention_heads=2, attention_head_dim=8, num_layers=1,
        num_cross_attention_heads=2, cross_attention_head_dim=8, cross_attention_dim=16, caption_channels=16,
        sample_size=sample_size, patch_size=1, **extra,
    )


def _build_sana():
    from diffusers import DPMSolverMultistepScheduler, SanaPipeline

    tokenizer = tiny_gemma_tokenizer()
    text_encoder = _gemma2(tokenizer, hidden_size=16)
    transformer = _sana_transformer(sample_size=16)  # Sana 512 px: the 512 aspect-ratio bins
    scheduler = DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction")
    return SanaPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=_dc_ae_f32(), transformer=transformer,
                        scheduler=scheduler)


def _build_sana_sprint():
    from diffusers import SanaSprintPipeline, SCMScheduler

    tokenizer = tiny_gemma_tokenizer()
    text_encoder = _gemma2(tokenizer, hidden_size=16)
    transformer = _sana_transformer(sample_size=32, qk_norm="rms_norm_across_heads", guidance_embeds=True)
    return SanaSprintPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=_dc_ae_f32(),
                              transformer=transformer, scheduler=SCMScheduler())


_BUILDERS: dict[str, Callable[..., Any]] = {
    "lcm": _build_lcm, "sdxl": _build_sdxl, "pixart": _build_pixart, "sd3": _build_sd3, "flux": _build_flux,
    "sana": _build_sana, "sana-sprint": _build_sana_sprint,
}
