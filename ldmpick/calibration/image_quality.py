"""Measuring image quality for real: a Fréchet distance in a learned feature space, and prompt accuracy.

For the demo world (``ldmpick.demo.world``) ldmpick ships its own *world judge*: a small CNN trained on the world's
images to name each image's attributes (shape, colour, size, position, background). Its penultimate layer is the
feature space of the Fréchet distance (computed exactly as FID is, only with this network instead of Inception-v3),
and its attribute heads give *prompt accuracy*: the fraction of a caption's attributes that the generated image
shows, a CLIP-score analogue that is exact for this world.

- ``frechet_distance(a, b)``: the standard formula ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2)``.
- ``WorldJudge``: the network; ``load_judge()`` loads the shipped weights (safetensors) with their facts.
- ``train_judge(...)``: the reproducible training that made the shipped weights (``ldmpick demo train-judge``).
- ``InceptionFeatures``: Inception-v3 pool features for real SD models, from a local weights file the user gives.

torch is imported inside the functions; nothing here prints.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ldmpick import PACKAGE_DIR
from ldmpick.demo.world import IMAGE_SIZE as JUDGE_SIDE  # the world's images: what the judge learnt
from ldmpick.files.errors import UsageError

JUDGE_SCHEMA = "ldmpick.judge/1"
FEATURE_DIM = 64
ATTRIBUTES = ("shape", "colour", "size", "position", "background")


def judge_dir() -> Path:
    return PACKAGE_DIR / "data"


def judge_weights_path() -> Path:
    return judge_dir() / "world_judge.safetensors"


def attribute_classes() -> dict[str, list[str]]:
    from ldmpick.demo.world import COLOURS, POSITIONS, SHAPES, SIZES

    return {"shape": list(SHAPES), "colour": list(COLOURS), "size": list(SIZES), "position": list(POSITIONS),
            "background": list(COLOURS)}


def scene_labels(scenes: list[Any]) -> dict[str, list[int]]:
    """Class indices of each attribute for each scene."""
    classes = attribute_classes()
    return {a: [classes[a].index(getattr(s, a)) for s in scenes] for a in ATTRIBUTES}


# ---------------------------------------------------------------------------------------------- statistics


def frechet_distance(a: Any, b: Any) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` (arrays ``(n, d)``), as in FID
    (Heusel et al. 2017): ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 sqrtm(S_a S_b))``."""
    import numpy as np
    from scipy import linalg

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise UsageError(f"feature sets must be (n, d) arrays of the same d, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise UsageError("a Fréchet distance needs at least 2 samples on each side")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise UsageError("feature sets contain NaN or infinite values")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    import warnings

    with warnings.catch_warnings():  # scipy warns on near-singular products; handled below as pytorch-fid does
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(s_a @ s_b)
        if not np.isfinite(covmean).all():  # near-singular product: offset the diagonals
            offset = np.eye(s_a.shape[0]) * 1e-6
            covmean = linalg.sqrtm((s_a + offset) @ (s_b + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3 * max(1.0, float(np.abs(covmean).max()))):
            raise UsageError("the Fréchet distance is numerically unstable for these features (complex square "
                             "root); use more samples")
        covmean = covmean.real
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


# ---------------------------------------------------------------------------------------------- the judge


def _build_network(feature_dim: int = FEATURE_DIM):  # -> torch.nn.Module
    import torch
    from torch import nn

    classes = attribute_classes()

    class WorldJudge(nn.Module):
        """32 px RGB in [-1, 1] -> ``feature_dim`` features -> one linear head per attribute."""

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, 32, 3, padding=1), nn.GroupNorm(4, 32), nn.SiLU(),
                nn.Conv2d(32, 32, 3, padding=1), nn.GroupNorm(4, 32), nn.SiLU(), nn.MaxPool2d(2),  # 16
                nn.Conv2d(32, 64, 3, padding=1), nn.GroupNorm(8, 64), nn.SiLU(), nn.MaxPool2d(2),  # 8
                nn.Conv2d(64, 64, 3, padding=1), nn.GroupNorm(8, 64), nn.SiLU(), nn.MaxPool2d(2),  # 4
                nn.Flatten(), nn.Linear(64 * 16, feature_dim), nn.SiLU(),
            )
            self.heads = nn.ModuleDict({a: nn.Linear(feature_dim, len(classes[a])) for a in ATTRIBUTES})

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            f = self.body(x)
            return {a: h(f) for a, h in self.heads.items()}

    return WorldJudge()


def images_to_tensor(images: Any, size: int | None = None):  # -> torch.Tensor (n, 3, h, w) in [-1, 1]
    """uint8 ``(n, h, w, 3)`` arrays, or PIL images, to a tensor; with ``size``, resized to it (the judge's input:
    the demo world's side, for a model of another native size judged on the demo world)."""
    import numpy as np
    import torch

    if isinstance(images, list):
        images = np.stack([np.asarray(im.convert("RGB"), dtype=np.uint8) for im in images])
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise UsageError(f"images must be (n, h, w, 3), got shape {arr.shape}")
    x = torch.from_numpy(arr.astype(np.float32)).permute(0, 3, 1, 2) / 127.5 - 1.0
    if size is not None and x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False)
    return x


@dataclass
class Judge:
    """The loaded world judge and the facts of its training."""

    network: Any
    facts: dict[str, Any]

    def features(self, images: Any, batch: int = 512) -> Any:
        """Penultimate-layer features (numpy ``(n, FEATURE_DIM)``) of uint8 images or PIL images."""
        import torch

        x = images_to_tensor(images, JUDGE_SIDE)
        with torch.no_grad():
            return torch.cat([self.network.features(x[i:i + batch]) for i in range(0, len(x), batch)]).numpy()

    def predict(self, images: Any, batch: int = 512) -> dict[str, list[int]]:
        import torch

        x = images_to_tensor(images, JUDGE_SIDE)
        out: dict[str, list[int]] = {a: [] for a in ATTRIBUTES}
        with torch.no_grad():
            for i in range(0, len(x), batch):
                for a, logits in self.network(x[i:i + batch]).items():
                    out[a].extend(int(k) for k in logits.argmax(1))
        return out

    def prompt_accuracy(self, images: Any, scenes: list[Any]) -> dict[str, float]:
        """Per attribute, the fraction of images showing what their caption asked for; ``mean`` over attributes;
        ``all`` the fraction of images with every attribute right."""
        hits, every = self.attribute_hits(images, scenes)
        return accuracy_from_hits(hits, every, len(scenes))

    def attribute_hits(self, images: Any, scenes: list[Any]) -> tuple[dict[str, int], int]:
        """Per attribute, how many images show what their caption asked for; and how many get every attribute
        right. Counts add up across shards of a calibration."""
        if len(images) != len(scenes):
            raise UsageError(f"{len(images)} images but {len(scenes)} scenes")
        pred = self.predict(images)
        want = scene_labels(scenes)
        hits = {a: sum(int(p == w) for p, w in zip(pred[a], want[a])) for a in ATTRIBUTES}
        every = sum(all(pred[a][i] == want[a][i] for a in ATTRIBUTES) for i in range(len(scenes)))
        return hits, every


def accuracy_from_hits(hits: dict[str, int], every: int, n: int) -> dict[str, float]:
    """Prompt accuracy from counts over ``n`` images: per attribute the fraction shown as asked, ``mean`` over the
    attributes, ``all`` the fraction with every attribute right (counts add up across a calibration's shards)."""
    per = {a: hits[a] / n for a in hits}
    return {**per, "mean": sum(per.values()) / len(per), "all": every / n}


def load_judge(weights: Path | None = None) -> Judge:
    """The shipped world judge (or one at ``weights``), from safetensors."""
    from safetensors.torch import load_file

    weights = Path(weights) if weights else judge_weights_path()
    facts_path = weights.with_suffix(".json")
    if not weights.exists():
        raise UsageError(f"world judge weights '{weights}' not found (an incomplete installation? reinstall ldmpick; "
                         f"'ldmpick demo train-judge --out DIR' retrains them into DIR, to copy here)")
    try:
        facts = json.loads(facts_path.read_text(encoding="utf-8")) if facts_path.exists() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"world judge facts '{facts_path}' are unreadable ({exc.__class__.__name__})") from None
    if not isinstance(facts, dict) or (facts and facts.get("schema") != JUDGE_SCHEMA):
        raise UsageError(f"'{facts_path}' is not a world judge file of schema '{JUDGE_SCHEMA}'")
    net = _build_network(int(facts.get("feature_dim", FEATURE_DIM)))
    try:
        net.load_state_dict(load_file(str(weights)))
    except Exception as exc:
        raise UsageError(f"cannot load world judge weights '{weights}' ({exc.__class__.__name__})") from None
    net.eval().requires_grad_(False)
    return Judge(net, facts)


def _augment(x: Any, gen: Any) -> Any:
    """Mild corruptions so that the judge also names attributes of imperfect (generated) images."""
    import torch

    n = x.shape[0]
    noise = torch.randn(x.shape, generator=gen) * (torch.rand(n, 1, 1, 1, generator=gen) * 0.15)
    blur = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    use_blur = (torch.rand(n, 1, 1, 1, generator=gen) < 0.3).float()
    return (x * (1 - use_blur) + blur * use_blur + noise).clamp(-1.5, 1.5)


def train_judge(out: Path | None = None, seed: int = 1, n_images: int = 8192, steps: int = 1500, batch: int = 128,
                threads: int = 1, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the world judge on world samples of ``seed`` (not the UNets' training seed), evaluate it on a held-out
    draw, write ``world_judge.safetensors`` and ``world_judge.json`` (facts) to ``out``."""
    import torch
    from safetensors.torch import save

    from ldmpick import __version__
    from ldmpick.demo.world import dataset
    from ldmpick.files.storage import atomic_write_bytes, atomic_write_json

    if n_images < batch or steps < 1 or batch < 2:
        raise UsageError("need n_images >= batch >= 2 and at least one step")
    say = progress or (lambda _msg: None)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    out = Path(out) if out else judge_dir()
    images, _, scenes = dataset(seed, n_images)
    x = images_to_tensor(images)
    labels = {a: torch.tensor(v) for a, v in scene_labels(scenes).items()}
    net = _build_network()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, n_images, (batch,), generator=gen)
        logits = net(_augment(x[idx], gen))
        loss = sum(torch.nn.functional.cross_entropy(logits[a], labels[a][idx]) for a in ATTRIBUTES)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            say(f"judge step {step}/{steps} loss {loss.item():.4f}")
    wall = time.perf_counter() - t0
    net.eval()
    judge = Judge(net, {})
    held_images, _, held_scenes = dataset(seed + 1000, 2048)
    accuracy = judge.prompt_accuracy(held_images, held_scenes)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    atomic_write_bytes(out / "world_judge.safetensors", save(state))
    facts = {
        "schema": JUDGE_SCHEMA,
        "what": "world judge: CNN feature network (Fréchet distance) + attribute heads (prompt accuracy)",
        "feature_dim": FEATURE_DIM,
        "params": sum(p.numel() for p in net.parameters()),
        "train": {"world_seed": seed, "images": n_images, "steps": steps, "batch": batch, "lr": 2e-3,
                  "augment": "gaussian noise (sigma up to 0.15), 3x3 blur on 30%", "threads": threads,
                  "wall_s": round(wall, 1), "final_loss": round(float(loss.item()), 4)},
        "held_out": {"world_seed": seed + 1000, "images": 2048,
                     "accuracy": {k: round(v, 4) for k, v in accuracy.items()}},
        "command": f"ldmpick demo train-judge --out DIR --seed {seed} --images {n_images} --steps {steps} "
                   f"--threads {threads}",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {"ldmpick": __version__, "torch": torch.__version__},
    }
    atomic_write_json(out / "world_judge.json", facts)
    return facts


# ---------------------------------------------------------------------------------------------- Inception (real SD)


class InceptionFeatures:
    """Inception-v3 2048-d pool features for FID of real models, from a local weights file (safetensors of
    torchvision's ``inception_v3`` state dict; never downloaded). Needs ``torchvision``."""

    def __init__(self, weights: Path, device: str = "cpu") -> None:
        weights = Path(weights)
        if not weights.exists():
            raise UsageError(f"Inception weights '{weights}' not found")
        if weights.suffix != ".safetensors":
            raise UsageError(f"Inception weights must be a .safetensors file (got '{weights.name}'); "
                             "pickle checkpoints are refused")
        try:
            from torchvision.models import inception_v3
        except ImportError:
            raise UsageError("Inception features need torchvision: pip install torchvision") from None
        from safetensors.torch import load_file

        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        try:
            net.load_state_dict(load_file(str(weights)))
        except Exception as exc:
            raise UsageError(f"'{weights}' is not an inception_v3 state dict ({exc.__class__.__name__})") from None
        net.fc = __import__("torch").nn.Identity()
        self.net = net.eval().to(device)
        self.device = device

    def features(self, images: Any, batch: int = 64) -> Any:
        """2048-d features, converted and resized ``batch`` images at a time (memory stays bounded)."""
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(images), batch):
                xb = torch.nn.functional.interpolate(images_to_tensor(images[i:i + batch]), size=(299, 299),
                                                     mode="bilinear", align_corners=False)
                out.append(self.net(xb.to(self.device)).float().cpu())
        return torch.cat(out).numpy()
