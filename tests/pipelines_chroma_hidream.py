"""Tiny random ``ChromaPipeline`` and ``HiDreamImagePipeline`` folders, built in code; nothing is downloaded.

    build_pipeline("chroma", folder)                      # Chroma1-HD's shape: T5 only, 2x2-packed latents
    build_pipeline("hidream", folder, variant="dev")      # HiDream-I1: CLIP-L, CLIP-G, T5, Llama; MoE DiT
    DiffusionPipeline.from_pretrained(folder, local_files_only=True, use_safetensors=True)(
        "a cat", num_inference_steps=2, height=tiny_resolution("chroma"), width=tiny_resolution("chroma"))

Each keeps the released model's classes and wiring, cut down to a few channels:

* chroma: ``ChromaTransformer2DModel`` (in_channels = 4 x 16 latent channels, packed 2x2; joint_attention_dim = the T5
  width; the distilled-guidance approximator), one ``T5EncoderModel``, a 16-channel f8 ``AutoencoderKL`` with FLUX's
  scaling/shift, and Chroma1-HD's ``FlowMatchEulerDiscreteScheduler`` (shift 3, dynamic shifting).
* hidream: ``HiDreamImageTransformer2DModel`` (patch 2, 4 routed experts of which 2 are active; caption_channels =
  [T5 width, Llama width]; text_emb_dim = CLIP-L + CLIP-G projection widths; one ``llama_layers`` entry per block),
  two ``CLIPTextModelWithProjection`` with Long-CLIP's 248 positions (the pipeline feeds them 128 tokens), a
  ``T5EncoderModel``, a ``LlamaForCausalLM`` (text_encoder_4, which real deployments supply themselves) with a
  ``PreTrainedTokenizerFast`` made here, and a 16-channel ``AutoencoderKL`` (without the mid-block attention: see
  ``_build_hidream``). The variant decides the scheduler as
  the released repos do: "full" a flow UniPC (shift 3), "dev" / "fast" a ``FlowMatchLCMScheduler`` (shift 6 / 3).

HiDreamImagePipeline always generates at the area of ``default_sample_size`` (128 latent pixels a side) x the VAE
factor, whatever height and width it is asked for; the tiny one's VAE downsamples by 2, so it makes 256 x 256 images
(64 x 64 = 4096 image tokens, as the real model at 1024 px) and ``tiny_resolution("hidream")`` is that side.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

try:
    from family_pipelines import check_family, tiny_t5_tokenizer
    from tiny_pipeline import tiny_tokenizer
except ModuleNotFoundError:  # imported from outside tests/: the sibling modules by path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from family_pipelines import check_family, tiny_t5_tokenizer
    from tiny_pipeline import tiny_tokenizer

FAMILIES: tuple[str, ...] = ("chroma", "hidream")
HIDREAM_VARIANTS: tuple[str, ...] = ("full", "dev", "fast")
_PIPELINE_CLASS = {"chroma": "ChromaPipeline", "hidream": "HiDreamImagePipeline"}
_TINY_RESOLUTION = {"chroma": 64, "hidream": 256}

# the tiny sizes, shared with the tests (which check the adapters read them back from the saved configs)
CHROMA_T5_WIDTH = 32
HIDREAM_CLIP_WIDTHS = (16, 32)  # CLIP-L, CLIP-G (768 and 1280 in the released model): projection = width
HIDREAM_T5_WIDTH = 32
HIDREAM_LLAMA_WIDTH = 16
HIDREAM_LLAMA_LAYERS = 2  # decoder layers of the tiny Llama (32 in Llama-3.1-8B)


def pipeline_class_name(family: str) -> str:
    _check(family)
    return _PIPELINE_CLASS[family]


def tiny_resolution(family: str) -> int:
    """The square side the family's tiny pipeline generates at as asked (HiDream: the only side it makes)."""
    _check(family)
    return _TINY_RESOLUTION[family]


def build_pipeline(family: str, folder: Path, seed: int = 0, variant: str = "full") -> Path:
    """Build a tiny random pipeline of ``family`` ("chroma" or "hidream"), save it to ``folder`` with safetensors
    only, return the folder. ``variant`` (hidream only): "full", "dev" or "fast". The same arguments give the same
    weights; the global torch RNG is left as it was."""
    _check(family)
    if family == "hidream" and variant not in HIDREAM_VARIANTS:
        raise ValueError(f"unknown HiDream variant {variant!r}; known: {', '.join(HIDREAM_VARIANTS)}")
    if family == "chroma" and variant != "full":
        raise ValueError("chroma has no variants")
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = _build_chroma() if family == "chroma" else _build_hidream(variant)
    folder = Path(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _check(family: str) -> None:
    check_family(family, FAMILIES)


# ------------------------------------------------------------------------------------------------- pieces

def tiny_llama_tokenizer(model_max_length: int = 131072):  # -> transformers.PreTrainedTokenizerFast
    """A Llama-3-style tokenizer (byte-level BPE, <|begin_of_text|> first, <|eot_id|> as EOS); no download.
    HiDreamImagePipeline sets its pad token to the EOS token, as for Llama-3.1."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    try:
        from transformers.convert_slow_tokenizer import bytes_to_unicode
    except ImportError:  # older transformers
        from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    vocab: dict[str, int] = {}
    for symbol in bytes_to_unicode().values():
        vocab[symbol] = len(vocab)
    merges = [("c", "a"), ("ca", "t"), ("Ġ", "c"), ("Ġc", "a"), ("Ġca", "t")]  # "cat", " cat"
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    for special in ("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"):
        vocab[special] = len(vocab)
    backend = Tokenizer(BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    bos = vocab["<|begin_of_text|>"]
    backend.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|begin_of_text|>",
                                   eos_token="<|eot_id|>", model_max_length=model_max_length)


def _clip_with_projection(tokenizer, hidden_size: int, max_position_embeddings: int):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=max_position_embeddings, hidden_act="quick_gelu",
        projection_dim=hidden_size, bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        eos_token_id=eos, pad_token_id=eos,
    ))


def _t5(tokenizer, d_model: int):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=1, num_heads=d_model // 8,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))


def _llama(tokenizer, hidden_size: int, layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1, head_dim=hidden_size // 2,
        max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    ))


def _vae_16ch(levels: int, mid_block_attention: bool = True):
    """A 16-channel AutoencoderKL (FLUX.1's latent space and scaling/shift), ``levels`` resolution levels."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16, down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=(4, 8, 8, 8)[:levels], layers_per_block=1,
        norm_num_groups=4, sample_size=64, use_quant_conv=False, use_post_quant_conv=False,
        scaling_factor=0.3611, shift_factor=0.1159, mid_block_add_attention=mid_block_attention,
    )


# ---------------------------------------------------------------------------------------------- the families

def _build_chroma():
    from diffusers import ChromaPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

    tokenizer = tiny_t5_tokenizer()
    text_encoder = _t5(tokenizer, d_model=CHROMA_T5_WIDTH).eval()
    transformer = ChromaTransformer2DModel(
        patch_size=1, in_channels=4 * 16,  # 16 latent channels packed 2x2
        num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=CHROMA_T5_WIDTH, axes_dims_rope=(4, 4, 8),
        approximator_num_channels=16, approximator_hidden_dim=32, approximator_layers=1,
    )
    # Chroma1-HD's scheduler: FLUX.1-dev's (shift 3, resolution-dependent mu)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    return ChromaPipeline(scheduler=scheduler, vae=_vae_16ch(levels=4), text_encoder=text_encoder,
                          tokenizer=tokenizer, transformer=transformer)


def _hidream_scheduler(variant: str) -> Any:
    from diffusers import FlowMatchLCMScheduler, UniPCMultistepScheduler

    if variant == "full":  # HiDream-I1-Full: flow UniPC, shift 3
        return UniPCMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction",
                                       beta_schedule="linear", beta_start=0.0001, beta_end=0.02)
    return FlowMatchLCMScheduler(shift=6.0 if variant == "dev" else 3.0, use_dynamic_shifting=False)


def _build_hidream(variant: str):
    from diffusers import HiDreamImagePipeline, HiDreamImageTransformer2DModel

    tokenizer, tokenizer_2 = tiny_tokenizer(), tiny_tokenizer()
    tokenizer_3, tokenizer_4 = tiny_t5_tokenizer(), tiny_llama_tokenizer()
    clip_l, clip_g = HIDREAM_CLIP_WIDTHS
    text_encoder = _clip_with_projection(tokenizer, clip_l, max_position_embeddings=248)
    text_encoder_2 = _clip_with_projection(tokenizer_2, clip_g, max_position_embeddings=248)
    text_encoder_3 = _t5(tokenizer_3, d_model=HIDREAM_T5_WIDTH).eval()
    text_encoder_4 = _llama(tokenizer_4, HIDREAM_LLAMA_WIDTH, HIDREAM_LLAMA_LAYERS).eval()
    num_layers, num_single_layers = 1, 1
    transformer = HiDreamImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=16, num_layers=num_layers, num_single_layers=num_single_layers,
        attention_head_dim=8, num_attention_heads=2,
        caption_channels=[HIDREAM_T5_WIDTH, HIDREAM_LLAMA_WIDTH],  # [T5, Llama]: the pipeline's two token streams
        text_emb_dim=clip_l + clip_g,  # the two CLIP projections, concatenated
        num_routed_experts=4, num_activated_experts=2, axes_dims_rope=(4, 2, 2), max_resolution=(128, 128),
        # one Llama hidden state per block (the released model: layers 0..31, then 31 for the last 16 blocks)
        llama_layers=list(range(HIDREAM_LLAMA_LAYERS))[: num_layers + num_single_layers],
    ).eval()
    # HiDream's latents are always 128 x 128: the VAE's mid-block attention over those 16384 positions would take
    # seconds on a CPU, so the tiny VAE leaves it out (the released FLUX.1 VAE has it)
    vae = _vae_16ch(levels=2, mid_block_attention=False)
    return HiDreamImagePipeline(
        scheduler=_hidream_scheduler(variant), vae=vae, text_encoder=text_encoder,
        tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3, text_encoder_4=text_encoder_4, tokenizer_4=tokenizer_4, transformer=transformer,
    )
