"""A CLIP checkpoint as the scorers use it: transformers' ``CLIPModel`` from a local folder or a cached hub id,
safetensors only, and the two embeddings the scorers compare (images, prompts).

What is refused, each in one line: a folder or hub id with no ``config.json`` of a CLIP model, weights that exist only
as pickle (``pytorch_model.bin``, ``.pt``: loading them runs code), a checkpoint without its tokenizer. Images are
preprocessed here with torch, as CLIP's image processor does (bicubic resize of the shorter side, centre crop,
the checkpoint's mean and std from ``preprocessor_config.json``), because transformers' default image processor now
needs torchvision, which this project keeps clear of. No printing here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldmpick.files.errors import ModelError, UsageError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# OpenAI CLIP's preprocessing (also LAION's CLIP-H and PickScore's): used when the folder has no
# preprocessor_config.json
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_TEXT_TOKENS = 77  # CLIP's text context: longer prompts are cut, as every CLIP-score implementation does


def checkpoint_folder(ref: str) -> Path:
    """The folder of scorer checkpoint ``ref``: a local folder, or a hub id in the local Hugging Face cache (never
    downloaded)."""
    from ldmpick.models.catalogue import HUB_ID, hub_snapshot

    ref = ref.strip()
    if not ref:
        raise UsageError("--scorer-model: give a folder or a hub id of a CLIP checkpoint")
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"--scorer-model '{ref}' is a file; give the checkpoint's folder (config.json, "
                             "model.safetensors, tokenizer)")
        return path.resolve()
    if HUB_ID.match(ref) and not ref.startswith((".", "/")):
        return hub_snapshot(ref)
    raise UsageError(f"--scorer-model '{ref}' is neither a folder nor a hub id")


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files transformers loads from ``folder`` (one file, or the shards its index names); a folder
    whose weights are only pickle is refused in one line."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        from ldmpick.files.reader import read_json_file

        data = read_json_file(index, "safetensors index")
        names = sorted(set((data.get("weight_map") or {}).values())) if isinstance(data, dict) else []
        files = [folder / n for n in names if isinstance(n, str) and "/" not in n and n.endswith(".safetensors")]
        if files and all(f.is_file() for f in files):
            return files
        raise ModelError(f"'{index}' names shards that are not in '{folder}'")
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    if any(p.suffix in PICKLE_SUFFIXES for p in folder.iterdir()):
        raise ModelError(f"scorer '{folder}' has only pickle-based weights (.bin/.pt); ldmpick loads safetensors only "
                         "(convert them with transformers' save_pretrained(safe_serialization=True))")
    raise ModelError(f"scorer '{folder}' has no model.safetensors")


def checkpoint_identity(ref: str) -> tuple[str, str]:
    """(slug, sha256) of scorer checkpoint ``ref`` without loading it: the sha256 of its weights, and its name in a
    scale key, the folder's name (a hub snapshot: the repository's) and the first 8 hex digits of that sha256, so
    that the same weights are one scale wherever they lie. A folder that is no CLIP checkpoint is refused here."""
    folder = checkpoint_folder(ref)
    check_clip_config(folder, ref)
    h = hashlib.sha256()
    for f in weight_files(folder):
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    name = folder.name
    if len(folder.parents) >= 2 and folder.parent.name == "snapshots":  # <cache>/models--org--name/snapshots/<rev>
        name = folder.parents[1].name.split("--")[-1]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:60] or "clip"
    return f"{name}-{h.hexdigest()[:8]}", h.hexdigest()


def check_clip_config(folder: Path, ref: str) -> None:
    """``folder`` holds the config.json of a transformers CLIPModel (one-line error otherwise)."""
    from ldmpick.files.reader import read_json_file

    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelError(f"scorer '{ref}' has no config.json (a transformers CLIPModel checkpoint has one)")
    config = read_json_file(config_path, "scorer config")
    if not isinstance(config, dict) or config.get("model_type") != "clip":
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise ModelError(f"scorer '{ref}' is not a CLIP model (config.json model_type {kind!r}; the scorers load "
                         "a transformers CLIPModel)")


@dataclass
class ClipCheckpoint:
    """A loaded CLIP checkpoint: the model, its tokenizer and its image preprocessing."""

    ref: str  # what the user gave
    folder: Path
    slug: str
    model: Any
    tokenizer: Any
    device: str
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, ref: str, device: str = "cpu") -> ClipCheckpoint:
        slug, _ = checkpoint_identity(ref)
        folder = checkpoint_folder(ref)
        model, tokenizer = _load_model(folder, ref, device)
        size, mean, std = _preprocessing(folder, model)
        return cls(ref=ref, folder=folder, slug=slug, model=model, tokenizer=tokenizer, device=device,
                   image_size=size, mean=mean, std=std,
                   facts={"checkpoint": slug, "ref": ref, "projection_dim": int(model.config.projection_dim),
                          "image_size": size})

    def pixel_values(self, images: Any) -> Any:
        """uint8 ``(n, h, w, 3)`` images as CLIP's input: bicubic resize of the shorter side to the model's size,
        centre crop, normalised with the checkpoint's mean and std."""
        import numpy as np
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        h, w = x.shape[-2:]
        scale = self.image_size / min(h, w)
        nh, nw = max(self.image_size, round(h * scale)), max(self.image_size, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        top, left = (nh - self.image_size) // 2, (nw - self.image_size) // 2
        x = x[:, :, top:top + self.image_size, left:left + self.image_size]
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std

    def image_embeddings(self, images: Any, batch: int = 32) -> Any:
        """Unit-length image embeddings, float64 numpy ``(n, projection_dim)``."""
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(images), batch):
                px = self.pixel_values(images[i:i + batch]).to(self.device, dtype=self.model.dtype)
                out.append(_unit(_features(self.model.get_image_features(pixel_values=px))))
        return torch.cat(out).double().numpy()

    def text_embeddings(self, prompts: list[str], batch: int = 64) -> Any:
        """Unit-length prompt embeddings, float64 numpy ``(n, projection_dim)`` (prompts cut at 77 tokens)."""
        import torch

        out = []
        length = min(MAX_TEXT_TOKENS, self.model.config.text_config.max_position_embeddings)
        with torch.no_grad():
            for i in range(0, len(prompts), batch):
                tok = self.tokenizer(prompts[i:i + batch], padding="max_length", truncation=True, max_length=length,
                                     return_tensors="pt")
                feats = self.model.get_text_features(input_ids=tok["input_ids"].to(self.device),
                                                     attention_mask=tok["attention_mask"].to(self.device))
                out.append(_unit(_features(feats)))
        return torch.cat(out).double().numpy()

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())


def _features(out: Any) -> Any:
    """The embedding tensor of ``get_*_features`` (a tensor, or in newer transformers an output with it pooled)."""
    if hasattr(out, "pooler_output") and not hasattr(out, "shape"):
        return out.pooler_output
    return out


def _unit(x: Any) -> Any:
    return (x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)).float().cpu()


def _load_model(folder: Path, ref: str, device: str) -> tuple[Any, Any]:
    try:  # (transformers logs notices we have no use for)
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - cosmetic only
        pass
    from transformers import AutoTokenizer, CLIPModel

    try:
        model = CLIPModel.from_pretrained(str(folder), use_safetensors=True, local_files_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ModelError(f"cannot load scorer '{ref}' as a CLIPModel ({exc.__class__.__name__}: {first})") from None
    has_files = ((folder / "tokenizer.json").is_file()
                 or all((folder / f).is_file() for f in ("vocab.json", "merges.txt")))
    try:  # (without its files, transformers 5 builds an empty tokenizer that maps every word to one token)
        if not has_files:
            raise FileNotFoundError
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception:
        raise ModelError(f"scorer '{ref}' has no tokenizer (tokenizer.json, or vocab.json and merges.txt); copy the "
                         "tokenizer files of the CLIP it was trained from into its folder") from None
    return model.eval().to(device), tokenizer


def _preprocessing(folder: Path, model: Any) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """(input size, mean, std) from ``preprocessor_config.json``, else the vision config's size and CLIP's mean/std."""
    from ldmpick.files.reader import read_json_file

    size = int(model.config.vision_config.image_size)
    mean, std = CLIP_MEAN, CLIP_STD
    path = folder / "preprocessor_config.json"
    if path.is_file():
        cfg = read_json_file(path, "scorer preprocessor config")
        if isinstance(cfg, dict):
            crop = cfg.get("crop_size")
            crop = crop.get("height") if isinstance(crop, dict) else crop
            if isinstance(crop, int) and not isinstance(crop, bool) and crop > 0:
                size = crop
            m, s = cfg.get("image_mean"), cfg.get("image_std")
            if _triple(m) and _triple(s) and all(v > 0 for v in s):
                mean, std = tuple(float(v) for v in m), tuple(float(v) for v in s)
    return size, mean, std


def _triple(v: Any) -> bool:
    return (isinstance(v, list) and len(v) == 3
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v))
