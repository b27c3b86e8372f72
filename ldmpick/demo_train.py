"""Train the demo model family on the procedural world (``ldmpick.demo_world``): standard diffusers pipeline folders.

One small ``AutoencoderKL`` (32 px -> 8x8x4 latents), one small ``CLIPTextModel`` (random-initialised and frozen: its
embeddings of the world's captions are distinct, and the UNets learn to read them) with a ``CLIPTokenizer`` built for
the world's vocabulary, and UNets that differ only in their base channel count ``c`` (multipliers [1, 2]), all trained
with the same data, seed and steps. Every model folder gets a ``training.json`` with seed, data size and compute.
torch/diffusers are imported inside the functions; nothing here prints (progress goes through ``progress``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from ldmpick.errors import UsageError

DEMO_CHANNELS = (8, 12, 16, 24, 32)
TEXT_DIM = 32
MAX_TOKENS = 32
LATENT_CHANNELS = 4
VAE_CONFIG = dict(
    in_channels=3, out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(12, 24, 24), layers_per_block=1, latent_channels=LATENT_CHANNELS, norm_num_groups=4,
    sample_size=32,
)
TEXT_CONFIG = dict(hidden_size=TEXT_DIM, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                   max_position_embeddings=MAX_TOKENS, hidden_act="quick_gelu")
SCHEDULER_ARGS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                      steps_offset=1, clip_sample=False, set_alpha_to_one=False)


def demo_unet_config(c: int) -> dict[str, Any]:
    if c < 4 or c % 4:
        raise UsageError(f"the base channel count must be a positive multiple of 4, got {c}")
    return dict(
        sample_size=8, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, block_out_channels=(c, 2 * c),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1, attention_head_dim=2, cross_attention_dim=TEXT_DIM, norm_num_groups=4,
    )


def demo_tokenizer():  # -> transformers.CLIPTokenizer
    """A CLIP BPE tokenizer over the world's words: characters, end-of-word characters, and each word's merge chain."""
    from transformers import CLIPTokenizer

    from ldmpick.demo_world import vocabulary

    letters = sorted({ch for w in vocabulary() for ch in w})
    vocab: dict[str, int] = {}
    merges: list[tuple[str, str]] = []

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for ch in letters:
        add(ch)
        add(ch + "</w>")
    for word in vocabulary():
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        left = pieces[0]
        for right in pieces[1:]:
            if (left, right) not in merges:
                merges.append((left, right))
            left = left + right
            add(left)
    add("<|startoftext|>")
    add("<|endoftext|>")
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS,
                         unk_token="<|endoftext|>", pad_token="<|endoftext|>")


def _save_pipeline(folder: Path, unet, vae, text_encoder, tokenizer) -> None:
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=DDIMScheduler(**SCHEDULER_ARGS),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)


def train_family(out: Path, channels: tuple[int, ...] = DEMO_CHANNELS, seed: int = 0, n_images: int = 4096,
                 vae_steps: int = 300, unet_steps: int = 600, batch: int = 64, vae_batch: int = 32, threads: int = 1,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the VAE, then one UNet per ``c`` in ``channels``; write ``out/demo-c<c>/`` pipeline folders."""
    import numpy as np
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from ldmpick.demo_world import dataset
    from ldmpick.storage import atomic_write_json

    if n_images < batch or min(vae_steps, unet_steps) < 1 or not channels:
        raise UsageError("need n_images >= batch, at least one step and at least one channel count")
    for c in channels:
        demo_unet_config(c)  # fail before any training
    say = progress or (lambda _msg: None)
    torch.set_num_threads(threads)
    out = Path(out)
    t0 = time.perf_counter()
    images, captions, _ = dataset(seed, n_images)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    data_s = time.perf_counter() - t0
    common = dict(seed=seed, world="ldmpick.demo_world", data_images=n_images, image_size=int(x.shape[-1]),
                  batch=batch, threads=threads, torch=torch.__version__)

    # VAE: reconstruction + a small KL term.
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    vae = AutoencoderKL(**VAE_CONFIG)
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3)
    t0 = time.perf_counter()
    for step in range(vae_steps):
        idx = torch.randint(0, n_images, (vae_batch,), generator=gen)
        post = vae.encode(x[idx]).latent_dist
        rec = vae.decode(post.sample(generator=gen)).sample
        loss = torch.nn.functional.mse_loss(rec, x[idx]) + 1e-6 * post.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            say(f"vae step {step}/{vae_steps} loss {loss.item():.4f}")
    vae.eval()
    with torch.no_grad():
        latents = torch.cat([vae.encode(x[i:i + 256]).latent_dist.mean for i in range(0, n_images, 256)])
        scale = float(1.0 / latents.std())
        vae.register_to_config(scaling_factor=scale)
        latents = latents * scale
        rec = vae.decode(latents[:256] / scale).sample
        vae_mse = float(torch.nn.functional.mse_loss(rec, x[:256]))
    vae_s = time.perf_counter() - t0
    vae_facts = dict(steps=vae_steps, wall_s=round(vae_s, 1), final_loss=round(loss.item(), 5), batch=vae_batch,
                     reconstruction_mse=round(vae_mse, 5), scaling_factor=round(scale, 5), lr=2e-3)
    say(f"vae done in {vae_s:.0f} s, reconstruction mse {vae_mse:.4f}")

    # Text encoder: random-initialised and frozen; embeddings precomputed once.
    tokenizer = demo_tokenizer()
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"), eos_token_id=eos,
        pad_token_id=eos, **TEXT_CONFIG))
    text_encoder.eval()
    with torch.no_grad():
        ids = tokenizer(captions + [""], padding="max_length", max_length=MAX_TOKENS, truncation=True,
                        return_tensors="pt").input_ids
        emb = text_encoder(ids)[0]
    cond, uncond = emb[:-1], emb[-1:]

    noise_sched = DDPMScheduler(**{k: v for k, v in SCHEDULER_ARGS.items() if k != "set_alpha_to_one"})
    report: dict[str, Any] = {"vae": vae_facts, "text_encoder": "random-initialised, frozen", "models": {}}
    for c in channels:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        unet = UNet2DConditionModel(**demo_unet_config(c))
        opt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
        t0 = time.perf_counter()
        losses = []
        for step in range(unet_steps):
            idx = torch.randint(0, n_images, (batch,), generator=gen)
            z0 = latents[idx]
            noise = torch.randn(z0.shape, generator=gen)
            t = torch.randint(0, noise_sched.config.num_train_timesteps, (batch,), generator=gen)
            zt = noise_sched.add_noise(z0, noise, t)
            drop = (torch.rand(batch, generator=gen) < 0.1)[:, None, None]  # for classifier-free guidance
            ctx = torch.where(drop, uncond.expand_as(cond[idx]), cond[idx])
            loss = torch.nn.functional.mse_loss(unet(zt, t, encoder_hidden_states=ctx).sample, noise)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if step % 50 == 0:
                say(f"demo-c{c} step {step}/{unet_steps} loss {loss.item():.4f}")
        wall = time.perf_counter() - t0
        unet.eval()
        name = f"demo-c{c}"
        folder = out / name
        _save_pipeline(folder, unet, vae, text_encoder, tokenizer)
        facts = dict(common, model=name, base_channels=c, unet_params=sum(p.numel() for p in unet.parameters()),
                     steps=unet_steps, lr=1e-3, objective="epsilon", caption_dropout=0.1, wall_s=round(wall, 1),
                     data_s=round(data_s, 2), final_loss_mean_last50=round(float(np.mean(losses[-50:])), 5),
                     vae=vae_facts, text_encoder="random-initialised CLIPTextModel, frozen",
                     device="cpu")
        atomic_write_json(folder / "training.json", facts)
        report["models"][name] = facts
        say(f"{name} done in {wall:.0f} s, loss {facts['final_loss_mean_last50']:.4f}")
    return report
