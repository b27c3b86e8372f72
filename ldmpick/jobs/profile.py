"""One ``ldmpick profile`` run around ``profiling.run_profile``: the request with this device's defaults, where the
profile and its partial file go, resuming an interrupted run, and the warnings worth giving. No printing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ldmpick.files.errors import RuntimeFailure, UsageError

NOISY_IQR = 0.1  # IQR / median above which a measurement is called noisy


@dataclass(frozen=True)
class ProfileOutput:
    """Where the finished profile goes (None: the user profile folder, named by its id) and the partial file that
    an interrupted run leaves."""

    target: Path | None
    partial: Path


def build_request(*, models: str, device: str | None, dtype: str | None, resolution: int | None, batch: int, cfg: bool,
                  mode: str | None, samplers: str, warmup: int, repeats: int, max_seconds: float,
                  threads: int | None, rounds: int, command: str, pipeline_call: bool = True, call_steps: str = "2,8",
                  fresh_runs: int = 5, knobs: str | None = None) -> Any:  # -> profiling.ProfileRequest
    """A checked request; the device defaults to the GPU if there is one, dtype and mode to what suits it, the
    resolution to the models' native one (the demo models: 32 px; the paper's family: 512 px)."""
    from ldmpick.measurement import profiler as profiling
    from ldmpick.models.catalogue import parse_model_list
    from ldmpick.hardware.execution import default_dtype, default_mode
    from ldmpick.models.samplers import parse_sampler_list

    from ldmpick.measurement.knob_steps import parse_knob_sets

    check_counts(resolution=resolution, batch=batch, warmup=warmup, repeats=repeats, max_seconds=max_seconds,
                 threads=threads, rounds=rounds)
    knob_sets = parse_knob_sets(knobs)  # the text, before anything is resolved or built
    device = device or profiling.default_device()
    model_list = parse_model_list(models)
    req = profiling.ProfileRequest(
        models=model_list,
        device=device,
        dtype=dtype or default_dtype(device),
        resolution=native_resolution(model_list) if resolution is None else resolution,
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
        pipeline_call=pipeline_call,
        call_steps=parse_call_steps(call_steps),
        fresh_processes=fresh_runs,
        knob_sets=knob_sets,
    )
    profiling.validate_request(req)
    return req


def parse_call_steps(text: str) -> tuple[int, int]:
    """``'2,8'`` -> ``(2, 8)``: the two step counts a model's pipeline call is timed at."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 4 for p in parts):
        raise UsageError(f"--call-steps must be two step counts such as '2,8' (got '{str(text)[:24]}')")
    low, high = int(parts[0]), int(parts[1])
    if not 1 <= low < high <= 1000:
        raise UsageError(f"--call-steps must be two step counts, the lower first, in 1..1000 (got {low},{high})")
    return low, high


MAX_THREADS = 1024
MAX_WARMUP = 1000
MAX_SECONDS = 86_400.0


def check_counts(*, resolution: int | None, batch: int, warmup: int, repeats: int, max_seconds: float,
                 threads: int | None, rounds: int) -> None:
    """The numeric options, checked before anything is built or measured (a NaN time cap used to fail only after
    the first model's measurements)."""
    import math

    from ldmpick.profiles.schema import MAX_SAMPLES
    from ldmpick.measurement.profiler import MAX_RESOLUTION

    if not math.isfinite(max_seconds) or not 0 < max_seconds <= MAX_SECONDS:
        raise UsageError(f"--max-seconds must be a number of seconds in (0, {MAX_SECONDS:g}] (got {max_seconds:g})")
    if not 1 <= repeats <= MAX_SAMPLES:
        raise UsageError(f"--repeats must be between 1 and {MAX_SAMPLES} (got {repeats})")
    if not 0 <= warmup <= MAX_WARMUP:
        raise UsageError(f"--warmup must be between 0 and {MAX_WARMUP} (got {warmup})")
    if not 1 <= rounds <= 100 or rounds > repeats:
        raise UsageError(f"--rounds must be between 1 and 100 and at most --repeats (got {rounds})")
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise UsageError(f"--threads must be between 1 and {MAX_THREADS} (got {threads})")
    if not 1 <= batch <= 64:
        raise UsageError(f"--batch must be between 1 and 64 (got {batch})")
    if resolution is not None and not 8 <= resolution <= MAX_RESOLUTION:
        raise UsageError(f"--resolution {resolution} is out of range (8..{MAX_RESOLUTION} pixels)")


def native_resolution(models: list[str]) -> int:
    """The one native resolution of ``models``; a mixed list needs --resolution."""
    from ldmpick.models.catalogue import resolve_model

    natives = {name: resolve_model(name).native_resolution for name in models}
    if len(set(natives.values())) > 1:
        listed = ", ".join(f"{n} {r} px" for n, r in natives.items())
        raise UsageError(f"the models have different native resolutions ({listed}); give --resolution")
    return next(iter(natives.values()))


def plan_output(out: Path | None, req: Any) -> ProfileOutput:
    """Check ``--out`` (or make the user profile folder) and name the partial file: next to ``--out``, or in the
    user profile folder named for the request (its models, samplers, device and measured settings), so that runs
    of different requests never share one and a rerun of the same command finds its own."""
    from ldmpick.files.output_paths import check_output_file
    from ldmpick.files.storage import profiles_dir

    if out is not None:
        out = check_output_file(out, example="profile.json")
        return ProfileOutput(out, out.with_name(out.name + ".partial.json"))
    profiles_dir().mkdir(parents=True, exist_ok=True)
    return ProfileOutput(None, profiles_dir() / f"profile.{request_digest(req)}.partial.json")


def request_digest(req: Any) -> str:
    """What identifies a run's measurements (not its repeat counts or time caps, which --resume may change)."""
    key = [req.models, req.samplers, req.device, req.dtype, req.resolution, req.batch, req.cfg, req.mode]
    if req.knob_sets:  # (absent otherwise, so that partial files of earlier runs keep their names)
        key.append(req.knob_sets)
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]


def partial_state(output: ProfileOutput, resume: bool, restart: bool) -> Any:  # -> Profile | None
    """The partial profile to resume from (None: start afresh). An interrupted run of the same request is neither
    overwritten nor resumed silently: it takes --resume or --restart (as calibrate does)."""
    if resume and restart:
        raise UsageError("give --resume or --restart, not both")
    if resume:
        return load_resume(output)
    if output.partial.exists() and not restart:
        raise UsageError(f"an interrupted profile run is kept in '{output.partial}'; continue it with --resume, "
                         "or discard it with --restart")
    return None


@contextmanager
def claimed(output: ProfileOutput) -> Iterator[None]:
    """Hold the partial file for this run: a second run of the same request (or to the same --out) while this one
    is measuring is refused instead of sharing the partial file."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(output.partial) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        other = "give --out" if output.target is None else "give another --out"
        raise RuntimeFailure(f"another 'ldmpick profile' run is measuring into '{output.partial}'; wait for it to "
                             f"finish, or {other}") from None
    try:
        yield
    finally:
        lock.release()
        Path(lock.lock_file).unlink(missing_ok=True)


def load_resume(output: ProfileOutput) -> Any:  # -> Profile
    """The partial profile an interrupted run left."""
    from ldmpick.profiles.schema import load_profile

    if not output.partial.exists():
        raise UsageError(f"--resume: no partial profile at '{output.partial}'")
    return load_profile(output.partial)


def check_resume(req: Any, resume_from: Any) -> None:
    """Refuse, before anything is said or measured, to resume another request's or another machine's partial
    profile (``profiler.check_resumable``)."""
    from ldmpick.hardware.fingerprint import light_fingerprint
    from ldmpick.measurement.profiler import check_resumable, validate_request

    specs = validate_request(req)
    check_resumable(resume_from, light_fingerprint(req.device), [spec.name for spec in specs],
                    {name for spec in specs for name in req.samplers_for(spec)})


def write_checkpoint(profile: Any, output: ProfileOutput) -> None:
    """Keep what is measured so far in the partial file (atomically)."""
    from ldmpick.files.storage import atomic_write_text

    atomic_write_text(output.partial, profile.dumps())


def busy_warning() -> str | None:
    """A warning when the machine is busy enough to slow the measurements, else None."""
    from ldmpick.hardware.fingerprint import cpu_cores, system_load

    load = system_load()
    if load is not None and load > 0.5 * cpu_cores():
        return (f"warning: the machine is busy (load average {load:.1f} on {cpu_cores()} cores); "
                "measurements will be slower and noisier than on an idle machine")
    return None


def save(profile: Any, output: ProfileOutput) -> Path:
    """Write the finished profile and drop the partial file; returns where it went."""
    from ldmpick.profiles.store import save_profile, stored_profile_path

    target = output.target or stored_profile_path(profile)
    save_profile(profile, target)
    output.partial.unlink(missing_ok=True)
    return target


def noisy_warnings(profile: Any) -> list[str]:
    """One warning per model whose step latency spread is large."""
    return [f"warning: {m.name}: noisy measurement (IQR {100 * m.unet_step.relative_iqr:.0f}% of the median); "
            "close other programs or raise --repeats"
            for m in profile.models if m.ok and m.unet_step and m.unet_step.relative_iqr > NOISY_IQR]


def profile_on_cluster(req: Any, address: str, started: Any) -> Any:  # -> Iterator[tuple[DeviceGroup, Profile, Path]]
    """Profile ``req`` on every distinct device type of the Ray cluster at ``address``; each profile is stored in
    the user profile folder as it arrives (with its own node's fingerprint, as if measured there locally).
    ``started(cluster_info, device_groups)`` is told what will be measured before the work starts."""
    from ldmpick.transport.ray_cluster import connected, device_groups, profile_each_device
    from ldmpick.profiles.schema import parse_profile_text
    from ldmpick.profiles.store import save_profile, stored_profile_path

    with connected(address) as info:
        groups = device_groups(req.device)
        started(info, groups)
        for group, text in profile_each_device(req, groups):
            profile = parse_profile_text(text, where=f"the profile measured on {group.name}")
            target = stored_profile_path(profile)
            target.parent.mkdir(parents=True, exist_ok=True)
            save_profile(profile, target)
            yield group, profile, target
