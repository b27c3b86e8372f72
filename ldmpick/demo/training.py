"""Train the demo model family on the procedural world (``ldmpick.demo.world``): standard diffusers pipeline folders.

This is the recipe of the shipped family (demo-c8, demo-c16, demo-c80 at 16x16 latents; docs/demo.md). The first
family (demo-c8 ... demo-c32 at 8x8 latents) was trained by earlier code: ``git show 8126eb4:ldmpick/demo/training.py``.

One small ``AutoencoderKL`` (32 px -> 16x16x4 latents), one small ``CLIPTextModel`` (random-initialised and frozen:
its embeddings of the world's captions are distinct, and the UNets learn to read them) with a ``CLIPTokenizer`` built
for the world's vocabulary, and UNets that differ only in their base channel count ``c`` (multipliers [1, 2],
cross-attention at both levels), all trained with the same data, seed, batch and steps (``TrainingRecipe``).

Long runs are resumable: every ``checkpoint_every`` steps a UNet's weights, AdamW moments and random-generator state
go to ``<out>/_checkpoints/demo-c<c>/`` (safetensors + JSON, atomic), and a rerun with the same recipe continues
from there with the same result. The VAE is trained once per ``out`` folder (``<out>/_vae/``, under a lock, so
runs of different channel counts in parallel share it). Every model folder gets a ``training.json`` with the
recipe, data size, threads and wall times; ``<out>/family_training.json`` sums the family's training time.
torch/diffusers are imported inside the functions; nothing here prints (progress goes through ``progress``).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ldmpick.files.errors import UsageError

DEMO_CHANNELS = (8, 16, 80)
TEXT_DIM = 32
MAX_TOKENS = 32
LATENT_CHANNELS = 4
LATENT_SIZE = 16
ATTENTION_HEADS = 8
VAE_CONFIG = dict(
    in_channels=3, out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    block_out_channels=(16, 32), layers_per_block=1, latent_channels=LATENT_CHANNELS, norm_num_groups=4,
    sample_size=32,
)
TEXT_CONFIG = dict(hidden_size=TEXT_DIM, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                   max_position_embeddings=MAX_TOKENS, hidden_act="quick_gelu")
# SD's scaled-linear schedule. DDPM's linear one (betas 1e-4-0.02, 10x less terminal signal) was tried on this
# family (issue 13): FID got worse with more steps past 4 for demo-c8 and demo-c16 (694 -> 1369 at 32 steps) and
# prompt accuracy stayed at chance, so the family keeps SD's schedule (docs/demo.md).
BETA_SCHEDULE = "scaled_linear"
# "trailing" spacing: a 1-step sample starts from t = 999 with every sampler (SD's "leading" starts ddim/euler at
# t = 1, pure noise read as a clean image). Sampling only: training draws t uniformly whatever the spacing.
# Zero terminal SNR with v-prediction (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are
# Flawed"): SD's betas leave sqrt(alpha_bar) = 0.068 of the image in the latent at t = 999, and at 16x16 latents the
# noisy latent's mean still shows the background colour (the mean of 256 positions has noise std 1/16), so an
# epsilon model learned to read the background off the noise instead of the caption and sampled it at random
# (background accuracy at chance after 4,000 steps). Rescaled betas leave no signal at t = 999; epsilon is
# undefined there, so the UNet predicts v.
PREDICTION_TYPE = "v_prediction"
ZERO_TERMINAL_SNR = True
SCHEDULER_ARGS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule=BETA_SCHEDULE,
                      steps_offset=1, clip_sample=False, set_alpha_to_one=False, timestep_spacing="trailing",
                      rescale_betas_zero_snr=ZERO_TERMINAL_SNR, prediction_type=PREDICTION_TYPE)


@dataclass(frozen=True)
class TrainingRecipe:
    """Everything that decides the trained weights (with the threads, which change float reduction order)."""

    seed: int = 0
    n_images: int = 16384
    vae_steps: int = 1000
    vae_batch: int = 32
    vae_lr: float = 2e-3
    unet_steps: int = 8000
    beta_schedule: str = BETA_SCHEDULE  # these three are recorded so that a checkpoint of another schedule or
    prediction_type: str = PREDICTION_TYPE  # objective is never resumed; SCHEDULER_ARGS is the one the trainer
    zero_terminal_snr: bool = ZERO_TERMINAL_SNR  # and the pipelines use
    batch: int = 32
    lr: float = 2e-3          # peak of a one-cycle schedule: linear warm-up, cosine decay to lr / 1000
    warmup: float = 0.05
    caption_dropout: float = 0.1
    grad_clip: float = 1.0
    checkpoint_every: int = 250

    def check(self) -> None:
        if self.n_images < max(self.batch, self.vae_batch):
            raise UsageError(f"need at least one batch of world images ({max(self.batch, self.vae_batch)}), "
                             f"got {self.n_images}")
        if min(self.vae_steps, self.unet_steps, self.batch, self.vae_batch, self.checkpoint_every) < 1:
            raise UsageError("steps, batches and the checkpoint interval must be at least 1")
        fixed = dict(beta_schedule=BETA_SCHEDULE, prediction_type=PREDICTION_TYPE, zero_terminal_snr=ZERO_TERMINAL_SNR)
        for name, value in fixed.items():
            if getattr(self, name) != value:
                raise UsageError(f"the demo family trains with {name} = {value!r}, got {getattr(self, name)!r}")

    def vae_facts(self) -> dict[str, Any]:
        return dict(seed=self.seed, n_images=self.n_images, steps=self.vae_steps, batch=self.vae_batch,
                    lr=self.vae_lr, config={k: list(v) if isinstance(v, tuple) else v for k, v in VAE_CONFIG.items()})


def demo_unet_config(c: int) -> dict[str, Any]:
    if c < ATTENTION_HEADS or c % ATTENTION_HEADS:
        raise UsageError(f"the base channel count must be a positive multiple of {ATTENTION_HEADS}, got {c}")
    return dict(
        sample_size=LATENT_SIZE, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
        block_out_channels=(c, 2 * c), down_block_types=("CrossAttnDownBlock2D",) * 2,
        up_block_types=("CrossAttnUpBlock2D",) * 2, layers_per_block=1,
        attention_head_dim=ATTENTION_HEADS,  # diffusers' legacy name: the number of heads
        cross_attention_dim=TEXT_DIM, norm_num_groups=4,
    )


def one_cycle_lr(step: int, recipe: TrainingRecipe) -> float:
    """Learning rate at optimizer step ``step`` (0-based): linear warm-up, then cosine decay to lr / 1000."""
    total = recipe.unet_steps
    warm = max(1, int(recipe.warmup * total))
    if step < warm:
        return recipe.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    floor = recipe.lr / 1000
    return floor + (recipe.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def demo_tokenizer():  # -> transformers.CLIPTokenizer
    """A CLIP BPE tokenizer over the world's words: characters, end-of-word characters, and each word's merge chain."""
    from transformers import CLIPTokenizer

    from ldmpick.demo.world import vocabulary

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


def demo_text_encoder(tokenizer, seed: int):  # -> transformers.CLIPTextModel
    """The family's text encoder: random-initialised from ``seed`` (the recipe's) and frozen (eval mode)."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    torch.manual_seed(seed)
    return CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"), eos_token_id=eos,
        pad_token_id=eos, **TEXT_CONFIG)).eval()


def _save_pipeline(folder: Path, unet, vae, text_encoder, tokenizer) -> None:
    """Write a pipeline folder under a temporary name and rename it into place (a crash leaves no half folder)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=DDIMScheduler(**SCHEDULER_ARGS),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    _save_folder(folder, lambda tmp: pipe.save_pretrained(tmp, safe_serialization=True))


def _save_folder(folder: Path, write: Callable[[Path], None]) -> None:
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def world_tensors(recipe: TrainingRecipe):
    """The training images in [-1, 1] (N, 3, 32, 32) and their captions."""
    import torch

    from ldmpick.demo.world import dataset

    images, captions, _ = dataset(recipe.seed, recipe.n_images)
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0, captions


def train_vae(x, recipe: TrainingRecipe, say: Callable[[str], None]):
    """Reconstruction MSE + a tiny KL term; ``scaling_factor`` set to 1/std of the training latents."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    vae = AutoencoderKL(**VAE_CONFIG)
    opt = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr)
    t0 = time.perf_counter()
    loss = torch.zeros(())
    for step in range(recipe.vae_steps):
        idx = torch.randint(0, len(x), (recipe.vae_batch,), generator=gen)
        post = vae.encode(x[idx]).latent_dist
        rec = vae.decode(post.sample(generator=gen)).sample
        loss = torch.nn.functional.mse_loss(rec, x[idx]) + 1e-6 * post.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            say(f"vae step {step}/{recipe.vae_steps} loss {loss.item():.4f}")
    vae.eval()
    with torch.no_grad():
        latents = torch.cat([vae.encode(x[i:i + 256]).latent_dist.mean for i in range(0, len(x), 256)])
        scale = float(1.0 / latents.std())
        vae.register_to_config(scaling_factor=scale)
        rec = vae.decode(latents[:256]).sample
        vae_mse = float(torch.nn.functional.mse_loss(rec, x[:256]))
    facts = dict(recipe.vae_facts(), wall_s=round(time.perf_counter() - t0, 1), final_loss=round(loss.item(), 5),
                 reconstruction_mse=round(vae_mse, 5), scaling_factor=round(scale, 5),
                 latent_shape=[LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE])
    say(f"vae done in {facts['wall_s']:.0f} s, reconstruction mse {vae_mse:.4f}")
    return vae, facts


def shared_vae(out: Path, x, recipe: TrainingRecipe, threads: int, say: Callable[[str], None]):
    """The family's VAE: loaded from ``out/_vae`` when it was trained with this recipe, else trained and kept there
    (under a lock: parallel runs into the same folder train it once)."""
    from diffusers import AutoencoderKL

    from ldmpick.files.storage import atomic_write_json, file_lock

    folder = out / "_vae"
    with file_lock(folder, timeout_s=24 * 3600):
        facts_file = folder / "vae_training.json"
        if facts_file.is_file():
            facts = json.loads(facts_file.read_text())
            if {k: facts.get(k) for k in recipe.vae_facts()} == recipe.vae_facts():
                say(f"using the VAE trained earlier in {folder}")
                return AutoencoderKL.from_pretrained(folder / "vae", use_safetensors=True).eval(), facts
        vae, facts = train_vae(x, recipe, say)
        facts["threads"] = threads
        out.mkdir(parents=True, exist_ok=True)
        _save_folder(folder, lambda tmp: vae.save_pretrained(tmp / "vae", safe_serialization=True))
        atomic_write_json(facts_file, facts)
        return vae, facts


class UNetCheckpoint:
    """A resumable UNet training state in ``folder``: weights, AdamW moments, generator state, step and losses."""

    def __init__(self, folder: Path, recipe: TrainingRecipe, c: int, threads: int):
        self.folder = folder
        self.key = dict(asdict(recipe), base_channels=c)
        self.threads = threads
        self.segments: list[dict[str, int]] = []  # [{from_step, threads}]: a resumed run may use other threads

    def load(self, unet, opt, gen) -> tuple[int, list[float], float]:
        """Restore into ``unet``/``opt``/``gen``; return (next step, losses so far, wall seconds so far)."""
        from safetensors.torch import load_file

        state_file = self.folder / "state.json"
        if not state_file.is_file():
            return 0, [], 0.0
        state = json.loads(state_file.read_text())
        if {k: v for k, v in state.get("key", {}).items() if k != "threads"} != self.key:
            return 0, [], 0.0  # another recipe: start over (the threads may differ: they are recorded per segment)
        self.segments = state.get("segments") or [{"from_step": 0, "threads": state["key"].get("threads")}]
        unet.load_state_dict(load_file(self.folder / "unet.safetensors"))
        moments = load_file(self.folder / "optimizer.safetensors")
        params = list(unet.parameters())
        for i, p in enumerate(params):
            opt.state[p] = {"step": moments[f"{i}.step"].reshape(()), "exp_avg": moments[f"{i}.exp_avg"],
                            "exp_avg_sq": moments[f"{i}.exp_avg_sq"]}
        gen.set_state(load_file(self.folder / "rng.safetensors")["generator"])
        step = int(state["step"])
        if self.segments[-1]["threads"] != self.threads:
            self.segments.append({"from_step": step, "threads": self.threads})
        return step, list(state["losses"]), float(state["wall_s"])

    def save(self, step: int, unet, opt, gen, losses: list[float], wall_s: float) -> None:
        from safetensors.torch import save

        from ldmpick.files.storage import atomic_write_bytes, atomic_write_json

        self.folder.mkdir(parents=True, exist_ok=True)
        moments = {}
        for i, p in enumerate(unet.parameters()):
            st = opt.state[p]
            moments.update({f"{i}.step": st["step"].reshape(1).clone(),
                            f"{i}.exp_avg": st["exp_avg"], f"{i}.exp_avg_sq": st["exp_avg_sq"]})
        for name, tensors in (("unet", {k: v.contiguous() for k, v in unet.state_dict().items()}),
                              ("optimizer", moments), ("rng", {"generator": gen.get_state()})):
            atomic_write_bytes(self.folder / f"{name}.safetensors", save(tensors))
        atomic_write_json(self.folder / "state.json", dict(key=self.key, step=step, losses=losses,
                                                           wall_s=round(wall_s, 1), segments=self.thread_segments()))

    def thread_segments(self) -> list[dict[str, int]]:
        return self.segments or [{"from_step": 0, "threads": self.threads}]

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def train_unet(c: int, latents, cond, uncond, recipe: TrainingRecipe, checkpoint: UNetCheckpoint,
               say: Callable[[str], None]):
    """v (or epsilon) objective on the zero-terminal-SNR schedule, caption dropout for classifier-free guidance, AdamW
    with a one-cycle learning rate."""
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    unet = UNet2DConditionModel(**demo_unet_config(c))
    opt = torch.optim.AdamW(unet.parameters(), lr=recipe.lr)
    start, losses, wall_before = checkpoint.load(unet, opt, gen)
    if start:
        say(f"demo-c{c}: resuming at step {start}/{recipe.unet_steps}")
    noise_sched = DDPMScheduler(**{k: v for k, v in SCHEDULER_ARGS.items() if k != "set_alpha_to_one"})
    n, batch = len(latents), recipe.batch
    t0 = time.perf_counter()
    unet.train()
    for step in range(start, recipe.unet_steps):
        for group in opt.param_groups:
            group["lr"] = one_cycle_lr(step, recipe)
        idx = torch.randint(0, n, (batch,), generator=gen)
        z0 = latents[idx]
        noise = torch.randn(z0.shape, generator=gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (batch,), generator=gen)
        zt = noise_sched.add_noise(z0, noise, t)
        drop = (torch.rand(batch, generator=gen) < recipe.caption_dropout)[:, None, None]
        ctx = torch.where(drop, uncond.expand_as(cond[idx]), cond[idx])
        target = noise_sched.get_velocity(z0, noise, t) if recipe.prediction_type == "v_prediction" else noise
        loss = torch.nn.functional.mse_loss(unet(zt, t, encoder_hidden_states=ctx).sample, target)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), recipe.grad_clip)
        opt.step()
        losses.append(round(loss.item(), 5))
        done = step + 1
        if done % recipe.checkpoint_every == 0 and done < recipe.unet_steps:
            checkpoint.save(done, unet, opt, gen, losses, wall_before + time.perf_counter() - t0)
        if step % 50 == 0:
            say(f"demo-c{c} step {step}/{recipe.unet_steps} loss {loss.item():.4f}")
    unet.eval()
    return unet, losses, wall_before + time.perf_counter() - t0


def train_family(out: Path, channels: tuple[int, ...] = DEMO_CHANNELS, recipe: TrainingRecipe = TrainingRecipe(),
                 threads: int = 1, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or reuse) the VAE, then one UNet per ``c`` in ``channels``; write ``out/demo-c<c>/`` pipeline folders."""
    import numpy as np
    import torch

    from ldmpick.files.storage import atomic_write_json

    recipe.check()
    if not channels:
        raise UsageError("give at least one channel count")
    for c in channels:
        demo_unet_config(c)  # fail before any training
    finished = finished_models(Path(out), channels, recipe)
    say = progress or (lambda _msg: None)
    torch.set_num_threads(threads)
    out = Path(out)
    t0 = time.perf_counter()
    x, captions = world_tensors(recipe)
    data_s = time.perf_counter() - t0
    vae, vae_facts = shared_vae(out, x, recipe, threads, say)
    with torch.no_grad():
        latents = torch.cat([vae.encode(x[i:i + 256]).latent_dist.mean for i in range(0, len(x), 256)])
        latents = latents * vae.config.scaling_factor

    # Text encoder: random-initialised and frozen; embeddings precomputed once.
    tokenizer = demo_tokenizer()
    text_encoder = demo_text_encoder(tokenizer, recipe.seed)
    with torch.no_grad():
        ids = tokenizer(captions + [""], padding="max_length", max_length=MAX_TOKENS, truncation=True,
                        return_tensors="pt").input_ids
        emb = text_encoder(ids)[0]
    cond, uncond = emb[:-1], emb[-1:]

    report: dict[str, Any] = {"vae": vae_facts, "models": {}}
    for c in channels:
        name = f"demo-c{c}"
        if c in finished:  # trained to the end with this recipe: kept, not trained again
            report["models"][name] = finished[c]
            say(f"{name} is already trained in '{out / name}' with this recipe; kept")
            continue
        checkpoint = UNetCheckpoint(out / "_checkpoints" / name, recipe, c, threads)
        unet, losses, wall = train_unet(c, latents, cond, uncond, recipe, checkpoint, say)
        folder = out / name
        _save_pipeline(folder, unet, vae, text_encoder, tokenizer)
        facts = dict(model=name, base_channels=c, unet_params=sum(p.numel() for p in unet.parameters()),
                     world="ldmpick.demo.world", image_size=int(x.shape[-1]), latent_size=LATENT_SIZE,
                     recipe=asdict(recipe), objective=recipe.prediction_type,
                     lr_schedule="one-cycle (linear warm-up, cosine)",
                     threads=threads, thread_segments=checkpoint.thread_segments(), torch=torch.__version__,
                     device="cpu", wall_s=round(wall, 1),
                     data_s=round(data_s, 2), final_loss_mean_last50=round(float(np.mean(losses[-50:])), 5),
                     loss_curve_every_250=[round(float(np.mean(losses[i:i + 250])), 5)
                                           for i in range(0, len(losses), 250)],
                     vae=vae_facts, text_encoder="random-initialised CLIPTextModel, frozen")
        atomic_write_json(folder / "training.json", facts)
        checkpoint.clear()
        report["models"][name] = facts
        say(f"{name} done in {wall:.0f} s, loss {facts['final_loss_mean_last50']:.4f}")
    atomic_write_json(out / "family_training.json", family_summary(out))
    return report


def finished_models(out: Path, channels: tuple[int, ...], recipe: TrainingRecipe) -> dict[int, dict[str, Any]]:
    """The asked models already trained to the end in ``out`` with ``recipe`` (their training.json facts), so that a
    rerun keeps them. A finished model of another recipe, or a finished family whose VAE another recipe would
    replace, is an error before anything is trained: retraining over it would silently throw away hours."""
    def facts_of(folder: Path) -> dict[str, Any] | None:
        try:
            facts = json.loads((folder / "training.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return facts if isinstance(facts, dict) and isinstance(facts.get("recipe"), dict) else None

    done: dict[int, dict[str, Any]] = {}
    ours = json.loads(json.dumps(asdict(recipe)))  # as training.json holds it (tuples as lists)
    for c in channels:
        folder = out / f"demo-c{c}"
        facts = facts_of(folder)
        if facts is None:
            if folder.exists() or folder.is_symlink():  # not ours: training would replace it (a user's files)
                raise UsageError(f"'{folder}' exists and was not written by 'ldmpick demo train' (no training.json "
                                 "of its own); give another --out, or move that folder away")
            continue
        if facts["recipe"] != ours or facts.get("base_channels") != c:
            changed = sorted(k for k in ours if facts["recipe"].get(k) != ours[k])
            raise UsageError(f"'{out / f'demo-c{c}'}' holds a demo-c{c} trained with another recipe "
                             f"({', '.join(changed) or 'channels'} differ); give another --out, or remove that folder "
                             "to retrain it")
        done[c] = facts
    vae_file = out / "_vae" / "vae_training.json"
    try:
        vae = json.loads(vae_file.read_text(encoding="utf-8")) if vae_file.is_file() else None
    except (OSError, ValueError):
        vae = None
    if isinstance(vae, dict) and {k: vae.get(k) for k in recipe.vae_facts()} != recipe.vae_facts():
        trained = sorted(f.name for f in out.glob("demo-c*") if facts_of(f) is not None)
        if trained:
            raise UsageError(f"'{out}' holds models trained on its VAE ({', '.join(trained)}), and this recipe's VAE "
                             "differs (--images, --vae-steps, --seed or --batch): it would replace it; give another "
                             "--out")
    return done


def family_summary(out: Path) -> dict[str, Any]:
    """The training time of every model folder in ``out`` and of the shared VAE, summed: what retraining costs."""
    models = {}
    recipes = []
    for facts_file in sorted(Path(out).glob("demo-c*/training.json")):
        facts = json.loads(facts_file.read_text())
        if facts.get("recipe") not in recipes:
            recipes.append(facts.get("recipe"))
        models[facts["model"]] = dict(unet_params=facts["unet_params"], wall_s=facts["wall_s"],
                                      threads=facts["threads"])
    vae_file = Path(out) / "_vae" / "vae_training.json"
    vae_s = json.loads(vae_file.read_text())["wall_s"] if vae_file.is_file() else None
    total = sum(m["wall_s"] for m in models.values()) + (vae_s or 0.0)
    return dict(schema="ldmpick.demo-training/1", recipe=recipes[0] if len(recipes) == 1 else recipes,
                models=models, vae_wall_s=vae_s,
                total_wall_s=round(total, 1), total_wall_h=round(total / 3600, 2),
                note="wall seconds of each stage as run (each with its own thread count); stages can run in "
                     "parallel, one process per core")
