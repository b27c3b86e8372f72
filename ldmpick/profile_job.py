"""One ``ldmpick profile`` run around ``profiling.run_profile``: the request with this device's defaults, where the
profile and its partial file go, resuming an interrupted run, and the warnings worth giving. No printing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ldmpick.errors import UsageError

NOISY_IQR = 0.1  # IQR / median above which a measurement is called noisy


@dataclass(frozen=True)
class ProfileOutput:
    """Where the finished profile goes (None: the user profile folder, named by its id) and the partial file that
    an interrupted run leaves."""

    target: Path | None
    partial: Path


def build_request(*, models: str, device: str | None, dtype: str | None, resolution: int, batch: int, cfg: bool,
                  mode: str | None, samplers: str, warmup: int, repeats: int, max_seconds: float,
                  threads: int | None, rounds: int, command: str) -> Any:  # -> profiling.ProfileRequest
    """A checked request; the device defaults to the GPU if there is one, dtype and mode to what suits it."""
    from ldmpick import profiling
    from ldmpick.catalogue import parse_model_list
    from ldmpick.execution import default_dtype, default_mode
    from ldmpick.samplers import parse_sampler_list

    device = device or profiling.default_device()
    req = profiling.ProfileRequest(
        models=parse_model_list(models),
        device=device,
        dtype=dtype or default_dtype(device),
        resolution=resolution,
        batch=batch,
        cfg=cfg,
        mode=mode or default_mode(device),
        # 'all': each model's own samplers (its family's, lcm/scm when distilled); a list: those of it that fit
        samplers=None if samplers is None or samplers.strip().lower() == "all" else parse_sampler_list(samplers),
        warmup=warmup,
        repeats=repeats,
        max_seconds_per_model=max_seconds,
        threads=threads,
        command=command,
        rounds=rounds,
    )
    if max_seconds <= 0:
        raise UsageError("--max-seconds must be positive")
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1 (got {repeats})")
    if not 1 <= rounds <= 100 or rounds > repeats:
        raise UsageError(f"--rounds must be between 1 and 100 and at most --repeats (got {rounds})")
    profiling.validate_request(req)
    return req


def plan_output(out: Path | None) -> ProfileOutput:
    """Check ``--out`` (or make the user profile folder) and name the partial file next to where the profile
    goes."""
    from ldmpick.output_paths import check_output_file
    from ldmpick.storage import profiles_dir

    if out is not None:
        out = check_output_file(out, example="profile.json")
        return ProfileOutput(out, out.with_name(out.name + ".partial.json"))
    profiles_dir().mkdir(parents=True, exist_ok=True)
    return ProfileOutput(None, profiles_dir() / "latest.partial.json")


def load_resume(output: ProfileOutput) -> Any:  # -> Profile
    """The partial profile an interrupted run left."""
    from ldmpick.profile_model import load_profile

    if not output.partial.exists():
        raise UsageError(f"--resume: no partial profile at '{output.partial}'")
    return load_profile(output.partial)


def write_checkpoint(profile: Any, output: ProfileOutput) -> None:
    """Keep what is measured so far in the partial file (atomically)."""
    from ldmpick.storage import atomic_write_text

    atomic_write_text(output.partial, profile.dumps())


def busy_warning() -> str | None:
    """A warning when the machine is busy enough to slow the measurements, else None."""
    from ldmpick.fingerprint import cpu_cores, system_load

    load = system_load()
    if load is not None and load > 0.5 * cpu_cores():
        return (f"warning: the machine is busy (load average {load:.1f} on {cpu_cores()} cores); "
                "measurements will be slower and noisier than on an idle machine")
    return None


def save(profile: Any, output: ProfileOutput) -> Path:
    """Write the finished profile and drop the partial file; returns where it went."""
    from ldmpick.profile_store import save_profile, stored_profile_path

    target = output.target or stored_profile_path(profile)
    save_profile(profile, target)
    output.partial.unlink(missing_ok=True)
    return target


def noisy_warnings(profile: Any) -> list[str]:
    """One warning per model whose step latency spread is large."""
    return [f"warning: {m.name}: noisy measurement (IQR {100 * m.unet_step.relative_iqr:.0f}% of the median); "
            "close other programs or raise --repeats"
            for m in profile.models if m.ok and m.unet_step and m.unet_step.relative_iqr > NOISY_IQR]
