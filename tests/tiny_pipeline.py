"""A tiny random ``StableDiffusionPipeline`` saved to a folder: real diffusers components, seconds on a CPU.

Nothing is downloaded: the CLIP tokenizer is built here from a byte-level vocabulary written in code.
"""

from __future__ import annotations

from pathlib import Path

TINY_CROSS_ATTENTION_DIM = 32
TINY_UNET = dict(
    block_out_channels=(32, 64),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    layers_per_block=1,
    attention_head_dim=4,
    cross_attention_dim=TINY_CROSS_ATTENTION_DIM,
    in_channels=4,
    out_channels=4,
    norm_num_groups=8,
    sample_size=8,
)
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    block_out_channels=(8, 16),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=4,
    sample_size=16,
)
TINY_TEXT = dict(
    hidden_size=TINY_CROSS_ATTENTION_DIM,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
)
# UNet levels 2 (one downsampling) and a VAE factor of 2: resolutions must be multiples of 4; default 16 px.
TINY_RESOLUTION_MULTIPLE = 4
TINY_DEFAULT_RESOLUTION = 16


def tiny_tokenizer():  # -> transformers.CLIPTokenizer
    """A CLIP tokenizer over the 256 byte symbols (plus end-of-word forms) and two merges; no download."""
    from transformers import CLIPTokenizer

    try:
        from transformers.convert_slow_tokenizer import bytes_to_unicode
    except ImportError:  # older transformers
        from transformers.models.clip.tokenization_clip import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in symbols + [s + "</w>" for s in symbols] + ["ca", "cat</w>", "<|startoftext|>", "<|endoftext|>"]:
        vocab[token] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[("c", "a"), ("ca", "t</w>")], model_max_length=77)


def build_tiny_pipeline(folder: Path, seed: int = 0, scheduler: str = "PNDMScheduler"):  # -> Path
    """Build a random tiny pipeline, save it to ``folder`` with safetensors, return the folder."""
    import diffusers
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    unet = UNet2DConditionModel(**TINY_UNET)
    vae = AutoencoderKL(**TINY_VAE)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"), eos_token_id=eos,
        pad_token_id=eos, **TINY_TEXT,
    ))
    sched = getattr(diffusers, scheduler)(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        steps_offset=1, **({"skip_prk_steps": True} if scheduler == "PNDMScheduler" else {}),
    )
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=sched,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    folder = Path(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
