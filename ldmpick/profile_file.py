"""Profile files: the measured latencies of one device, in JSON (schema ``ldmpick.profile/2``; version 1 is read).

A profile holds one set of settings (device, dtype, resolution, batch, guidance, execution mode), the device
fingerprint, each sampler's per-step overhead and, per model, its denoiser step latency and its own fixed costs
(its text-encoder stack, its VAE decode), every number with its spread and raw samples. See docs/profile-format.md.

This module is on the ``recommend`` path: it must not import torch or diffusers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldmpick.errors import ProfileError, UsageError
from ldmpick.file_input import nesting_depth

SCHEMA = "ldmpick.profile/2"
SCHEMA_FAMILY = "ldmpick.profile/"
READABLE_SCHEMAS = {"ldmpick.profile/1": 1, "ldmpick.profile/2": 2}  # version 1: UNet only, one set of fixed parts
MAX_FILE_BYTES = 10 * 1024 * 1024  # a real profile is a few hundred KB at most
MAX_SAMPLES = 100_000
MAX_JSON_DEPTH = 12
MODEL_STATUSES = ("ok", "does_not_fit", "error")
MODES = ("eager", "cudagraph", "compile")
DTYPES = ("fp16", "bf16", "fp32")  # the keys of execution.DTYPES (this module stays torch-free)
MAX_COUNT = 1_000_000  # cores, threads, GPU index: anything larger is not a real machine
MAX_NAME_CHARS = 200  # model, sampler and device names
MAX_SOURCE_CHARS = 4096  # a model's source label (a folder path at most PATH_MAX long)
MAX_DEVICE_KEYS = 64
MAX_DEVICE_LIST = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # would break the one-line messages names are printed in


@dataclass
class LatencyStats:
    """Summary of repeated timings of one thing, in milliseconds, with the raw samples kept."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    iqr_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    n: int
    samples_ms: list[float] = field(default_factory=list)

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> LatencyStats:
        if not samples_ms:
            raise ValueError("no samples")
        xs = sorted(float(x) for x in samples_ms)
        return cls(
            median_ms=_quantile(xs, 0.5),
            p10_ms=_quantile(xs, 0.1),
            p90_ms=_quantile(xs, 0.9),
            iqr_ms=_quantile(xs, 0.75) - _quantile(xs, 0.25),
            mean_ms=sum(xs) / len(xs),
            min_ms=xs[0],
            max_ms=xs[-1],
            n=len(xs),
            samples_ms=[round(x, 6) for x in samples_ms],
        )

    def at(self, percentile: float) -> float:
        """Latency at ``percentile`` (50 = median, 90 = p90), from the raw samples when present."""
        if percentile == 50:
            return self.median_ms
        if self.samples_ms:
            return _quantile(sorted(self.samples_ms), percentile / 100.0)
        if percentile == 90:
            return self.p90_ms
        if percentile == 10:
            return self.p10_ms
        raise ProfileError(f"percentile {percentile} needs raw samples, which this profile lacks")

    @property
    def relative_iqr(self) -> float:
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "median_ms": round(self.median_ms, 6),
            "p10_ms": round(self.p10_ms, 6),
            "p90_ms": round(self.p90_ms, 6),
            "iqr_ms": round(self.iqr_ms, 6),
            "mean_ms": round(self.mean_ms, 6),
            "min_ms": round(self.min_ms, 6),
            "max_ms": round(self.max_ms, 6),
            "n": self.n,
            "samples_ms": self.samples_ms,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> LatencyStats:
        d = _obj(data, where)
        vals = {k: _nonneg(d, k, where) for k in ("median_ms", "p10_ms", "p90_ms", "iqr_ms", "mean_ms", "min_ms", "max_ms")}
        n = _int(d, "n", where, minimum=1)
        samples = d.get("samples_ms", [])
        if not isinstance(samples, list) or len(samples) > MAX_SAMPLES:
            raise ProfileError(f"{where}.samples_ms must be a list of at most {MAX_SAMPLES} numbers")
        for i, x in enumerate(samples):
            _check_latency(x, f"{where}.samples_ms[{i}]")
        if not vals["min_ms"] <= vals["p10_ms"] <= vals["median_ms"] <= vals["p90_ms"] <= vals["max_ms"]:
            raise ProfileError(f"{where}: min <= p10 <= median <= p90 <= max does not hold")
        return cls(**vals, n=n, samples_ms=[float(x) for x in samples])


def _quantile(sorted_xs: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), without numpy."""
    if len(sorted_xs) == 1:
        return sorted_xs[0]
    pos = q * (len(sorted_xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


@dataclass
class Settings:
    device: str  # "cpu", "cuda", "cuda:1"
    dtype: str
    resolution: int
    batch: int
    cfg: bool
    mode: str
    warmup: int
    repeats: int
    max_seconds_per_model: float
    threads: int | None = None  # torch CPU threads
    rounds: int = 1  # UNet measurements interleaved across models in this many rounds (drift hits every model)

    @property
    def unet_batch(self) -> int:
        return self.batch * (2 if self.cfg else 1)

    def key(self) -> tuple[Any, ...]:
        return (self.resolution, self.batch, self.cfg, self.mode, self.dtype)

    def describe(self) -> str:
        return (
            f"{self.resolution}px, batch {self.batch}, {'cfg' if self.cfg else 'no cfg'}, "
            f"{self.dtype}, {self.mode} on {self.device}"
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Any) -> Settings:
        d = _obj(data, "settings")
        device = _str(d, "device", "settings")
        if not re.fullmatch(r"cpu|cuda(:\d{1,4})?|mps", device):
            raise ProfileError(f"settings.device '{_clip(device)}' is not cpu, cuda, cuda:N or mps")
        dtype = _choice(d, "dtype", DTYPES, "settings")
        mode = _choice(d, "mode", MODES, "settings")
        resolution = _int(d, "resolution", "settings", minimum=8, maximum=16384)
        batch = _int(d, "batch", "settings", minimum=1, maximum=4096)
        cfg = d.get("cfg")
        if not isinstance(cfg, bool):
            raise ProfileError("settings.cfg must be true or false")
        threads = d.get("threads")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)
                                    or not 1 <= threads <= MAX_COUNT):
            raise ProfileError(f"settings.threads must be an integer in [1, {MAX_COUNT}] or null")
        return cls(
            device=device,
            dtype=dtype,
            resolution=resolution,
            batch=batch,
            cfg=cfg,
            mode=mode,
            warmup=_int(d, "warmup", "settings", minimum=0),
            repeats=_int(d, "repeats", "settings", minimum=1),
            max_seconds_per_model=_nonneg(d, "max_seconds_per_model", "settings"),
            threads=threads,
            rounds=_int(d, "rounds", "settings", minimum=1, maximum=1000) if "rounds" in d else 1,
        )


@dataclass
class ModelLatency:
    """One model's measured costs: one denoiser step (one evaluation at the profile's batch, doubled when this model
    runs classifier-free guidance as a doubled batch), and its own fixed parts: its text-encoder stack (prompt and,
    with CFG, the negative prompt) and its VAE decode."""

    name: str
    status: str  # "ok" | "does_not_fit" | "error"
    denoiser_params: int
    denoiser_step: LatencyStats | None = None
    peak_memory_bytes: int | None = None
    weight_bytes: int | None = None
    source: str = ""  # what the user named (family name, hub id, folder): a label only, never opened
    error: str | None = None
    family: str = "sd"  # the adapter (ldmpick.families) that built it
    cfg: bool | None = None  # whether its step was measured with the CFG-doubled batch (None: the profile's cfg)
    distilled: bool = False  # few-step distilled: distilled samplers (lcm, scm) fit it
    samplers: list[str] | None = None  # the samplers that fit it (None: every sampler of the profile)
    text_encoder: LatencyStats | None = None
    vae_decode: LatencyStats | None = None
    text_encoders: str = ""  # the stack, e.g. "CLIP-L + OpenCLIP-bigG + T5-XXL (256 tokens)"

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.denoiser_step is not None

    # names from schema 1, when every denoiser was a UNet
    @property
    def unet_step(self) -> LatencyStats | None:
        return self.denoiser_step

    @property
    def unet_params(self) -> int:
        return self.denoiser_params

    def fits_sampler(self, name: str) -> bool:
        return self.samplers is None or name in self.samplers

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "family": self.family,
            "denoiser_params": self.denoiser_params,
            "denoiser_step": self.denoiser_step.to_json() if self.denoiser_step else None,
            "cfg": self.cfg,
            "distilled": self.distilled,
            "samplers": self.samplers,
            "text_encoder": self.text_encoder.to_json() if self.text_encoder else None,
            "text_encoders": self.text_encoders,
            "vae_decode": self.vae_decode.to_json() if self.vae_decode else None,
            "peak_memory_bytes": self.peak_memory_bytes,
            "weight_bytes": self.weight_bytes,
            "source": self.source,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Any, where: str, version: int = 2) -> ModelLatency:
        d = _obj(data, where)
        status = _choice(d, "status", MODEL_STATUSES, where)
        step_key, params_key = ("denoiser_step", "denoiser_params") if version >= 2 else ("unet_step", "unet_params")
        step = d.get(step_key)
        if status == "ok" and step is None:
            raise ProfileError(f"{where}: status 'ok' needs {step_key}")
        model = cls(
            name=_model_name(d, where),
            status=status,
            denoiser_params=_int(d, params_key, where, minimum=1 if status == "ok" else 0),
            denoiser_step=LatencyStats.from_json(step, f"{where}.{step_key}") if step is not None else None,
            peak_memory_bytes=_opt_int(d, "peak_memory_bytes", where),
            weight_bytes=_opt_int(d, "weight_bytes", where),
            source=_label(d, "source", where, MAX_SOURCE_CHARS, optional=True) or "",
            error=_opt_str(d, "error", where),
        )
        if version < 2:
            return model
        model.family = _label(d, "family", where, 32, optional=True) or "sd"
        cfg, distilled = d.get("cfg"), d.get("distilled", False)
        if cfg is not None and not isinstance(cfg, bool):
            raise ProfileError(f"{where}.cfg must be true, false or null")
        if not isinstance(distilled, bool):
            raise ProfileError(f"{where}.distilled must be true or false")
        model.cfg, model.distilled = cfg, distilled
        samplers = d.get("samplers")
        if samplers is not None:
            if not isinstance(samplers, list) or len(samplers) > 100:
                raise ProfileError(f"{where}.samplers must be a list of at most 100 names or null")
            for i, x in enumerate(samplers):
                if not isinstance(x, str) or not x or len(x) > MAX_NAME_CHARS or _CONTROL.search(x):
                    raise ProfileError(f"{where}.samplers[{i}] must be a sampler name")
            model.samplers = list(samplers)
        for key in ("text_encoder", "vae_decode"):
            if d.get(key) is not None:
                setattr(model, key, LatencyStats.from_json(d[key], f"{where}.{key}"))
        model.text_encoders = _label(d, "text_encoders", where, MAX_NAME_CHARS, optional=True) or ""
        return model


@dataclass
class SamplerOverhead:
    name: str
    evals_per_step: int
    step_overhead: LatencyStats  # scheduler.step + scale_model_input per sampling step, in ms

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "evals_per_step": self.evals_per_step, "step_overhead": self.step_overhead.to_json()}

    @classmethod
    def from_json(cls, data: Any, where: str) -> SamplerOverhead:
        from ldmpick.samplers import SAMPLERS

        d = _obj(data, where)
        name = _label(d, "name", where, MAX_NAME_CHARS)
        evals = _int(d, "evals_per_step", where, minimum=1, maximum=16)
        known = SAMPLERS.get(name)
        if known is not None and evals != known.evals_per_step:  # latency is costed from ldmpick's table, never this
            raise ProfileError(f"{where}: sampler '{name}' takes {known.evals_per_step} denoiser evaluation(s) per "
                               f"step, not {evals}; the file is wrong or edited")
        return cls(
            name=name,
            evals_per_step=evals,
            step_overhead=LatencyStats.from_json(d.get("step_overhead"), f"{where}.step_overhead"),
        )


@dataclass
class Profile:
    settings: Settings
    device: dict[str, Any]  # fingerprint, see fingerprint.py
    models: list[ModelLatency]
    samplers: list[SamplerOverhead]
    created: str  # ISO 8601 UTC
    command: str = ""
    notes: str = ""
    wall_seconds: float | None = None
    complete: bool = True  # False for a partial (interrupted) run

    # ------------------------------------------------------------------ lookups
    @property
    def text_encoder(self) -> LatencyStats | None:
        """The text-encoder cost of the first measured model (each model has its own: ``ModelLatency``)."""
        return next((m.text_encoder for m in self.models if m.text_encoder is not None), None)

    @property
    def vae_decode(self) -> LatencyStats | None:
        """The VAE-decode cost of the first measured model (each model has its own: ``ModelLatency``)."""
        return next((m.vae_decode for m in self.models if m.vae_decode is not None), None)

    def share_fixed_parts(self, text_encoder: LatencyStats | None, vae_decode: LatencyStats | None) -> Profile:
        """Give every model the same fixed parts (what a version-1 file, measured with one model's configs, holds)."""
        for m in self.models:
            m.text_encoder, m.vae_decode = text_encoder, vae_decode
        return self

    def model_cfg(self, model: ModelLatency) -> bool:
        """Whether ``model``'s step was measured with the CFG-doubled batch."""
        return self.settings.cfg if model.cfg is None else model.cfg

    def model(self, name: str) -> ModelLatency:
        for m in self.models:
            if m.name == name:
                return m
        import difflib

        close = difflib.get_close_matches(name, self.model_names(), n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ProfileError(f"profile '{self.id}' has no model '{name}'{hint} (it has: {', '.join(self.model_names())})")

    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def sampler(self, name: str) -> SamplerOverhead:
        for s in self.samplers:
            if s.name == name:
                return s
        raise ProfileError(
            f"profile '{self.id}' has no overhead for sampler '{name}' (it has: {', '.join(s.name for s in self.samplers)})"
        )

    @property
    def device_name(self) -> str:
        return str(self.device.get("name") or "unknown device")

    @property
    def device_key(self) -> str:
        """What identifies 'the same kind of machine': device name plus, for CPUs, the core count."""
        return device_key(self.device)

    @property
    def id(self) -> str:
        """A readable, stable name: date, device, settings. Also the file stem in the user folder."""
        dev = re.sub(r"[^a-z0-9]+", "-", self.device_name.lower()).strip("-")[:40] or "device"
        stamp = re.sub(r"[^0-9]", "", self.created)[:14]
        s = self.settings
        return f"{stamp}-{dev}-{s.resolution}px-b{s.batch}{'-cfg' if s.cfg else ''}-{s.dtype}-{s.mode}"

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "id": self.id,
            "created": self.created,
            "command": self.command,
            "notes": self.notes,
            "complete": self.complete,
            "wall_seconds": self.wall_seconds,
            "device": self.device,
            "settings": self.settings.to_json(),
            "samplers": [s.to_json() for s in self.samplers],
            "models": [m.to_json() for m in self.models],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, data: Any) -> Profile:
        d = _obj(data, "profile")
        schema = d.get("schema")
        if not isinstance(schema, str):
            raise ProfileError("not an ldmpick profile (no 'schema' field)")
        version = READABLE_SCHEMAS.get(schema)
        if version is None:
            if schema.startswith(SCHEMA_FAMILY):
                raise ProfileError(f"unsupported profile schema version '{schema[:60]}' (this ldmpick reads "
                                   f"{', '.join(READABLE_SCHEMAS)})")
            raise ProfileError(f"not an ldmpick profile (schema '{schema[:60]}')")
        device = validate_device(d.get("device"))
        models_raw = d.get("models")
        samplers_raw = d.get("samplers")
        if not isinstance(models_raw, list) or len(models_raw) > 1000:
            raise ProfileError("models must be a list (at most 1000 entries)")
        if not isinstance(samplers_raw, list) or len(samplers_raw) > 100:
            raise ProfileError("samplers must be a list (at most 100 entries)")
        models = [ModelLatency.from_json(m, f"models[{i}]", version) for i, m in enumerate(models_raw)]
        samplers = [SamplerOverhead.from_json(s, f"samplers[{i}]") for i, s in enumerate(samplers_raw)]
        for what, names in (("model", [m.name for m in models]), ("sampler", [s.name for s in samplers])):
            if len(set(names)) != len(names):
                raise ProfileError(f"duplicate {what} names in profile")
        created = _str(d, "created", "profile")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T[0-9:.]{1,32}(Z|[+-]\d{2}:?\d{2})?", created):
            raise ProfileError(f"created '{created[:40]}' is not an ISO 8601 date-time")
        if version == 1:  # one set of fixed parts, measured with the first model's configs, shared by all
            fixed = _obj(d.get("fixed"), "fixed")
            te, vae = fixed.get("text_encoder"), fixed.get("vae_decode")
            te_stats = LatencyStats.from_json(te, "fixed.text_encoder") if te is not None else None
            vae_stats = LatencyStats.from_json(vae, "fixed.vae_decode") if vae is not None else None
        wall = d.get("wall_seconds")
        complete = d.get("complete", True)
        if not isinstance(complete, bool):
            raise ProfileError("complete must be true or false")
        profile = cls(
            settings=Settings.from_json(d.get("settings")),
            device=device,
            models=models,
            samplers=samplers,
            created=created,
            command=_opt_str(d, "command", "profile") or "",
            notes=_opt_str(d, "notes", "profile") or "",
            wall_seconds=_check_latency(wall, "wall_seconds") if wall is not None else None,
            complete=complete,
        )
        if version == 1:
            profile.share_fixed_parts(te_stats, vae_stats)
        return profile


def device_key(device: dict[str, Any]) -> str:
    name = str(device.get("name") or "unknown")
    if device.get("kind") == "cpu":
        return f"cpu:{name}:{device.get('cpu_cores')}"
    return f"{device.get('kind', 'gpu')}:{name}"


# ---------------------------------------------------------------------------------------------- device block

# What fingerprint.py writes into a profile's ``device`` block, and what each field may hold. Every field is
# optional (GPU fields are absent on a CPU; old files lack newer ones) except ``name``; ``None`` is always allowed
# for an optional field (NVML could not read it).
_DEVICE_STR = 200
DEVICE_FIELDS: dict[str, tuple[str, float | None, float | None]] = {
    # key: (kind, minimum, maximum)
    "kind": ("ident", None, None),  # "cpu" / "cuda" (device_key reads it)
    "name": ("str", None, None),  # required; GPU name from NVML or the CPU model (device_key, the profile id)
    "index": ("int", 0, MAX_COUNT),
    "memory_bytes": ("int", 0, 10**18),  # the selector compares peak memory with it
    "driver_version": ("str", None, None),
    "cuda_driver_version": ("str", None, None),
    "cuda_runtime_version": ("str", None, None),
    "compute_capability": ("str", None, None),
    "cudnn_version": ("int", 0, 10**9),
    "sm_clock_mhz": ("num", 0, 1e6),
    "sm_clock_max_mhz": ("num", 0, 1e6),
    "power_limit_w": ("num", 0, 1e6),
    "temperature_c": ("num", -273.15, 1e4),
    "cpu_model": ("str", None, None),
    "cpu_cores": ("int", 1, MAX_COUNT),  # device_key reads it for CPUs
    "torch_threads": ("int", 1, MAX_COUNT),
    "load_avg_1m": ("num", 0, 1e6),
    "os": ("str", None, None),
    "machine": ("str", None, None),
    "versions": ("versions", None, None),  # {"ldmpick": "0.1.0", "torch": "2.13.0+cpu", ...}
}


def validate_device(data: Any) -> dict[str, Any]:
    """Check a profile's ``device`` block (the fingerprint) field by field and return a clean copy.

    Known fields must have their type (see ``DEVICE_FIELDS``); unknown extra keys are kept, but only as JSON
    scalars or short flat lists of scalars, so nothing downstream meets a nested object it did not expect.
    Every problem is a one-line ``ProfileError`` naming the field.
    """
    d = _obj(data, "device")
    if len(d) > MAX_DEVICE_KEYS:
        raise ProfileError(f"device has {len(d)} keys; at most {MAX_DEVICE_KEYS} are allowed")
    if "name" not in d:
        raise ProfileError("device.name is missing (the device's name is required)")
    out: dict[str, Any] = {}
    for key, value in d.items():
        if len(key) > 64 or not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise ProfileError(f"device key '{_clip(key)}' is not a plain name (letters, digits, '_', '.', '-')")
        where = f"device.{key}"
        spec = DEVICE_FIELDS.get(key)
        if spec is None:
            out[key] = _device_extra(value, where)
            continue
        kind, lo, hi = spec
        if value is None and key != "name":
            out[key] = None
        elif kind == "str":
            out[key] = _device_str(value, where, _DEVICE_STR)
        elif kind == "ident":
            if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,31}", value):
                raise ProfileError(f"{where} must be a short name like 'cpu' or 'cuda' (got {_describe(value)})")
            out[key] = value
        elif kind == "int":
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:  # type: ignore[operator]
                raise ProfileError(f"{where} must be an integer in {_range(lo, hi)} or null (got {_describe(value)})")
            out[key] = value
        elif kind == "num":
            if not _is_finite_number(value) or not lo <= value <= hi:  # type: ignore[operator]
                raise ProfileError(f"{where} must be a number in {_range(lo, hi)} or null (got {_describe(value)})")
            out[key] = value
        else:  # versions
            v = _obj(value, where)
            if len(v) > 32:
                raise ProfileError(f"{where} has {len(v)} entries; at most 32 are allowed")
            clean: dict[str, str | None] = {}
            for lib, ver in v.items():
                if len(lib) > 64 or not re.fullmatch(r"[A-Za-z0-9_.-]+", lib):
                    raise ProfileError(f"{where} key '{_clip(lib)}' is not a plain name")
                clean[lib] = None if ver is None else _device_str(ver, f"{where}.{lib}", 100)
            out[key] = clean
    return out


def _device_str(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ProfileError(f"{where} must be a string (got {_describe(value)})")
    if len(value) > limit:
        raise ProfileError(f"{where} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise ProfileError(f"{where} holds control characters")
    return value


def _device_extra(value: Any, where: str) -> Any:
    """An unknown key (a newer ldmpick's field, or a hand edit): a scalar, or a short flat list of scalars."""
    if isinstance(value, list):
        if len(value) > MAX_DEVICE_LIST:
            raise ProfileError(f"{where} is a list of {len(value)} items; at most {MAX_DEVICE_LIST} are allowed")
        return [_device_scalar(x, f"{where}[{i}]") for i, x in enumerate(value)]
    return _device_scalar(value, where)


def _device_scalar(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if not _is_finite_number(value) or abs(value) > 1e18:
            raise ProfileError(f"{where} must be a finite number of at most 1e18 in size")
        return value
    if isinstance(value, str):
        return _device_str(value, where, 1000)
    raise ProfileError(f"{where} must be a string, number, true/false or null (got {_describe(value)})")


def _describe(value: Any) -> str:
    """What a wrong value is, for an error message: its JSON type, and the value itself when short."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             int: "an integer", float: "a number"}
    what = names.get(type(value), type(value).__name__)
    if value is None:
        return what
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"{what} of {len(str(abs(value))) if value.bit_length() < 10_000 else 'many'} digits"
    if isinstance(value, (bool, int, float)):
        return f"{what} {_clip(json.dumps(value))}"
    if isinstance(value, str):
        return f"{what} '{_clip(value)}'"
    return what


def _range(lo: float | None, hi: float | None) -> str:
    def fmt(x: float | None) -> str:
        return str(int(x)) if x is not None and float(x).is_integer() and abs(x) < 1e9 else f"{x:g}"

    return f"[{fmt(lo)}, {fmt(hi)}]"


def _clip(text: str, limit: int = 40) -> str:
    """A short, single-line rendering of an untrusted string for an error message."""
    text = _CONTROL.sub("?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------- reading


def parse_profile_text(text: str, where: str = "profile") -> Profile:
    """Parse and validate profile JSON text. Every problem is a one-line ``ProfileError``."""
    if not text.strip():
        raise ProfileError(f"{where} is empty")
    if len(text) > MAX_FILE_BYTES:
        raise ProfileError(f"{where} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; refusing it")
    if nesting_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ProfileError(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep; refusing it")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{where} is not valid JSON (line {exc.lineno}: {exc.msg}); truncated download?") from None
    except ValueError as exc:
        raise ProfileError(f"{where}: {exc}") from None
    try:
        return Profile.from_json(data)
    except ProfileError as exc:
        raise ProfileError(f"{where}: {exc}") from None


def load_profile(path: Path) -> Profile:
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ProfileError(f"profile file '{path}' does not exist") from None
    except OSError as exc:
        raise ProfileError(f"cannot read profile '{path}': {exc.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise ProfileError(f"'{path}' is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; refusing it")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"cannot read profile '{path}': {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"'{path}' is not UTF-8 text (not a profile)") from None
    return parse_profile_text(text, where=f"'{path}'")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid number in a profile")


# ---------------------------------------------------------------------------------------------- validation


def _obj(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ProfileError(f"{where} must be a JSON object")
    return data


def _str(d: dict[str, Any], key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v or len(v) > 1000:
        raise ProfileError(f"{where}.{key} must be a non-empty string")
    return v


def _label(d: dict[str, Any], key: str, where: str, limit: int, optional: bool = False) -> str | None:
    """A name or label: a string without control characters (it is printed inside one-line messages)."""
    v = d.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str) or (not v and not optional) or len(v) > limit:
        what = "a string" if optional else "a non-empty string"
        raise ProfileError(f"{where}.{key} must be {what} of at most {limit} characters")
    if _CONTROL.search(v):
        raise ProfileError(f"{where}.{key} holds control characters")
    return v


def _model_name(d: dict[str, Any], where: str) -> str:
    """A model's name as profiling writes it: a family, demo or registered name, a folder's base name, or a hub id
    (``owner/name``). Never a path: no leading '/' or '~', no backslash, no '.'/'..' parts, at most one '/'."""
    name = _label(d, "name", where, MAX_NAME_CHARS)
    assert name is not None
    parts = name.split("/")
    if (len(parts) > 2 or "\\" in name or name.startswith("~") or any(p in ("", ".", "..") for p in parts)
            or name != name.strip()):
        raise ProfileError(f"{where}.name '{_clip(name)}' is not a model name (it looks like a path)")
    return name


def _opt_str(d: dict[str, Any], key: str, where: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > 10000:
        raise ProfileError(f"{where}.{key} must be a string")
    return v


def _int(d: dict[str, Any], key: str, where: str, minimum: int = 0, maximum: int = 10**15) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not minimum <= v <= maximum:
        raise ProfileError(f"{where}.{key} must be an integer in [{minimum}, {maximum}]")
    return v


def _opt_int(d: dict[str, Any], key: str, where: str) -> int | None:
    return None if d.get(key) is None else _int(d, key, where)


def _choice(d: dict[str, Any], key: str, choices: tuple[str, ...], where: str) -> str:
    v = d.get(key)
    if v not in choices:
        raise ProfileError(f"{where}.{key} must be one of {', '.join(choices)}")
    return v


def _is_finite_number(v: Any) -> bool:
    """A JSON number that is not NaN or infinite. Integers are checked without float(): a 400-digit integer literal
    is valid JSON, and math.isfinite would raise OverflowError on it."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return isinstance(v, int) or math.isfinite(v)


def _check_latency(v: Any, where: str) -> float:
    if not _is_finite_number(v):
        raise ProfileError(f"{where} must be a finite number")
    if v < 0:
        raise ProfileError(f"{where} is negative ({v})")
    if v > 1e9:
        raise ProfileError(f"{where} is implausibly large ({v})")
    return float(v)


def _nonneg(d: dict[str, Any], key: str, where: str) -> float:
    return _check_latency(d.get(key), f"{where}.{key}")


# ---------------------------------------------------------------------------------------------- store


def save_profile(profile: Profile, path: Path) -> Path:
    from ldmpick.storage import atomic_write_text, file_lock

    path = Path(path)
    with file_lock(path):
        atomic_write_text(path, profile.dumps())
    return path


def stored_profile_path(profile: Profile) -> Path:
    from ldmpick.storage import profiles_dir

    return profiles_dir() / f"{profile.id}.json"


def list_profile_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("*.json") if not p.name.endswith(".partial.json")), reverse=True)


def shipped_profiles_dir() -> Path:
    """Reference profiles that ship with the tool: the repository's ``profiles/`` folder, installed as the
    package ``ldmpick.reference_profiles``."""
    from importlib.resources import files

    return Path(str(files("ldmpick.reference_profiles")))


def find_profile(ref: str) -> Path:
    """A profile file path, or the id/stem of one in the user folder or the shipped ones."""
    from ldmpick.storage import profiles_dir

    p = Path(ref).expanduser()
    if p.suffix == ".json" or os.sep in ref or p.exists():
        if not p.exists():
            raise ProfileError(f"profile file '{ref}' does not exist")
        return p
    candidates = [d / f"{ref}.json" for d in (profiles_dir(), shipped_profiles_dir())]
    for c in candidates:
        if c.exists():
            return c
    # unique prefix of a file name or of a profile id (shipped files are named for people, ids are stamped)
    files = [f for d in (profiles_dir(), shipped_profiles_dir()) for f in list_profile_files(d)]
    matches = [f for f in files if f.stem.startswith(ref)]
    if not matches:
        for f in files:
            try:
                if load_profile(f).id.startswith(ref):
                    matches.append(f)
            except ProfileError:
                continue
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(m.stem for m in matches[:4])
        raise UsageError(f"profile name '{ref}' is ambiguous ({len(matches)} match: {names}); give more of it")
    raise ProfileError(f"no profile named '{ref}' (see 'ldmpick profiles list')")


# ---------------------------------------------------------------------------------------------- exporters


def profile_rows(profile: Profile) -> list[dict[str, Any]]:
    """One flat row per measured thing: models, fixed parts, samplers."""
    rows: list[dict[str, Any]] = []

    def row(kind: str, name: str, stats: LatencyStats | None, **extra: Any) -> None:
        rows.append(
            {
                "kind": kind,
                "name": name,
                "median_ms": round(stats.median_ms, 4) if stats else None,
                "p10_ms": round(stats.p10_ms, 4) if stats else None,
                "p90_ms": round(stats.p90_ms, 4) if stats else None,
                "iqr_ms": round(stats.iqr_ms, 4) if stats else None,
                "n": stats.n if stats else None,
                **extra,
            }
        )

    for m in profile.models:
        row("denoiser_step", m.name, m.denoiser_step, status=m.status, family=m.family,
            denoiser_params=m.denoiser_params, peak_memory_bytes=m.peak_memory_bytes)
    for m in profile.models:
        row("text_encoder", m.name, m.text_encoder, status="ok" if m.text_encoder else "missing", family=m.family)
        row("vae_decode", m.name, m.vae_decode, status="ok" if m.vae_decode else "missing", family=m.family)
    for s in profile.samplers:
        row("sampler_step", s.name, s.step_overhead, status="ok", evals_per_step=s.evals_per_step)
    return rows


ROW_FIELDS = ["kind", "name", "status", "family", "median_ms", "p10_ms", "p90_ms", "iqr_ms", "n",
              "denoiser_params", "peak_memory_bytes", "evals_per_step"]


def export_csv(profile: Profile) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in profile_rows(profile):
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in ROW_FIELDS})
    return buf.getvalue()


def export_markdown(profile: Profile) -> str:
    s = profile.settings
    lines = [
        f"Profile `{profile.id}` — {profile.device_name}, {s.describe()}, measured {profile.created}",
        "",
        "| kind | name | status | median [ms] | p10 [ms] | p90 [ms] | IQR [ms] | n |",
        "|:---|:---|:---|---:|---:|---:|---:|---:|",
    ]
    for r in profile_rows(profile):
        cells = [r["kind"], r["name"], r.get("status", "")] + [
            "" if r[k] is None else (f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]))
            for k in ("median_ms", "p10_ms", "p90_ms", "iqr_ms", "n")
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class DiffRow:
    name: str
    kind: str
    a_ms: float | None
    b_ms: float | None

    @property
    def ratio(self) -> float | None:
        if self.a_ms is None or self.b_ms is None or self.a_ms <= 0:
            return None
        return self.b_ms / self.a_ms


def diff_profiles(a: Profile, b: Profile) -> list[DiffRow]:
    """Median latencies of ``b`` relative to ``a``, thing by thing (ratio > 1: ``b`` is slower)."""
    rows: list[DiffRow] = []
    names = list(dict.fromkeys(a.model_names() + b.model_names()))
    amods = {m.name: m for m in a.models}
    bmods = {m.name: m for m in b.models}

    def med(m: ModelLatency | None, part: str = "denoiser_step") -> float | None:
        stats = getattr(m, part) if m is not None and m.ok else None
        return stats.median_ms if stats else None

    for part in ("denoiser_step", "text_encoder", "vae_decode"):
        for n in names:
            rows.append(DiffRow(n, part, med(amods.get(n), part), med(bmods.get(n), part)))
    asam = {s.name: s for s in a.samplers}
    bsam = {s.name: s for s in b.samplers}
    for n in dict.fromkeys(list(asam) + list(bsam)):
        rows.append(DiffRow(n, "sampler_step",
                            asam[n].step_overhead.median_ms if n in asam else None,
                            bsam[n].step_overhead.median_ms if n in bsam else None))
    return rows
