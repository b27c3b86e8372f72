"""The models a user registers under short names: the rules for those names, adding, removing and listing.

Plain Python on top of the registry file that ``catalogue`` reads and writes (under its lock); no printing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ldmpick.files.errors import LdmpickError, ModelError, UsageError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
WEIGHTS_OK = "safetensors weights"
NO_WEIGHTS = "no usable weights (can be profiled, not generated with)"


@dataclass(frozen=True)
class Registration:
    """What ``register`` stored: ``value`` is the resolved folder or the hub id; ``note`` says why the checkpoint
    has no usable weights (None when it has them)."""

    name: str
    value: str
    unet_params: int
    note: str | None

    @property
    def weights(self) -> str:
        return WEIGHTS_OK if self.note is None else NO_WEIGHTS


def _already_registered(name: str, registry: dict[str, str]) -> UsageError:
    return UsageError(f"'{name}' is already registered (as '{registry[name]}'); use --force to replace it")


def check_name(name: str) -> None:
    """A new name: 1-64 safe characters, and not one of the built-in family or the shipped demo models."""
    from ldmpick.models.catalogue import DEMO_MODELS, FAMILY_CHANNELS, catalogue_entries

    if not NAME.fullmatch(name):
        raise UsageError(f"model name '{name}' must be 1-64 letters, digits, '.', '_' or '-' (no '/')")
    if name in FAMILY_CHANNELS:
        raise UsageError(f"'{name}' is a built-in family name; choose another name")
    if name in DEMO_MODELS:
        raise UsageError(f"'{name}' is a shipped demo model name; choose another name")
    if name in catalogue_entries():
        raise UsageError(f"'{name}' is a built-in catalogue name (configs of a released model); choose another name")
    if name.lower() == "all":
        raise UsageError("'all' means every model of the paper's family in '--models all'; choose another name")


def register(name: str, source: str, force: bool = False, guidance: float | None = None) -> Registration:
    """Register ``source`` (a local diffusers folder, or a hub id in the local cache) as ``name``; ``guidance``: the
    scale it runs at by default (a checkpoint distilled to run without classifier-free guidance, as SDXL-Lightning
    is: 0), which its configs cannot say."""
    from ldmpick.models.catalogue import MAX_REGISTERED_GUIDANCE

    if guidance is not None and not 0 <= guidance <= MAX_REGISTERED_GUIDANCE:  # (NaN fails both)
        raise UsageError(f"--guidance must be between 0 and {MAX_REGISTERED_GUIDANCE:g} (got {guidance})")
    from ldmpick.models.catalogue import (HUB_ID, hub_snapshot, load_local_spec,
                                   load_registry, update_registry)
    from ldmpick.models.families.base import component_params

    check_name(name)
    registry = load_registry()
    if name in registry and not force:
        raise _already_registered(name, registry)
    path = Path(source).expanduser()
    if path.exists():
        spec = load_local_spec(path, name=name)
        value = str(path.resolve())
    elif path.is_symlink():
        raise ModelError(f"'{source}' is a link to something that does not exist")
    elif HUB_ID.match(source):
        try:
            snapshot = hub_snapshot(source)
        except ModelError:
            first = source.split("/")[0]
            if Path(first).is_dir():  # 'runs/fnial': a typo in a folder name, not a hub id
                raise ModelError(f"folder '{source}' does not exist (in '{first}'), and no hub model '{source}' "
                                 "is in the local Hugging Face cache") from None
            raise
        spec = load_local_spec(snapshot, name=name, kind="hub", source=source)
        value = source
    else:
        raise ModelError(f"'{source}' is neither an existing folder nor a hub id (owner/name)")
    assert spec.path is not None
    # everything is checked before the registry is written: a model that fails here is not registered
    component_params(spec)  # every module builds from its config (on torch's meta device) and has a sane size
    unet_params = spec.unet_params
    problems = spec.weight_problems()  # every component model_index.json lists: safetensors only
    note = problems[0] if problems else None

    def add(current: dict[str, str]) -> None:
        if name in current and not force:  # checked again under the lock: another process may have added it
            raise _already_registered(name, current)
        current[name] = value

    update_registry(add)
    from ldmpick.models.catalogue import set_registry_default

    set_registry_default(name, guidance)
    return Registration(name, value, unet_params, note)


def unregister(name: str) -> str:
    """Forget a registered name (the checkpoint's files are not touched); returns what it pointed to."""
    from ldmpick.models.catalogue import is_builtin, update_registry
    from ldmpick.files.errors import unknown_name

    if is_builtin(name):  # the paper's family, the demo family, the released-model catalogue
        raise UsageError(f"'{name}' is a built-in model (shipped with ldmpick) and cannot be removed")
    removed: list[str] = []

    def remove(registry: dict[str, str]) -> None:
        if name not in registry:
            if not registry:
                raise UsageError(f"no model named '{name}' is registered (none are; see 'ldmpick models add')")
            raise unknown_name("registered model", name, registry)
        removed.append(registry.pop(name))

    update_registry(remove)
    return removed[0]


def model_rows() -> list[dict[str, Any]]:
    """Every known model (the paper's family, the demo models, registered checkpoints) as a JSON-ready row; a model
    that cannot be resolved gets its problem instead of its numbers."""
    from ldmpick.models.catalogue import known_names, load_registry, resolve_model

    registry = load_registry()
    rows = []
    for name in known_names():
        try:
            spec = resolve_model(name)
            params: int | None = spec.unet_params
            problem = None
        except LdmpickError as exc:
            spec, params, problem = None, None, str(exc)
        rows.append(
            {
                "name": name,
                "kind": spec.kind if spec else "registered",
                "family": spec.family if spec else None,
                "pipeline": spec.pipeline_class if spec else None,
                "denoiser_params": params,
                "unet_params": params,
                "unet_params_m": round(params / 1e6, 1) if params is not None else None,
                "base_channels": ((spec.unet_config.get("block_out_channels") or [None])[0]
                                  if spec and spec.adapter.denoiser_component == "unet" else None),
                "weights": bool(spec and spec.has_weights),
                "source": registry.get(name, spec.source if spec else ""),
                "problem": problem,
            }
        )
    return rows
