"""The model catalogue: the paper's family built in, local diffusers folders, cached hub ids, registered names.

A ``ModelSpec`` holds the configs needed to build a model (for profiling, random weights are enough) and, for
real checkpoints, where the weights are. Parameter counts are computed from the config by instantiating the UNet
on torch's ``meta`` device (no memory, no weights), never typed in.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ldmpick.errors import ModelError, UsageError, unknown_name

# Base channel count c of each size of the paper's family (Mei et al. 2024, arXiv 2404.01367, Table 1).
FAMILY_CHANNELS: dict[str, int] = {
    "ldm-39m": 64,
    "ldm-83m": 96,
    "ldm-145m": 128,
    "ldm-223m": 160,
    "ldm-318m": 192,
    "ldm-430m": 224,
    "ldm-558m": 256,
    "ldm-704m": 288,
    "ldm-866m": 320,
    "ldm-2b": 512,
    "ldm-5b": 768,
}

# The demo family trained here on ldmpick.demo_world (``ldmpick demo train``), shipped as diffusers folders inside
# the package: name -> folder under ldmpick/demo_models/. The number is the base channel count c.
DEMO_MODELS_DIR = Path(__file__).resolve().parent / "demo_models"
DEMO_MODELS: dict[str, str] = {f"demo-c{c}": f"demo-c{c}" for c in (8, 12, 16, 24, 32)}


def family_unet_config(c: int, sample_size: int = 64) -> dict[str, Any]:
    """The verified diffusers config of the paper's family (shared/reference/paper_family.md)."""
    return dict(
        block_out_channels=[c, 2 * c, 4 * c, 4 * c],
        down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        layers_per_block=2,
        attention_head_dim=8,
        cross_attention_dim=1024,
        in_channels=4,
        out_channels=4,
        norm_num_groups=32,
        sample_size=sample_size,
    )


# SD-v1.x fixed parts: CLIP ViT-L/14 text encoder and the SD VAE.
SD_TEXT_ENCODER_CONFIG: dict[str, Any] = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    vocab_size=49408,
    hidden_act="quick_gelu",
)
SD_VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512],
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)

REQUIRED_UNET_KEYS: dict[str, type | tuple[type, ...]] = {
    "block_out_channels": (list, tuple),
    "in_channels": int,
    "out_channels": int,
    "cross_attention_dim": (int, list, tuple),
}


@dataclass
class ModelSpec:
    """What ldmpick knows about one model."""

    name: str
    kind: str  # "family" | "demo" | "local" | "hub"
    unet_config: dict[str, Any]
    text_encoder_config: dict[str, Any] = field(default_factory=lambda: dict(SD_TEXT_ENCODER_CONFIG))
    vae_config: dict[str, Any] = field(default_factory=lambda: dict(SD_VAE_CONFIG))
    scheduler_config: dict[str, Any] | None = None
    path: Path | None = None  # pipeline folder for real checkpoints
    source: str = ""  # what the user typed: family name, folder or hub id

    @property
    def has_weights(self) -> bool:
        return self.path is not None

    @property
    def latent_channels(self) -> int:
        return int(self.unet_config.get("in_channels", 4))

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae_config.get("block_out_channels", [0, 0, 0, 0])) - 1)

    @property
    def cross_attention_dim(self) -> int:
        dim = self.unet_config.get("cross_attention_dim", 768)
        return int(dim[0] if isinstance(dim, (list, tuple)) else dim)

    @property
    def unet_params(self) -> int:
        return count_unet_params(json.dumps(self.unet_config, sort_keys=True))


@lru_cache(maxsize=64)
def count_unet_params(config_json: str) -> int:
    """Parameters of ``UNet2DConditionModel(**config)``, counted on the meta device (no memory used)."""
    import torch
    from diffusers import UNet2DConditionModel

    config = json.loads(config_json)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**_constructor_args(config))
    return sum(p.numel() for p in unet.parameters())


def _constructor_args(config: dict[str, Any]) -> dict[str, Any]:
    """Drop diffusers bookkeeping keys (``_class_name`` ...) from a saved config."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


def family_spec(name: str) -> ModelSpec:
    c = FAMILY_CHANNELS[name]
    return ModelSpec(name=name, kind="family", unet_config=family_unet_config(c), source=name)


def format_params(n: int) -> str:
    """``865_910_724`` -> ``'865.9M'``; billions keep the M unit too (``'2190.3M'``) for easy comparison."""
    return f"{n / 1e6:.1f}M"


# ---------------------------------------------------------------------------------------------- registry


def registry_path() -> Path:
    from ldmpick.storage import config_dir

    return config_dir() / "models.json"


def load_registry() -> dict[str, str]:
    """Registered names -> local folder or hub id. Missing file -> empty."""
    path = registry_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"model registry '{path}' is unreadable ({exc}); fix or delete it") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in models.items()):
        raise UsageError(f"model registry '{path}' is malformed; fix or delete it")
    return dict(models)


def save_registry(models: dict[str, str]) -> None:
    """Replace the whole registry. To add or remove one name use ``update_registry``: a load here followed by a
    save loses what another process wrote in between."""
    from ldmpick.storage import file_lock

    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        _write_registry(path, models)


def update_registry(change: Callable[[dict[str, str]], dict[str, str] | None]) -> dict[str, str]:
    """Read, change and write the registry under one inter-process lock, so that concurrent ``models add`` /
    ``models remove`` never lose each other's entries. ``change`` gets a copy of the current registry and returns
    the new one (or edits it in place and returns None); if it raises, nothing is written. Returns the new registry.
    """
    from ldmpick.storage import file_lock

    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        current = load_registry()
        working = dict(current)
        result = change(working)
        new = working if result is None else result
        if not isinstance(new, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in new.items()):
            raise TypeError("update_registry: change must return a dict of str -> str")  # a programming error
        if new != current:
            _write_registry(path, new)
    return dict(new)


def _write_registry(path: Path, models: dict[str, str]) -> None:
    """Write the registry file atomically; the caller holds the lock (file locks do not nest)."""
    from ldmpick.storage import atomic_write_json

    atomic_write_json(path, {"schema": "ldmpick.registry/1", "models": dict(sorted(models.items()))})


# ---------------------------------------------------------------------------------------------- resolution

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def known_names() -> list[str]:
    return list(FAMILY_CHANNELS) + list(DEMO_MODELS) + sorted(load_registry())


def resolve_model(name: str) -> ModelSpec:
    """A family name, a registered name, a local diffusers folder or a cached hub id -> ``ModelSpec``."""
    name = name.strip()
    if not name:
        raise UsageError("empty model name")
    if name in FAMILY_CHANNELS:
        return family_spec(name)
    if name in DEMO_MODELS:
        folder = DEMO_MODELS_DIR / DEMO_MODELS[name]
        if not (folder / "model_index.json").exists():
            raise ModelError(f"demo model '{name}' is not installed at '{folder}' (train it with 'ldmpick demo train')")
        return load_local_spec(folder, name=name, kind="demo", source=name)
    registry = load_registry()
    if name in registry:
        spec = resolve_model(registry[name])
        spec.name = name
        return spec
    path = Path(name).expanduser()
    if path.exists():
        return load_local_spec(path)
    if HUB_ID.match(name) and not name.startswith((".", "/")):
        return load_local_spec(hub_snapshot(name), name=name, kind="hub", source=name)
    raise unknown_name("model", name, known_names())


def resolve_trusted_name(label: str) -> ModelSpec | None:
    """Resolve a model label read from a profile file, which may have come from someone else.

    Only what the user's own installation defines is resolved: a family name, a shipped demo name, a name in the
    user's registry, or a hub id from the local Hugging Face cache (never downloaded). A label that is a path is
    never opened, whether or not it exists: profiles are data, and ``source`` / ``name`` in them are labels only.
    Returns None for any other label. A registered name whose folder is gone, or a hub id not in the cache, still
    raises ``ModelError``.
    """
    name = label.strip() if isinstance(label, str) else ""
    if not name:
        return None
    if name in FAMILY_CHANNELS or name in DEMO_MODELS:
        return resolve_model(name)
    registry = load_registry()
    if name in registry:
        return resolve_model(name)  # the user registered it: their own folder or hub id
    if HUB_ID.match(name) and ".." not in name and not Path(name).expanduser().exists():
        # (a hub id that is also a relative folder here would be loaded from the folder by resolve_model: refused)
        return load_local_spec(hub_snapshot(name), name=name, kind="hub", source=name)
    return None


def parse_model_list(text: str | None) -> list[str]:
    """``"ldm-39m,ldm-83m"`` or ``"all"`` (the whole family) -> list of names. Empty -> error."""
    if text is None or text.strip().lower() == "all":
        return list(FAMILY_CHANNELS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("empty model list; give names like 'ldm-39m,ldm-83m' or 'all'")
    return list(dict.fromkeys(names))


def hub_snapshot(repo_id: str) -> Path:
    """The local snapshot folder of a hub model, without touching the network unless allowed and needed."""
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    try:
        folder = snapshot_download(
            repo_id,
            local_files_only=True,
            allow_patterns=["*.json", "*.txt", "*.safetensors", "tokenizer/*"],
        )
    except Exception:  # LocalEntryNotFoundError and friends: not in the cache
        how = (
            "unset HF_HUB_OFFLINE and run"
            if offline
            else "run, on a machine with network access,"
        )
        raise ModelError(
            f"hub model '{repo_id}' is not in the local Hugging Face cache; {how} "
            f"'huggingface-cli download {repo_id}' (or pass a local folder)"
        ) from None
    return Path(folder)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model folder '{path.parent.parent}' has no {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"'{path}' is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ModelError(f"'{path}' must hold a JSON object")
    return data


def load_local_spec(folder: Path, name: str | None = None, kind: str = "local", source: str | None = None) -> ModelSpec:
    """Read a diffusers pipeline folder (``model_index.json``, ``unet/config.json`` ...) into a ``ModelSpec``."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelError(f"'{folder}' is not a folder")
    unet_cfg_path = folder / "unet" / "config.json"
    if not unet_cfg_path.exists():
        raise ModelError(f"model folder '{folder}' has no unet/config.json (not a diffusers pipeline folder)")
    unet_config = _read_json(unet_cfg_path, "unet/config.json")
    for key, typ in REQUIRED_UNET_KEYS.items():
        if key not in unet_config:
            raise ModelError(f"'{unet_cfg_path}' lacks the key '{key}'")
        if not isinstance(unet_config[key], typ) or isinstance(unet_config[key], bool):
            raise ModelError(f"'{unet_cfg_path}': key '{key}' has the wrong type ({type(unet_config[key]).__name__})")
    boc = unet_config["block_out_channels"]
    if not boc or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in boc):
        raise ModelError(f"'{unet_cfg_path}': 'block_out_channels' must be a list of positive integers")
    te_path = folder / "text_encoder" / "config.json"
    vae_path = folder / "vae" / "config.json"
    sched_path = folder / "scheduler" / "scheduler_config.json"
    text_encoder_config = _read_json(te_path, "text_encoder/config.json") if te_path.exists() else dict(SD_TEXT_ENCODER_CONFIG)
    vae_config = _read_json(vae_path, "vae/config.json") if vae_path.exists() else dict(SD_VAE_CONFIG)
    scheduler_config = _read_json(sched_path, "scheduler/scheduler_config.json") if sched_path.exists() else None
    return ModelSpec(
        name=name or folder.resolve().name,
        kind=kind,
        unet_config=unet_config,
        text_encoder_config=text_encoder_config,
        vae_config=vae_config,
        scheduler_config=scheduler_config,
        path=folder.resolve(),
        source=source or str(folder),
    )


def check_safetensors_weights(folder: Path, component: str) -> None:
    """Refuse a component that has only pickle-based weights (``.bin``, ``.pt``, ``.ckpt``)."""
    comp = Path(folder) / component
    if any(comp.glob("*.safetensors")):
        return
    if any(p.suffix in {".bin", ".pt", ".pth", ".ckpt", ".pkl"} for p in comp.glob("*")):
        raise ModelError(
            f"'{comp}' has only pickle-based weights (.bin/.pt/.ckpt); ldmpick loads safetensors only "
            "(convert them with diffusers' save_pretrained(safe_serialization=True))"
        )
    raise ModelError(f"'{comp}' has no .safetensors weights")
