"""A profile's ``device`` block: the fingerprint of the machine it was measured on (see hardware/fingerprint.py), what each
field may hold, and what identifies "the same kind of machine". Torch-free (the ``recommend`` path)."""

from __future__ import annotations

import re
from typing import Any

from ldmpick.files.errors import ProfileError
from ldmpick.profiles.fields import CONTROL, MAX_COUNT, clip, describe, is_finite_number, obj, value_range

MAX_DEVICE_KEYS = 64
MAX_DEVICE_LIST = 64


def device_key(device: dict[str, Any]) -> str:
    name = str(device.get("name") or "unknown")
    if device.get("kind") == "cpu":
        return f"cpu:{name}:{device.get('cpu_cores')}"
    return f"{device.get('kind', 'gpu')}:{name}"



# What hardware/fingerprint.py writes into a profile's ``device`` block, and what each field may hold. Every field is
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
    d = obj(data, "device")
    if len(d) > MAX_DEVICE_KEYS:
        raise ProfileError(f"device has {len(d)} keys; at most {MAX_DEVICE_KEYS} are allowed")
    if "name" not in d:
        raise ProfileError("device.name is missing (the device's name is required)")
    out: dict[str, Any] = {}
    for key, value in d.items():
        if len(key) > 64 or not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise ProfileError(f"device key '{clip(key)}' is not a plain name (letters, digits, '_', '.', '-')")
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
                raise ProfileError(f"{where} must be a short name like 'cpu' or 'cuda' (got {describe(value)})")
            out[key] = value
        elif kind == "int":
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:  # type: ignore[operator]
                raise ProfileError(f"{where} must be an integer in {value_range(lo, hi)} or null (got {describe(value)})")
            out[key] = value
        elif kind == "num":
            if not is_finite_number(value) or not lo <= value <= hi:  # type: ignore[operator]
                raise ProfileError(f"{where} must be a number in {value_range(lo, hi)} or null (got {describe(value)})")
            out[key] = value
        else:  # versions
            v = obj(value, where)
            if len(v) > 32:
                raise ProfileError(f"{where} has {len(v)} entries; at most 32 are allowed")
            clean: dict[str, str | None] = {}
            for lib, ver in v.items():
                if len(lib) > 64 or not re.fullmatch(r"[A-Za-z0-9_.-]+", lib):
                    raise ProfileError(f"{where} key '{clip(lib)}' is not a plain name")
                clean[lib] = None if ver is None else _device_str(ver, f"{where}.{lib}", 100)
            out[key] = clean
    return out


def _device_str(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ProfileError(f"{where} must be a string (got {describe(value)})")
    if len(value) > limit:
        raise ProfileError(f"{where} is longer than {limit} characters")
    if CONTROL.search(value):
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
        if not is_finite_number(value) or abs(value) > 1e18:
            raise ProfileError(f"{where} must be a finite number of at most 1e18 in size")
        return value
    if isinstance(value, str):
        return _device_str(value, where, 1000)
    raise ProfileError(f"{where} must be a string, number, true/false or null (got {describe(value)})")

