"""Bench (issue 13 groundwork): does a demo-family UNet learn to follow its captions with a longer schedule and
cross-attention at both resolutions?

Trains one UNet of the demo family's shape on the demo world (the shipped demo VAE, text encoder and tokenizer are
reused, so only the UNet is trained), with AdamW + one-cycle learning rate, and every ``every`` steps measures prompt
accuracy with the shipped world judge on 128 held-out captions (world seed 20000, DDIM 16 steps, guidance 2 and 5).
Prints one JSON line per evaluation.

    python bench/bench_demo_prompt_following.py 16 6000 0.002 1000 base    # the shipped UNet shape
    python bench/bench_demo_prompt_following.py 16 6000 0.002 2000 xattn   # cross-attention at both levels, heads 8
"""
import sys, time, json
import numpy as np, torch
from diffusers import StableDiffusionPipeline, DDPMScheduler, UNet2DConditionModel, DDIMScheduler
from ldmpick.demo.world import dataset
from ldmpick.demo.training import SCHEDULER_ARGS, MAX_TOKENS
from ldmpick.calibration.image_quality import load_judge
from ldmpick.calibration.images import generate_images

c = int(sys.argv[1]); steps = int(sys.argv[2]); lr = float(sys.argv[3]); every = int(sys.argv[4]); variant = sys.argv[5] if len(sys.argv) > 5 else "base"
torch.set_num_threads(1)
from ldmpick.models.catalogue import resolve_model
base = StableDiffusionPipeline.from_pretrained(resolve_model("demo-c16").path, safety_checker=None, requires_safety_checker=False)
vae, te, tok = base.vae, base.text_encoder, base.tokenizer
n = 8192
images, captions, _ = dataset(0, n)
x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
with torch.no_grad():
    lat = torch.cat([vae.encode(x[i:i+256]).latent_dist.mean for i in range(0, n, 256)]) * vae.config.scaling_factor
    ids = tok(captions + [""], padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt").input_ids
    emb = te(ids)[0]
cond, uncond = emb[:-1], emb[-1:]
cfg = dict(  # the shipped (v1) family's UNet shape, which this bench measured (8x8 latents)
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(c, 2 * c),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    layers_per_block=1, attention_head_dim=2, cross_attention_dim=32, norm_num_groups=4)
if variant == "xattn":
    cfg.update(down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=8)
torch.manual_seed(0); gen = torch.Generator().manual_seed(0)
unet = UNet2DConditionModel(**cfg)
print("params", sum(p.numel() for p in unet.parameters()), flush=True)
opt = torch.optim.AdamW(unet.parameters(), lr=lr)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
ns = DDPMScheduler(**{k: v for k, v in SCHEDULER_ARGS.items() if k != "set_alpha_to_one"})
judge = load_judge()
_, eprompts, escenes = dataset(20000, 128)
t0 = time.time(); losses = []
for step in range(1, steps + 1):
    idx = torch.randint(0, n, (64,), generator=gen)
    z0 = lat[idx]; noise = torch.randn(z0.shape, generator=gen)
    t = torch.randint(0, 1000, (64,), generator=gen)
    zt = ns.add_noise(z0, noise, t)
    drop = (torch.rand(64, generator=gen) < 0.1)[:, None, None]
    ctx = torch.where(drop, uncond.expand_as(cond[idx]), cond[idx])
    loss = torch.nn.functional.mse_loss(unet(zt, t, encoder_hidden_states=ctx).sample, noise)
    opt.zero_grad(); loss.backward(); opt.step(); sched.step(); losses.append(loss.item())
    if step % every == 0:
        unet.eval()
        pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=te, tokenizer=tok, scheduler=DDIMScheduler(**SCHEDULER_ARGS), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        out = {}
        for g in (2.0, 5.0):
            ims = generate_images(pipe, eprompts, "ddim", 16, g, 0, 128, 32)
            acc = judge.prompt_accuracy(ims, escenes)
            out[g] = {k: round(v, 3) for k, v in acc.items()}
        print(json.dumps({"step": step, "wall": round(time.time()-t0), "loss": round(float(np.mean(losses[-100:])), 4), "acc": out}), flush=True)
        unet.train()
