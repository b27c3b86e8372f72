"""Bench (issue 13): A/B -- does a c16 demo UNet learn to read its caption as well at 16x16 latents as at 8x8? Only the VAE differs.

Run from the repository root of a checkout before the v3 family shipped (it reads that v1 demo-c16 folder, 8x8
latents, e.g. `git worktree add /tmp/v1 0d60431`, and a v2 VAE at /work/demo_run/_vae/vae; edit the paths).
    python bench/experiments/bench_demo_latent_ab.py 8x8 1500 32
    python bench/experiments/bench_demo_latent_ab.py 16x16 1500 32
"""
import sys, time, json
import numpy as np, torch
from diffusers import StableDiffusionPipeline, DDPMScheduler, UNet2DConditionModel, DDIMScheduler, AutoencoderKL
from ldmpick.demo.world import dataset
from ldmpick.calibration.image_quality import load_judge
from ldmpick.calibration.images import generate_images
arm, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
SCHED = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, clip_sample=False, set_alpha_to_one=False)
base = StableDiffusionPipeline.from_pretrained("ldmpick/demo_models/demo-c16", safety_checker=None, requires_safety_checker=False)
te, tok = base.text_encoder, base.tokenizer
if len(base.vae.config.block_out_channels) != 3:
    sys.exit("this demo-c16 is not the v1 model (8x8 latents): run from a checkout before the v3 family shipped")
vae = base.vae if arm == "8x8" else AutoencoderKL.from_pretrained("/work/demo_run/_vae/vae").eval()
size = 8 if arm == "8x8" else 16
n = 16384
images, captions, _ = dataset(0, n)
x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
with torch.no_grad():
    lat = torch.cat([vae.encode(x[i:i+256]).latent_dist.mean for i in range(0, n, 256)]) * vae.config.scaling_factor
    ids = tok(captions + [""], padding="max_length", max_length=32, truncation=True, return_tensors="pt").input_ids
    emb = te(ids)[0]
cond, uncond = emb[:-1], emb[-1:]
cfg = dict(sample_size=size, in_channels=4, out_channels=4, block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D",)*2, up_block_types=("CrossAttnUpBlock2D",)*2, layers_per_block=1, attention_head_dim=8, cross_attention_dim=32, norm_num_groups=4)
torch.manual_seed(0); gen = torch.Generator().manual_seed(0)
unet = UNet2DConditionModel(**cfg)
opt = torch.optim.AdamW(unet.parameters(), lr=2e-3)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.05)
ns = DDPMScheduler(**{k: v for k, v in SCHED.items() if k != "set_alpha_to_one"})
t0 = time.time(); losses = []
for step in range(1, steps + 1):
    idx = torch.randint(0, n, (batch,), generator=gen)
    z0 = lat[idx]; noise = torch.randn(z0.shape, generator=gen)
    t = torch.randint(0, 1000, (batch,), generator=gen)
    zt = ns.add_noise(z0, noise, t)
    drop = (torch.rand(batch, generator=gen) < 0.1)[:, None, None]
    ctx = torch.where(drop, uncond.expand_as(cond[idx]), cond[idx])
    loss = torch.nn.functional.mse_loss(unet(zt, t, encoder_hidden_states=ctx).sample, noise)
    opt.zero_grad(); loss.backward(); opt.step(); sched.step(); losses.append(loss.item())
train_s = time.time() - t0
unet.eval()
pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=te, tokenizer=tok, scheduler=DDIMScheduler(**SCHED), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
pipe.set_progress_bar_config(disable=True)
judge = load_judge(); _, ep, es = dataset(20000, 128)
out = {}
for g in (2.0, 5.0):
    ims = generate_images(pipe, ep, "dpmpp-2m", 16, g, 0, 128, 32)
    out[g] = {k: round(v, 3) for k, v in judge.prompt_accuracy(ims, es).items()}
print(json.dumps({"arm": arm, "steps": steps, "batch": batch, "train_s": round(train_s), "loss_last100": round(float(np.mean(losses[-100:])), 4), "acc_dpmpp2m_16": out}), flush=True)
