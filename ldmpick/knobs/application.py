"""Checking a knob list against a device and a denoiser, and applying it to a loaded diffusers pipeline."""

from __future__ import annotations

from typing import Any

from ldmpick.files.errors import UsageError
from ldmpick.knobs import Applied, DeviceFacts, KnobSetting, denoiser_of, knob_kind
from ldmpick.knobs.compatibility import refusals


def setting_issues(settings: tuple[KnobSetting, ...], device: DeviceFacts, denoiser_class: str | None = None,
                   ) -> list[str]:
    """Why these settings cannot run together here: each setting's device and denoiser needs, then every pair the
    compatibility matrix refuses. Empty when they can. ``denoiser_class`` (a diffusers class name) is checked only
    when given (it imports diffusers)."""
    issues = []
    for s in settings:
        knob = knob_kind(s.kind)
        why = knob.device_issue(s, device)
        if why:
            issues.append(f"{s.text}: {why}")
        if denoiser_class is not None:
            why = knob.denoiser_issue(s, denoiser_class)
            if why:
                issues.append(f"{s.text}: {why}")
    return issues + refusals(settings)


def check_settings(settings: tuple[KnobSetting, ...], device: DeviceFacts, denoiser_class: str | None = None) -> None:
    """Raise the first of ``setting_issues`` as a one-line ``UsageError``."""
    issues = setting_issues(settings, device, denoiser_class)
    if issues:
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        raise UsageError(issues[0] + more)


def apply_knobs(settings: tuple[KnobSetting, ...], pipeline: Any, device: str, steps: int | None = None,
                ) -> list[Applied]:
    """Apply ``settings`` (in registry order: precision, attention, cache, then compile, which wraps what the others
    set) to a loaded diffusers pipeline, each through its own library's API, after ``check_settings``. ``steps``
    is the run's step count (MagCache interpolates its ratios to it)."""
    denoiser = denoiser_of(pipeline)
    check_settings(settings, DeviceFacts.of(device), type(denoiser).__name__)
    return [knob_kind(s.kind).apply(s, pipeline, device, steps) for s in settings]
