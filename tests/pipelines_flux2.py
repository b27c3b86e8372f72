"""Tiny random FLUX.2 pipelines saved to a folder: ``Flux2Pipeline`` (FLUX.2 [dev]) and ``Flux2KleinPipeline``
(FLUX.2 [klein], step-distilled or base); nothing is downloaded.

    build_flux2_pipeline("dev", folder)                     # Flux2Pipeline: Mistral-3 encoder, guidance embedder
    build_flux2_pipeline("klein", folder)                   # Flux2KleinPipeline, is_distilled=True (4B / 9B)
    build_flux2_pipeline("klein-base", folder)              # Flux2KleinPipeline, is_distilled=False: real CFG
    DiffusionPipeline.from_pretrained(folder, local_files_only=True, use_safetensors=True)(
        "a cat", num_inference_steps=2, height=TINY_RESOLUTION, width=TINY_RESOLUTION)

Each keeps the released model's wiring with tiny widths: the same pipeline, ``Flux2Transformer2DModel`` (128 input
channels = 32 latent channels patchified 2x2, four RoPE axes, guidance embedder for [dev] only),
``AutoencoderKLFlux2`` (32 latent channels, four levels: the real 8x factor, batch-norm statistics over the 128
patchified channels), ``FlowMatchEulerDiscreteScheduler`` with dynamic shifting, and a decoder-LM text encoder whose
hidden states the pipeline stacks from three layers (so ``joint_attention_dim`` = 3 x its width):
``Mistral3ForConditionalGeneration`` (language model and Pixtral vision tower) deep enough for layers 10/20/30 for
[dev], ``Qwen3ForCausalLM`` deep enough for layers 9/18/27 for [klein] (the pipelines' default
``text_encoder_out_layers``; the layer count is the only thing kept deep, every layer is 16 wide).

Tokenizers are built in code (byte-level BPE over the 256 byte symbols and a few merges) with a chat template of the
released model's form: Mistral's ``[SYSTEM_PROMPT]...[/SYSTEM_PROMPT][INST]...[/INST]`` over typed content blocks for
[dev], Qwen3's ``<|im_start|>`` template with ``enable_thinking`` for [klein]. FLUX.2 [dev]'s released ``tokenizer``
is a ``PixtralProcessor``, which needs torchvision (not a dependency here); for a text-only prompt the processor only
renders its chat template and runs its tokenizer, so the tiny [dev] pipeline saves that tokenizer itself
(``apply_chat_template`` with the same arguments gives the same ids).
"""

from __future__ import annotations

import json
from pathlib import Path

VARIANTS = ("dev", "klein", "klein-base")
TINY_RESOLUTION = 32  # VAE factor 8 x 2x2 patching = 16; 32 px -> a 2x2 grid of tokens
TEXT_WIDTH = 16
DEV_LAYERS = 30  # Flux2Pipeline stacks hidden_states[10], [20], [30]
KLEIN_LAYERS = 28  # Flux2KleinPipeline stacks hidden_states[9], [18], [27]

_WORDS = ("a", "the", "of", "in", "on", "with", "and", "cat", "dog", "red", "blue", "photo", "image", "you", "are",
          "that", "about", "object")

MISTRAL_SPECIAL = ["<unk>", "<s>", "</s>", "<pad>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
                   "[IMG]", "[IMG_BREAK]", "[IMG_END]"]
# Mistral-Small-3.x's template, cut to what a text-only conversation uses: string or typed-block content
MISTRAL_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['content'] is string %}{%- set text = message['content'] %}"
    "{%- else %}{%- set text = namespace(v='') %}"
    "{%- for block in message['content'] %}{%- if block['type'] == 'text' %}"
    "{%- set text.v = text.v + block['text'] %}{%- endif %}{%- endfor %}"
    "{%- set text = text.v %}{%- endif %}"
    "{%- if message['role'] == 'system' %}{{- '[SYSTEM_PROMPT]' + text + '[/SYSTEM_PROMPT]' }}"
    "{%- elif message['role'] == 'user' %}{{- '[INST]' + text + '[/INST]' }}"
    "{%- elif message['role'] == 'assistant' %}{{- text + eos_token }}{%- endif %}"
    "{%- endfor %}"
)
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
# Qwen3's template, cut to user/assistant turns and the generation prompt (enable_thinking=False: an empty think block)
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def build_flux2_pipeline(variant: str, folder: Path, seed: int = 0) -> Path:
    """Build a tiny random FLUX.2 pipeline (``variant`` in ``VARIANTS``), save it to ``folder`` with safetensors
    weights only, and return the folder. The same variant and seed give the same weights; the global torch RNG is
    left as it was."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown FLUX.2 variant {variant!r}; known: {', '.join(VARIANTS)}")
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = _build_dev() if variant == "dev" else _build_klein(distilled=variant == "klein")
    folder = Path(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def pipeline_class_name(variant: str) -> str:
    return "Flux2Pipeline" if variant == "dev" else "Flux2KleinPipeline"


# ----------------------------------------------------------------------------------------------- tokenizers

def _byte_bpe(special: list[str], unk: str | None):
    """A byte-level BPE ``tokenizers.Tokenizer`` over the 256 byte symbols, a few word merges and ``special``."""
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab: dict[str, int] = {}
    for tok in special + list(bytes_to_unicode().values()):
        vocab.setdefault(tok, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        for piece in (word, "Ġ" + word):  # "Ġ": the byte-level symbol of a leading space
            left = piece[0]
            for ch in piece[1:]:
                if (left, ch) not in merges and left + ch not in vocab:
                    merges.append((left, ch))
                vocab.setdefault(left + ch, len(vocab))
                left += ch
    backend = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    return backend


def tiny_mistral_tokenizer(model_max_length: int = 131072):  # -> transformers.PreTrainedTokenizerFast
    """The tokenizer inside FLUX.2 [dev]'s PixtralProcessor (Mistral tekken: byte-level BPE), tiny, with its chat
    template."""
    from transformers import PreTrainedTokenizerFast

    backend = _byte_bpe(MISTRAL_SPECIAL, unk="<unk>")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        model_max_length=model_max_length, chat_template=MISTRAL_CHAT_TEMPLATE,
    )


def tiny_qwen_tokenizer(model_max_length: int = 131072):  # -> transformers.Qwen2TokenizerFast
    """A Qwen2 tokenizer (byte-level BPE) with Qwen3's chat template, as FLUX.2 [klein] ships."""
    from transformers import Qwen2TokenizerFast

    backend = _byte_bpe(QWEN_SPECIAL, unk=None)
    vocab = backend.get_vocab()
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in json.loads(backend.to_str())["model"]["merges"]]
    tok = Qwen2TokenizerFast(vocab=vocab, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                             unk_token=None, model_max_length=model_max_length)
    tok.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL[1:]})
    tok.chat_template = QWEN3_CHAT_TEMPLATE
    return tok


# ------------------------------------------------------------------------------------------------ components

def _transformer(joint_attention_dim: int, guidance_embeds: bool):
    from diffusers import Flux2Transformer2DModel

    return Flux2Transformer2DModel(
        patch_size=1, in_channels=4 * 32,  # 32 latent channels, patchified 2x2 (the released 128)
        num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=joint_attention_dim, timestep_guidance_channels=256, mlp_ratio=3.0,
        axes_dims_rope=(4, 4, 4, 4), rope_theta=2000, guidance_embeds=guidance_embeds,
    )


def _vae():
    from diffusers import AutoencoderKLFlux2

    return AutoencoderKLFlux2(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(4, 8, 8, 8), layers_per_block=1,
        latent_channels=32, norm_num_groups=4, sample_size=32, patch_size=(2, 2),
        batch_norm_eps=1e-4, batch_norm_momentum=0.1,
    )


def _scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    # the released FLUX.2 scheduler config: shift 3 with dynamic (mu) shifting; the pipelines compute mu themselves
    return FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                           base_image_seq_len=256, max_image_seq_len=4096,
                                           time_shift_type="exponential")


def _build_dev():
    from diffusers import Flux2Pipeline
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    tokenizer = tiny_mistral_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    config = Mistral3Config(
        text_config={
            "model_type": "mistral", "vocab_size": len(tokenizer), "hidden_size": TEXT_WIDTH,
            "intermediate_size": 2 * TEXT_WIDTH, "num_hidden_layers": DEV_LAYERS, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": TEXT_WIDTH // 2, "max_position_embeddings": 1024,
            "rms_norm_eps": 1e-5, "sliding_window": None, "bos_token_id": ids("<s>"), "eos_token_id": ids("</s>"),
            "pad_token_id": ids("<pad>"), "attn_implementation": "sdpa",
        },
        vision_config={
            "model_type": "pixtral", "hidden_size": TEXT_WIDTH, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 2 * TEXT_WIDTH, "image_size": 32, "patch_size": 8, "num_channels": 3,
        },
        image_token_index=ids("[IMG]"), spatial_merge_size=1, vision_feature_layer=-1,
        bos_token_id=ids("<s>"), eos_token_id=ids("</s>"), pad_token_id=ids("<pad>"),
    )
    text_encoder = Mistral3ForConditionalGeneration(config)
    return Flux2Pipeline(scheduler=_scheduler(), vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer,
                         transformer=_transformer(3 * TEXT_WIDTH, guidance_embeds=True))


def _build_klein(distilled: bool):
    from diffusers import Flux2KleinPipeline
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = tiny_qwen_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=TEXT_WIDTH, intermediate_size=2 * TEXT_WIDTH,
        num_hidden_layers=KLEIN_LAYERS, num_attention_heads=2, num_key_value_heads=1, head_dim=TEXT_WIDTH // 2,
        max_position_embeddings=1024, tie_word_embeddings=True, bos_token_id=ids("<|endoftext|>"),
        eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"),
    )
    text_encoder = Qwen3ForCausalLM(config)
    return Flux2KleinPipeline(scheduler=_scheduler(), vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer,
                              transformer=_transformer(3 * TEXT_WIDTH, guidance_embeds=False),
                              is_distilled=distilled)
