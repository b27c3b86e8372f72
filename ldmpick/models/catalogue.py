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

from ldmpick import PACKAGE_DIR
from ldmpick.demo.training import DEMO_CHANNELS  # the shipped family's sizes (no torch at import)
from ldmpick.files.errors import LdmpickError, ModelError, UsageError, unknown_name
from ldmpick.models.samplers import SD_SCHEDULER_CONFIG

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

# The demo family trained here on ldmpick.demo.world (``ldmpick demo train``), shipped as diffusers folders inside
# the package: name -> folder under ldmpick/demo_models/. The number is the base channel count c.
DEMO_MODELS_DIR = PACKAGE_DIR / "demo_models"
DEMO_MODELS: dict[str, str] = {f"demo-c{c}": f"demo-c{c}" for c in DEMO_CHANNELS}


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

SD_COMPONENT_CLASSES: dict[str, str] = {"unet": "UNet2DConditionModel", "text_encoder": "CLIPTextModel",
                                        "vae": "AutoencoderKL", "scheduler": "PNDMScheduler"}


@dataclass
class ModelSpec:
    """What ldmpick knows about one model: its family adapter, the configs of its components, where its weights are.

    ``components`` maps each component of ``model_index.json`` that has a config (denoiser, text encoders, VAE,
    scheduler) to that config; ``component_classes`` to the class ``model_index.json`` names for it.
    """

    name: str
    kind: str  # "family" | "demo" | "catalogue" | "local" | "hub"
    family: str  # the adapter's name (ldmpick.models.families)
    pipeline_class: str
    components: dict[str, dict[str, Any]]
    component_classes: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  # pipeline folder of a real checkpoint (weights); None for config-only models
    source: str = ""  # what the user typed: family name, folder or hub id
    distilled: bool = False  # few-step distilled (LCM, Turbo, Sprint, schnell): distilled samplers fit
    max_sequence_length: int | None = None  # the T5/Gemma token count the pipeline uses, when not the family's
    default_guidance: float | None = None
    default_steps: int | None = None
    null_components: tuple[str, ...] = ()  # what model_index.json lists as [null, null] (SD3 without its T5)

    # ------------------------------------------------------------------ the adapter
    @property
    def adapter(self):  # -> ldmpick.models.families.Family
        from ldmpick.models.families import family_named

        return family_named(self.family)

    @property
    def denoiser_config(self) -> dict[str, Any]:
        return self.adapter.denoiser_config(self)

    @property
    def unet_config(self) -> dict[str, Any]:
        """The denoiser's config (the name predates transformer denoisers)."""
        return self.denoiser_config

    @property
    def text_encoder_config(self) -> dict[str, Any]:
        return self.components.get("text_encoder", {})

    @property
    def vae_config(self) -> dict[str, Any]:
        return self.components.get("vae", {})

    @property
    def scheduler_config(self) -> dict[str, Any] | None:
        return self.components.get("scheduler")

    # ------------------------------------------------------------------ weights
    @property
    def has_weights(self) -> bool:
        """True when every weighted component has safetensors weights (pickle-only weights do not count)."""
        return self.path is not None and not self.weight_problems()

    def weight_problems(self) -> list[str]:
        """Why the weights cannot be loaded: one message per component (empty when they can)."""
        if self.path is None:
            return [f"model '{self.name}' has no weights (configs only, for profiling)"]
        out = []
        for comp in self.weight_components():
            try:
                check_safetensors_weights(self.path, comp)
            except ModelError as exc:
                out.append(str(exc))
        return out

    def weight_components(self) -> list[str]:
        from ldmpick.models.families.base import NON_WEIGHT_COMPONENTS

        return [c for c in self.components if c not in NON_WEIGHT_COMPONENTS]

    # ------------------------------------------------------------------ shapes
    @property
    def denoiser_params(self) -> int:
        return self.adapter.count_params(self)

    @property
    def unet_params(self) -> int:
        return self.denoiser_params

    @property
    def latent_channels(self) -> int:
        return self.adapter.latent_channels(self)

    @property
    def vae_scale_factor(self) -> int:
        return self.adapter.vae_scale_factor(self)

    @property
    def cross_attention_dim(self) -> int:
        dim = self.denoiser_config.get("cross_attention_dim", 768)
        return int(dim[0] if isinstance(dim, (list, tuple)) else dim)

    @property
    def native_resolution(self) -> int:
        return self.adapter.native_resolution(self)

    @property
    def resolution_multiple(self) -> int:
        return self.adapter.resolution_multiple(self)

    @property
    def guidance(self) -> float:
        """The guidance scale this model runs at by default (its card's, else its family's)."""
        return self.default_guidance if self.default_guidance is not None else self.adapter.default_guidance


def _constructor_args(config: dict[str, Any]) -> dict[str, Any]:
    """Drop diffusers bookkeeping keys (``_class_name`` ...) from a saved config."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


def family_spec(name: str) -> ModelSpec:
    c = FAMILY_CHANNELS[name]
    return ModelSpec(
        name=name, kind="family", family="sd", pipeline_class="StableDiffusionPipeline",
        components={"unet": family_unet_config(c), "text_encoder": dict(SD_TEXT_ENCODER_CONFIG),
                    "vae": dict(SD_VAE_CONFIG), "scheduler": {"_class_name": "PNDMScheduler", **SD_SCHEDULER_CONFIG}},
        component_classes=dict(SD_COMPONENT_CLASSES), source=name,
    )


def format_params(n: int) -> str:
    """``865_910_724`` -> ``'865.9M'``; billions keep the M unit too (``'2190.3M'``) for easy comparison."""
    return f"{n / 1e6:.1f}M"


# ---------------------------------------------------------------------------------------------- built-in catalogue

CATALOGUE_DIR = PACKAGE_DIR / "data" / "models"


@lru_cache(maxsize=1)
def catalogue_entries() -> dict[str, dict[str, Any]]:
    """The built-in catalogue of released models (configs only): name -> entry of ``data/models/catalogue.json``."""
    path = CATALOGUE_DIR / "catalogue.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict(data.get("models", {}))


def catalogue_spec(name: str) -> ModelSpec:
    entry = catalogue_entries()[name]
    spec = load_local_spec(CATALOGUE_DIR / entry.get("folder", name), name=name, kind="catalogue",
                           source=entry.get("hub_id") or name)
    spec.path = None  # configs only: profiling builds random weights; generation needs the real checkpoint
    apply_catalogue_entry(spec, entry)
    return spec


def apply_catalogue_entry(spec: ModelSpec, entry: dict[str, Any]) -> None:
    spec.distilled = bool(entry.get("distilled", spec.distilled))
    if entry.get("max_sequence_length"):
        spec.max_sequence_length = int(entry["max_sequence_length"])
    if entry.get("default_guidance") is not None:
        spec.default_guidance = float(entry["default_guidance"])
    if entry.get("default_steps"):
        spec.default_steps = int(entry["default_steps"])


# ---------------------------------------------------------------------------------------------- registry


def registry_path() -> Path:
    from ldmpick.files.storage import config_dir

    return config_dir() / "models.json"


def _registry_data() -> Any:
    """The registry file's parsed JSON (None when there is none)."""
    from ldmpick.files.reader import read_json_file

    path = registry_path()
    if not path.exists() and not path.is_symlink():
        return None
    try:
        return read_json_file(path, "model registry", REGISTRY_MAX_BYTES)
    except UsageError as exc:
        raise UsageError(f"{exc}; fix or delete it") from None


def load_registry() -> dict[str, str]:
    """Registered names -> local folder or hub id. Missing file -> empty."""
    data = _registry_data()
    if data is None:
        return {}
    path = registry_path()
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not all(isinstance(k, str) and 0 < len(k) <= 256 and isinstance(v, str)
                                               and 0 < len(v) <= 4096 for k, v in models.items()):
        raise UsageError(f"model registry '{path}' is malformed (expected {{\"models\": {{name: folder or hub id}}}}); "
                         "fix or delete it")
    return dict(models)


REGISTRY_MAX_BYTES = 4 * 1024 * 1024
MAX_REGISTERED_GUIDANCE = 100.0


def load_registry_defaults() -> dict[str, dict[str, float]]:
    """Registered names -> the run defaults given at ``models add`` (``guidance``); an entry that is not a sane
    number is ignored (the registry's names stay usable). Missing file or block -> empty."""
    import math

    data = _registry_data()
    block = data.get("defaults") if isinstance(data, dict) else None
    out: dict[str, dict[str, float]] = {}
    for name, entry in (block.items() if isinstance(block, dict) else []):
        g = entry.get("guidance") if isinstance(entry, dict) else None
        if isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g) \
                and 0 <= g <= MAX_REGISTERED_GUIDANCE:
            out[str(name)] = {"guidance": float(g)}
    return out


def set_registry_default(name: str, guidance: float | None) -> None:
    """Record (or, with None, clear) the guidance a registered model runs at by default, under the registry's lock."""
    from ldmpick.files.storage import atomic_write_json, file_lock

    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        models = load_registry()
        defaults = {k: v for k, v in load_registry_defaults().items() if k in models and k != name}
        if guidance is not None:
            defaults[name] = {"guidance": float(guidance)}
        atomic_write_json(path, {"schema": "ldmpick.registry/1", "models": dict(sorted(models.items())),
                                 **({"defaults": dict(sorted(defaults.items()))} if defaults else {})})


def save_registry(models: dict[str, str]) -> None:
    """Replace the whole registry. To add or remove one name use ``update_registry``: a load here followed by a
    save loses what another process wrote in between."""
    from ldmpick.files.storage import file_lock

    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        _write_registry(path, models)


def update_registry(change: Callable[[dict[str, str]], dict[str, str] | None]) -> dict[str, str]:
    """Read, change and write the registry under one inter-process lock, so that concurrent ``models add`` /
    ``models remove`` never lose each other's entries. ``change`` gets a copy of the current registry and returns
    the new one (or edits it in place and returns None); if it raises, nothing is written. Returns the new registry.
    """
    from ldmpick.files.storage import file_lock

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
    from ldmpick.files.storage import atomic_write_json

    defaults = {k: v for k, v in load_registry_defaults().items() if k in models}  # kept for names still there
    atomic_write_json(path, {"schema": "ldmpick.registry/1", "models": dict(sorted(models.items())),
                             **({"defaults": dict(sorted(defaults.items()))} if defaults else {})})


# ---------------------------------------------------------------------------------------------- resolution

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def known_names() -> list[str]:
    return list(FAMILY_CHANNELS) + list(DEMO_MODELS) + list(catalogue_entries()) + sorted(load_registry())


def is_builtin(name: str) -> bool:
    """A name ldmpick defines itself (the paper's family, the demo family, the released-model catalogue)."""
    return name in FAMILY_CHANNELS or name in DEMO_MODELS or name in catalogue_entries()


def installed_params(name: str) -> int | None:
    """Denoiser parameters of the model this installation defines under a built-in name; None for any other name,
    or when they cannot be read. Built-in counts are cached on disk, so this does not import torch."""
    if not is_builtin(name):
        return None
    try:
        return int(resolve_model(name).denoiser_params)
    except (LdmpickError, OSError, ValueError, KeyError, TypeError):
        return None


def other_model_under_builtin_name(name: str, params: int, installed: int | None = None) -> bool:
    """Whether measurements labelled ``name`` with ``params`` denoiser parameters are of another model than the one
    this installation defines under that built-in name (a profile or calibration of an older demo family, or a
    renamed model): their latencies and quality say nothing about it. ``installed``: the count if already known."""
    ours = installed_params(name) if installed is None else installed
    return bool(ours and params > 0 and abs(params - ours) > 0.01 * ours)


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
    if name in catalogue_entries():
        return catalogue_spec(name)
    registry = load_registry()
    if name in registry:
        target = registry[name]
        if not Path(target).expanduser().exists() and (Path(target).is_absolute() or not HUB_ID.match(target)):
            raise ModelError(f"registered model '{name}' points to '{target}', which no longer exists (re-add it "
                             f"with 'ldmpick models add {name} FOLDER --force' or 'ldmpick models remove {name}')")
        spec = resolve_model(target)
        spec.name = name
        guidance = load_registry_defaults().get(name, {}).get("guidance")
        if guidance is not None:  # what 'models add --guidance' said this checkpoint runs at (a distilled one: 0)
            spec.default_guidance = float(guidance)
        return spec
    path = Path(name).expanduser()
    if path.exists():
        return load_local_spec(path)
    if HUB_ID.match(name) and not name.startswith((".", "/")):
        return load_local_spec(hub_snapshot(name), name=name, kind="hub", source=name)
    raise unknown_name("model", name, known_names())


def local_model_name(folder: Path) -> str:
    """The name a local diffusers folder given by path goes by in profiles, quality tables and generation records:
    its folder's name. A folder named like a shipped demo model that is not that model's installed folder (a
    retrained family: 'ldmpick demo train -o tr' writes tr/demo-c8, with the shipped parameter counts, so the
    parameter-count check cannot tell them apart) is called '<name>@<parent folder>' instead, so that it never
    borrows the shipped model's latency profile or quality data by name ('@' is in no built-in, registered or hub
    name). A folder named like a released model (sdxl-base) keeps that name: it is taken to hold that model, and a
    different model under its name is caught by its parameter count."""
    resolved = Path(folder).expanduser().resolve()
    name = resolved.name
    if name in DEMO_MODELS and resolved != (DEMO_MODELS_DIR / DEMO_MODELS[name]).resolve():
        return f"{name}@{resolved.parent.name or 'root'}"
    return name


def model_label(name: str) -> str:
    """The name profiles, quality tables and the law keep a model asked for as ``name`` under (what profiling and
    calibration record as ``resolve_model(name).name``): a folder given by path -> ``local_model_name``; any other
    name (built-in, registered, hub id, or a label a profile holds) as it is. Reads no config, imports no torch:
    this is the ``recommend`` path, where ``--models`` takes the same folders as ``profile``."""
    name = name.strip()
    if not name or is_builtin(name) or name in load_registry():
        return name
    path = Path(name).expanduser()
    return local_model_name(path) if path.is_dir() else name


def typed_by_label(names: list[str] | None) -> dict[str, str]:
    """The names as typed, by their ``model_label`` (the first of several that share one): what a command the user
    can paste names a model by (a folder 'm/demo-c8' is kept as 'demo-c8@m', which nothing resolves)."""
    out: dict[str, str] = {}
    for name in names or []:
        out.setdefault(model_label(name), name)
    return out


def model_labels(names: list[str] | None) -> list[str] | None:
    """``model_label`` of each name (order kept, duplicates dropped); None stays None."""
    return None if names is None else list(dict.fromkeys(model_label(n) for n in names))


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
    if is_builtin(name):
        return resolve_model(name)
    registry = load_registry()
    if name in registry:
        return resolve_model(name)  # the user registered it: their own folder or hub id
    if HUB_ID.match(name) and ".." not in name and not Path(name).expanduser().exists():
        # (a hub id that is also a relative folder here would be loaded from the folder by resolve_model: refused)
        return load_local_spec(hub_snapshot(name), name=name, kind="hub", source=name)
    return None


def command_name(label: str, typed: str | None = None) -> str | None:
    """How a model is named in a command the user can paste (``ldmpick calibrate --models ...``): as they typed it
    (a folder: its label 'demo-c8@m' names nothing to resolve), else by its label, shell-quoted; None for a model
    with no weights anywhere (the paper's family, the released-model configs): nothing to calibrate it with."""
    if label in FAMILY_CHANNELS or label in catalogue_entries():
        return None
    return models_argument([typed or label])


def models_argument(names: list[str]) -> str:
    """A ``--models`` value for a command line: the names joined by commas, quoted for the shell when needed."""
    import shlex

    return shlex.quote(",".join(names))


def check_distinct_names(typed: list[str], specs: list[ModelSpec]) -> None:
    """Each asked model must be recorded under a name of its own: profiles and quality tables key on it. Two
    folders of one name (runA/final, runB/final), or one model asked twice in two forms (a registered name and its
    folder), are an error before anything is built or measured (a profile holding both could not be read back)."""
    seen: dict[str, tuple[str, object]] = {}
    for name, spec in zip(typed, specs):
        key = spec.path.resolve() if spec.path is not None else (spec.source or spec.name)
        if spec.name not in seen:
            seen[spec.name] = (name, key)
            continue
        first, first_key = seen[spec.name]
        if first_key == key:
            raise UsageError(f"'{first}' and '{name}' are the same model ('{spec.name}'): name it once")
        raise UsageError(f"'{first}' and '{name}' are different models that would both be recorded as "
                         f"'{spec.name}'; register one under a name of its own ('ldmpick models add NAME {name}') "
                         "and ask for it by that name")


def parse_model_list(text: str | None) -> list[str]:
    """``"ldm-39m,ldm-83m"`` or ``"all"`` (the whole family) -> list of names. Empty -> error."""
    if text is None or text.strip().lower() == "all":
        return list(FAMILY_CHANNELS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("empty model list; give names like 'ldm-39m,ldm-83m' or 'all'")
    return list(dict.fromkeys(names))


def hub_download_command() -> str:
    """The download command of the installed huggingface_hub: 'hf download' (0.34 and later; 1.0 removed the old
    'huggingface-cli'), else 'huggingface-cli download'."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(x) for x in version("huggingface_hub").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return "hf download"
    return "hf download" if (major, minor) >= (0, 34) else "huggingface-cli download"


def hub_snapshot(repo_id: str) -> Path:
    """The local snapshot folder of a hub model, without touching the network unless allowed and needed."""
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    try:
        folder = snapshot_download(
            repo_id,
            local_files_only=True,
            allow_patterns=["*.json", "*.txt", "*.safetensors", "*.model", "tokenizer*/*"],
        )
    except Exception:  # LocalEntryNotFoundError and friends: not in the cache
        how = (
            "unset HF_HUB_OFFLINE and run"
            if offline
            else "run, on a machine with network access,"
        )
        raise ModelError(
            f"hub model '{repo_id}' is not in the local Hugging Face cache; {how} "
            f"'{hub_download_command()} {repo_id}' (or pass a local folder)"
        ) from None
    return Path(folder)


MAX_CONFIG_BYTES = 4 * 1024 * 1024  # the largest config of a released pipeline is a few kB (a tokenizer's is not read)


def read_model_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object of a model folder (``model_index.json``, a component's config), read through the one reader of
    user files: a regular file (a FIFO would hang, ``/dev/zero`` fill the memory), at most ``MAX_CONFIG_BYTES``,
    strict JSON (``"scaling_factor": NaN`` is refused, not turned into black images). One-line ``ModelError``."""
    from ldmpick.files.reader import read_json_file

    if not path.exists() and not path.is_symlink():
        raise ModelError(f"model folder '{path.parent.parent}' has no {what}")
    # a scheduler's config may hold ±Infinity (diffusers writes them); a model's never needs one, and NaN is refused
    data = read_json_file(path, f"model {what}", MAX_CONFIG_BYTES, error=ModelError,
                          infinity=path.name == "scheduler_config.json")
    if not isinstance(data, dict):
        raise ModelError(f"'{path}' must hold a JSON object")
    return data


def check_index_entries(index: dict[str, Any], where: str) -> None:
    """Every component of ``model_index.json`` is ``[library, class]``: two names, or ``[null, null]`` for an
    absent one (``"tokenizer": []`` passed and ended generate in IndexError). Entries that are not lists are the
    pipeline's own arguments (``"requires_safety_checker": true``)."""
    for comp, value in index.items():
        if comp.startswith("_") or not isinstance(value, list):
            continue
        if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", comp):
            raise ModelError(f"{where}: component name '{clip_name(comp)}' is not a plain name")
        ok = isinstance(value, list) and len(value) == 2 and (
            value == [None, None] or all(isinstance(v, str) and 0 < len(v) <= 128 for v in value))
        if not ok:
            raise ModelError(f"{where}: component '{comp}' must be [library, class] (or [null, null] for none); "
                             f"got {clip_name(json.dumps(value))}")


def clip_name(text: str, limit: int = 60) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return text if len(text) <= limit else text[:limit] + "..."


NO_CODE = "ldmpick never runs code from a model folder (it would need trust_remote_code)"


def check_no_custom_code(folder: Path, index: dict[str, Any]) -> None:
    """A model folder whose pipeline names a component from outside diffusers and transformers (a module of its own,
    e.g. ``["mymodule", "MyEncoder"]``), or that holds Python files, is refused: loading it would run that code
    (diffusers before 2026 did so for local folders without asking). A diffusers pipeline's own modules
    (``["stable_diffusion", "StableDiffusionSafetyChecker"]``) and absent components (``[null, null]``) are fine."""
    for comp, value in index.items():
        if comp.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[0] is None:
            continue
        library = value[0]
        if library in ("diffusers", "transformers") or _diffusers_pipeline_module(library):
            continue
        raise ModelError(f"model folder '{folder}': component '{comp}' comes from '{library}', which is neither "
                         f"diffusers nor transformers (custom code); {NO_CODE}")
    code = next(iter(sorted(p for p in _walk(folder, depth=4) if p.suffix.lower() in (".py", ".pyc", ".so"))), None)
    if code is not None:
        raise ModelError(f"model folder '{folder}' holds Python code ('{code.relative_to(folder)}'); {NO_CODE}: "
                         "remove the code to use its weights")


def _walk(folder: Path, depth: int) -> list[Path]:
    """Files of ``folder`` down to ``depth`` levels (links not followed): a pipeline folder is two levels deep, so
    code hidden deeper than four is as far as anything loading it would look."""
    found: list[Path] = []
    level = [folder]
    for _ in range(depth):
        nxt: list[Path] = []
        for d in level:
            try:
                entries = list(d.iterdir())
            except OSError:
                continue
            for e in entries:
                if e.is_dir() and not e.is_symlink():
                    nxt.append(e)
                else:
                    found.append(e)
        level = nxt
    return found


def _diffusers_pipeline_module(library: Any) -> bool:
    """Whether ``library`` names a module of diffusers' own pipelines (found on disk: diffusers is not imported)."""
    import importlib.util

    if not isinstance(library, str) or not re.fullmatch(r"[a-z0-9_]{1,64}", library):
        return False
    found = importlib.util.find_spec("diffusers")
    roots = [Path(r) / "pipelines" for r in (found.submodule_search_locations or [])] if found is not None else []
    return any((root / library).is_dir() or (root / f"{library}.py").is_file() for root in roots)


def load_local_spec(folder: Path, name: str | None = None, kind: str = "local", source: str | None = None) -> ModelSpec:
    """Read a diffusers pipeline folder (``model_index.json`` and each component's config) into a ``ModelSpec``.

    The family adapter is chosen from ``model_index.json``: the pipeline's ``_class_name`` and its denoiser's class.
    """
    from ldmpick.models.families import family_for
    from ldmpick.models.families.base import check_config_sizes

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelError(f"'{folder}' is not a folder")
    index_path = folder / "model_index.json"
    if not index_path.exists():
        raise ModelError(f"model folder '{folder}' has no model_index.json (not a diffusers pipeline folder)")
    index = read_model_json(index_path, "model_index.json")
    pipeline_class = index.get("_class_name")
    if not isinstance(pipeline_class, str):
        raise ModelError(f"'{index_path}' names no pipeline class ('_class_name')")
    check_index_entries(index, f"'{index_path}'")
    check_no_custom_code(folder, index)
    classes: dict[str, str] = {}
    for comp, value in index.items():
        if comp.startswith("_") or not isinstance(value, list) or len(value) != 2:
            continue
        library, cls = value
        if library in ("diffusers", "transformers") and isinstance(cls, str):
            classes[comp] = cls
    denoiser_comp = "unet" if "unet" in classes else "transformer" if "transformer" in classes else None
    family = family_for(pipeline_class, classes.get(denoiser_comp) if denoiser_comp else None, f"'{folder}'", classes)
    denoiser_comp = family.denoiser_component
    if denoiser_comp not in classes and not (folder / denoiser_comp / "config.json").exists():
        raise ModelError(f"model folder '{folder}' ({pipeline_class}) has no {denoiser_comp} component")
    if denoiser_comp not in classes:  # (a generic pipeline lists its transformer: the convention check says so)
        classes[denoiser_comp] = family.denoiser_classes[0]
    if family.name == "sd":  # a hand-made SD folder may list no components in model_index.json: its folders say
        for comp, cls in SD_COMPONENT_CLASSES.items():
            config_name = "scheduler_config.json" if comp == "scheduler" else "config.json"
            if (folder / comp / config_name).exists():
                classes.setdefault(comp, cls)
    components: dict[str, dict[str, Any]] = {}
    for comp, cls in classes.items():
        if comp.startswith("tokenizer") or cls.endswith("Tokenizer") or cls.endswith("TokenizerFast"):
            continue
        config_name = "scheduler_config.json" if comp == "scheduler" else "config.json"
        path = folder / comp / config_name
        if not path.exists():
            if comp in (denoiser_comp, "vae") or comp.startswith("text_encoder"):
                raise ModelError(f"model folder '{folder}' has no {comp}/{config_name}")
            continue
        components[comp] = read_model_json(path, f"{comp}/{config_name}")
    if family.name == "sd":  # configs-only folders of SD's shape may leave out the fixed parts
        components.setdefault("text_encoder", dict(SD_TEXT_ENCODER_CONFIG))
        components.setdefault("vae", dict(SD_VAE_CONFIG))
        for comp, cls in SD_COMPONENT_CLASSES.items():
            classes.setdefault(comp, cls)
    for comp in family.required_components:
        listed = index.get(comp)
        if listed == [None, None] or (comp not in components and comp not in classes):
            how = "listed as null in model_index.json" if listed == [None, None] else "missing"
            raise ModelError(f"model folder '{folder}' ({pipeline_class}): its {comp} is {how}, and the pipeline "
                             f"needs it ({family.description})")
    for comp, listed in index.items():
        if listed == [None, None] and comp.startswith("text_encoder") and comp not in family.optional_components:
            raise ModelError(f"model folder '{folder}' ({pipeline_class}): its {comp} is listed as null in "
                             "model_index.json, and this pipeline has no way to run without it")
    if denoiser_comp == "unet":
        _check_unet_config(components["unet"], folder / "unet" / "config.json")
    for comp, config in components.items():
        if comp != "scheduler":
            check_config_sizes(config, f"'{folder / comp / 'config.json'}'")
    if "scheduler" in components and isinstance(components["scheduler"].get("_class_name"), str):
        classes["scheduler"] = components["scheduler"]["_class_name"]
    spec = ModelSpec(
        name=name or local_model_name(folder),
        kind=kind,
        family=family.name,
        pipeline_class=pipeline_class,
        components=components,
        component_classes=classes,
        path=folder.resolve(),
        source=source or str(folder),
        null_components=tuple(comp for comp, listed in index.items() if listed == [None, None]),
    )
    # FLUX.2 [klein] says it in model_index.json (is_distilled, a pipeline argument)
    spec.distilled = _looks_distilled(spec) or index.get("is_distilled") is True
    if family.name == "generic" and not family.fitting_samplers(spec):
        from ldmpick.models.families.generic import GUIDE

        raise ModelError(f"model folder '{folder}' ({pipeline_class}, no ldmpick adapter): its scheduler "
                         f"'{classes.get('scheduler', '?')[:60]}' is not one of ldmpick's samplers, so it cannot be "
                         f"run generically; see {GUIDE}")
    return spec


def _looks_distilled(spec: ModelSpec) -> bool:
    """Few-step distilled models say so in their configs: an LCM guidance embedding, an LCM or SCM scheduler, a
    Sprint pipeline."""
    sched = spec.component_classes.get("scheduler", "")
    return (spec.denoiser_config.get("time_cond_proj_dim") is not None or sched in ("LCMScheduler", "SCMScheduler")
            or spec.pipeline_class in ("LatentConsistencyModelPipeline", "SanaSprintPipeline"))


def _check_unet_config(unet_config: dict[str, Any], where: Path) -> None:
    for key, typ in REQUIRED_UNET_KEYS.items():
        if key not in unet_config:
            raise ModelError(f"'{where}' lacks the key '{key}'")
        if not isinstance(unet_config[key], typ) or isinstance(unet_config[key], bool):
            raise ModelError(f"'{where}': key '{key}' has the wrong type ({type(unet_config[key]).__name__})")
    boc = unet_config["block_out_channels"]
    if not boc or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in boc):
        raise ModelError(f"'{where}': 'block_out_channels' must be a list of positive integers")


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


def builtin_param_counts() -> dict[str, int]:
    """Freshly counted parameters of every built-in model's modules, by ``ParamCountCache`` key (what
    ``ldmpick/data/param_counts.json`` holds)."""
    from ldmpick.models.families.base import ParamCountCache, constructor_args, count_params, module_configs

    counts = {}
    for name in [n for n in known_names() if is_builtin(n)]:
        for library, cls, config in module_configs(resolve_model(name)).values():
            config_json = json.dumps(constructor_args(config), sort_keys=True)
            counts[ParamCountCache.key(library, cls, config_json)] = count_params(library, cls, config, cached=False)
    return counts
