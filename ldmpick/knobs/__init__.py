"""Knobs: the settings of a run beyond (model, sampler, steps). One module per kind, found by name in ``REGISTRY``.

A knob is a setting a deployer chooses that changes what a run costs and may change what it draws:

- ``cache`` (``ldmpick.knobs.cache``): a diffusers cache policy (FBCache, TaylorSeer, MagCache, FasterCache, PAB),
  applied through the denoiser's own ``enable_cache``;
- ``precision`` (``ldmpick.knobs.precision``): the denoiser's number format (fp32 / bf16 / fp16, or fp8 / int8
  through torchao) -- today's ``--dtype`` spellings are its values;
- ``compile`` (``ldmpick.knobs.compile``): eager, CUDA-graph replay, regional compilation of the repeated blocks,
  or the whole forward compiled -- today's ``--mode`` spellings are accepted for it;
- ``attention`` (``ldmpick.knobs.attention``): the attention backend, through diffusers' ``set_attention_backend``.

A ``KnobSetting`` is one chosen value with all its parameters, written ``kind=name(param=value,...)`` (e.g.
``cache=taylorseer(interval=4,order=2,warmup=3,scope=attention)``, ``precision=bf16``): that text is what the
command line takes, what JSON and run records keep and what ``parse_knobs`` reads back. A configuration's knobs are
a tuple of settings, at most one per kind, in registry order; ``none`` is the empty tuple.

Each kind module defines ``KIND`` (the attributes and methods of ``KnobKind``): its policies and their parameters,
which devices and denoisers a setting applies to, how it is applied to a loaded diffusers pipeline (through
diffusers' or torchao's own API, imported only then), how its latency is predicted (``LatencySchedule``) and where
its quality effect comes from. Which settings combine is ``ldmpick.knobs.compatibility``; checking and applying
a knob list to a loaded pipeline, ``ldmpick.knobs.application``; a run's step pattern, ``ldmpick.knobs.schedule``;
published quality effects, ``ldmpick.knobs.effects``.

Pure Python at import (no torch, diffusers or torchao; the recommend path may import it). Imports only ``models``,
``hardware`` and ``files`` (the wings below it).
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from ldmpick.files.errors import UsageError, unknown_name

# kind -> module that defines ``KIND``; imported only when asked for. The order is the order of a knob list.
REGISTRY: dict[str, str] = {
    "precision": "ldmpick.knobs.precision",
    "attention": "ldmpick.knobs.attention",
    "cache": "ldmpick.knobs.cache",
    "compile": "ldmpick.knobs.compile",
}
NONE = "none"  # the empty knob list, as the command line writes it
MAX_KNOBS_CHARS = 400  # a knob list longer than this is refused before it is parsed
_NAME = re.compile(r"[a-z][a-z0-9_-]*")


# ---------------------------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Param:
    """One parameter of a policy: its type (``int``, ``float`` or ``str``), default, bounds or choices."""

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def parse(self, text: str, where: str) -> Any:
        """``text`` as this parameter's value (a one-line error naming ``where`` otherwise)."""
        if self.type is str:
            if text not in self.choices:
                raise unknown_name(f"{where} {self.name}", text, self.choices)
            return text
        try:
            value = self.type(text)
        except ValueError:
            kind = "a whole number" if self.type is int else "a number"
            raise UsageError(f"{where}: {self.name} must be {kind} (got '{_clip(text)}')") from None
        if self.type is float and not math.isfinite(value):
            raise UsageError(f"{where}: {self.name} must be finite (got '{_clip(text)}')")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise UsageError(f"{where}: {self.name} must be between {_fmt(self.low)} and {_fmt(self.high)} "
                             f"(got {_fmt(value)})")
        return value


@dataclass(frozen=True)
class Policy:
    """One value of a knob kind (``taylorseer``, ``bf16``, ``repeated-blocks``) and the parameters it takes."""

    name: str
    summary: str
    params: tuple[Param, ...] = ()
    aliases: tuple[str, ...] = ()  # other spellings accepted on input (today's --dtype / --mode names)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


@dataclass(frozen=True)
class KnobSetting:
    """One knob's chosen value: its kind, its policy's name and every parameter (defaults filled in, in the policy's
    order), so that the text form means the same thing whatever later defaults become."""

    kind: str
    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, name: str) -> Any:
        for key, value in self.params:
            if key == name:
                return value
        raise KeyError(f"{self.kind}={self.name} has no parameter '{name}'")

    @property
    def text(self) -> str:
        """The stable text form, e.g. ``cache=fbcache(threshold=0.08)`` or ``precision=bf16``."""
        if not self.params:
            return f"{self.kind}={self.name}"
        return f"{self.kind}={self.name}(" + ",".join(f"{k}={_fmt(v)}" for k, v in self.params) + ")"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class DeviceFacts:
    """What a knob needs to know of a device: its kind (``cpu``, ``cuda``) and, for CUDA, its compute capability."""

    device: str
    compute_capability: tuple[int, int] | None = None

    @property
    def is_cuda(self) -> bool:
        return self.device.split(":")[0] == "cuda"

    @classmethod
    def of(cls, device: str) -> DeviceFacts:
        """The facts of ``device`` on this machine (imports torch only for a CUDA device)."""
        if device.split(":")[0] != "cuda":
            return cls(device)
        import torch

        if not torch.cuda.is_available():
            return cls(device)
        return cls(device, tuple(torch.cuda.get_device_capability(device)))


@dataclass(frozen=True)
class Applied:
    """What applying one setting did, in one line (for run records and ``--debug`` notes); ``runner`` is the
    execution runner a compile setting installed, if any."""

    setting: KnobSetting
    note: str
    runner: Any = field(default=None, compare=False)


class KnobKind(Protocol):
    name: str  # the kind, as written before '='
    summary: str
    policies: dict[str, Policy]

    def default(self, device: str) -> KnobSetting: ...

    def trait(self, setting: KnobSetting) -> str: ...

    def device_issue(self, setting: KnobSetting, device: DeviceFacts) -> str | None: ...

    def denoiser_issue(self, setting: KnobSetting, denoiser_class: str) -> str | None: ...

    def apply(self, setting: KnobSetting, pipeline: Any, device: str, steps: int | None = None) -> Applied: ...

    def schedule(self, setting: KnobSetting, steps: int, timesteps: list[float] | None = None) -> Any: ...

    def latency_basis(self, setting: KnobSetting) -> str: ...

    def quality_basis(self, setting: KnobSetting) -> str: ...


def knob_kind(name: str) -> KnobKind:
    """The knob kind called ``name`` (one-line error suggesting the closest name)."""
    if name not in REGISTRY:
        raise unknown_name("knob kind", name, REGISTRY)
    return importlib.import_module(REGISTRY[name]).KIND


def setting(kind: str, name: str, **params: Any) -> KnobSetting:
    """A checked setting from Python values (parameters not given take their defaults)."""
    return parse_knob(f"{kind}={name}" + ("(" + ",".join(f"{k}={_fmt(v)}" for k, v in params.items()) + ")"
                                          if params else ""))


# ---------------------------------------------------------------------------------------------- text form


def parse_knob(text: str) -> KnobSetting:
    """``'cache=taylorseer(interval=4,order=2)'`` -> a ``KnobSetting`` with every parameter (one-line errors)."""
    item = str(text).strip()
    if "=" not in item.split("(", 1)[0]:
        raise UsageError(f"knob '{_clip(item)}' is not kind=value (e.g. cache=fbcache, precision=bf16; kinds: "
                         f"{', '.join(REGISTRY)})")
    kind, rest = (s.strip() for s in item.split("=", 1))
    knob = knob_kind(kind.lower())
    m = re.fullmatch(r"([A-Za-z0-9_-]+)\s*(?:\((.*)\))?", rest, flags=re.DOTALL)
    if not m:
        raise UsageError(f"knob '{_clip(item)}' is not {kind}=name or {kind}=name(param=value,...)")
    name, body = m.group(1).lower(), m.group(2)
    policy = _policy(knob, name)
    where = f"{knob.name}={policy.name}"
    given: dict[str, str] = {}
    if body is not None and body.strip():
        for part in body.split(","):
            if "=" not in part:
                raise UsageError(f"{where}: parameter '{_clip(part.strip())}' is not name=value")
            key, value = (s.strip() for s in part.split("=", 1))
            key = key.lower()
            if key in given:
                raise UsageError(f"{where}: parameter '{key}' is given twice")
            if key not in {p.name for p in policy.params}:
                valid = [p.name for p in policy.params]
                if not valid:
                    raise UsageError(f"{where} takes no parameters (got '{_clip(key)}')")
                raise unknown_name(f"{where} parameter", key, valid)
            given[key] = value
    params = tuple((p.name, p.parse(given[p.name], where) if p.name in given else p.default) for p in policy.params)
    return KnobSetting(knob.name, policy.name, params)


def parse_knobs(text: str | None) -> tuple[KnobSetting, ...]:
    """A knob list: ``none`` (or empty) -> ``()``; else settings separated by commas outside parentheses, at most
    one per kind, returned in registry order."""
    if text is None or not str(text).strip() or str(text).strip().lower() == NONE:
        return ()
    text = str(text)
    if len(text) > MAX_KNOBS_CHARS:
        raise UsageError(f"knob list '{_clip(text)}' is too long ({len(text)} characters; at most {MAX_KNOBS_CHARS})")
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise UsageError(f"knob list '{_clip(text)}' has a ')' without its '('")
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise UsageError(f"knob list '{_clip(text)}' has a '(' without its ')'")
    items.append(text[start:])
    settings: dict[str, KnobSetting] = {}
    for item in items:
        if not item.strip():
            raise UsageError(f"knob list '{_clip(text)}' has an empty item (two commas, or one at an end)")
        if item.strip().lower() == NONE:
            raise UsageError("'none' is the whole knob list, not one of its items")
        s = parse_knob(item)
        if s.kind in settings:
            raise UsageError(f"two {s.kind} knobs ({settings[s.kind].text} and {s.text}): one per kind")
        settings[s.kind] = s
    return tuple(settings[k] for k in REGISTRY if k in settings)


def format_knobs(settings: tuple[KnobSetting, ...] | list[KnobSetting]) -> str:
    """The text form of a knob list (``none`` when empty); ``parse_knobs`` reads it back to the same settings."""
    return ",".join(s.text for s in settings) if settings else NONE


def denoiser_of(pipeline: Any) -> Any:
    """The denoiser of a diffusers pipeline (its ``transformer``, else its ``unet``), or a bare denoiser."""
    for name in ("transformer", "unet"):
        module = getattr(pipeline, name, None)
        if module is not None:
            return module
    if hasattr(pipeline, "forward") and hasattr(pipeline, "config"):
        return pipeline
    raise UsageError(f"a {type(pipeline).__name__} has no transformer or unet to apply knobs to")


# ---------------------------------------------------------------------------------------------- helpers


def _policy(knob: KnobKind, name: str) -> Policy:
    if name in knob.policies:
        return knob.policies[name]
    for policy in knob.policies.values():
        if name in policy.aliases:
            return policy
    raise unknown_name(f"{knob.name} knob", name, knob.policies)


def _fmt(value: Any) -> str:
    """A parameter value as the text form writes it: ints plain, floats shortest (``0.05``), strings as is."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else f"{value:.1f}"
    return str(value)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


__all__ = [
    "NONE",
    "REGISTRY",
    "Applied",
    "DeviceFacts",
    "KnobKind",
    "KnobSetting",
    "Param",
    "Policy",
    "denoiser_of",
    "format_knobs",
    "knob_kind",
    "parse_knob",
    "parse_knobs",
    "setting",
]
