"""A model's denoiser step under knob lists (``profile --knobs "SET;SET"``): one ``KnobVariant`` per list.

Each list is applied to the random-weight denoiser the profiler builds, through the wing's ``apply_knobs`` (so a
cache is diffusers' own hook, a precision torch's or torchao's, a compile the shared ``DenoiserRunner``), and timed
the way the plain step is (``Timer.once``, synchronized, raw samples kept):

- precision, attention and compile change every step alike: runs of one step (``every-step``); with a compile knob
  the first call, before any warm-up, is timed apart and its excess over a warm step reported as ``compile_ms``;
- a fixed-schedule cache (TaylorSeer, PAB, FasterCache) is driven through runs of ``RUN_STEPS`` steps in one cache
  context, its state reset before each run, the current timestep of the model's own sampler published for the
  windowed caches; each timed call is classified by the knob's own ``schedule()`` as full or cached, and the two
  kinds of samples are kept apart;
- an adaptive cache (FBCache, MagCache) is timed as a full step only (each run one step after a reset: its first
  step always runs in full): whether it skips depends on the content, which random weights cannot show, so its skip
  rate must come from published rows or the user's runs.

A list is a change against the profile's settings: without a precision knob the denoiser stays in the profile's
dtype; without a compile knob it runs in the profile's execution mode. A list that cannot run on this device or
denoiser is skipped with a one-line note.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ldmpick.files.errors import LdmpickError, UsageError
from ldmpick.knobs import KnobSetting, format_knobs, parse_knobs
from ldmpick.profiles.knob_block import ADAPTIVE, EVERY_STEP, FIXED, KnobVariant

SET_SEPARATOR = ";"
MAX_SETS = 16
RUN_STEPS = 12  # steps of one timed run of a fixed-schedule cache
MIN_RUNS = 2  # timed runs, whatever the time budget


def parse_knob_sets(text: str | None) -> list[str]:
    """``'precision=bf16;cache=taylorseer(interval=4)'`` -> the canonical text of each list (one-line errors:
    a bad knob, an empty list, ``none`` (the plain step is always measured), a list given twice)."""
    if text is None or not str(text).strip():
        return []
    items = str(text).split(SET_SEPARATOR)
    if len(items) > MAX_SETS:
        raise UsageError(f"--knobs holds {len(items)} knob lists; at most {MAX_SETS}")
    out: list[str] = []
    for item in items:
        if not item.strip():
            raise UsageError(f"--knobs '{_clip(str(text))}' has an empty knob list (two ';', or one at an end)")
        settings = parse_knobs(item)
        if not settings:
            raise UsageError("--knobs: 'none' is the plain step, which profile always measures; list knobs only")
        canonical = format_knobs(settings)
        if canonical in out:
            raise UsageError(f"--knobs: the knob list {canonical} is given twice")
        out.append(canonical)
    return out


def effective_settings(knobs: str, mode: str) -> tuple[KnobSetting, ...]:
    """The settings a run applies for ``knobs`` on top of the profile's execution ``mode`` (a list without a
    compile knob runs in the profile's mode)."""
    from ldmpick.knobs.compile import from_mode

    settings = parse_knobs(knobs)
    if mode != "eager" and not any(s.kind == "compile" for s in settings):
        settings = settings + (from_mode(mode),)
    return settings


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def measure_knob_variants(spec: Any, req: Any, factory: Any, timer: Any, out_of_memory: Callable[[BaseException], bool],
                          free_memory: Callable[[str], None]) -> tuple[list[KnobVariant], list[str]]:
    """Each of ``req.knob_sets`` that applies to ``spec`` measured on its denoiser, and a note per list that was
    not (why, in one line). ``out_of_memory`` and ``free_memory`` are the profiler's (what a failed build is, and
    how memory is given back after each list)."""
    from ldmpick.knobs import DeviceFacts
    from ldmpick.knobs.application import setting_issues

    device = DeviceFacts.of(req.device)
    denoiser_class = spec.adapter.denoiser_class(spec)
    variants, notes = [], []
    for knobs in req.knob_sets:
        settings = effective_settings(knobs, req.mode)
        issues = setting_issues(settings, device, denoiser_class)
        if issues:
            notes.append(f"{spec.name}: knobs {knobs} not measured ({issues[0]})")
            continue
        try:
            variants.append(measure_variant(spec, req, factory, timer, knobs, settings))
        except LdmpickError as exc:
            notes.append(f"{spec.name}: knobs {knobs} not measured ({' '.join(str(exc).split())[:300]})")
        except Exception as exc:  # out of memory while building or running: skipped, as a plain step would be
            if not out_of_memory(exc):
                raise
            notes.append(f"{spec.name}: knobs {knobs} did not fit ({' '.join(str(exc).split())[:200]})")
        finally:
            free_memory(req.device)
    return variants, notes


def _sampler_timesteps(spec: Any, req: Any, steps: int) -> list[float]:
    """The timesteps (0-1000) of ``steps`` steps of the model's first sampler, as PAB and FasterCache see them."""
    from ldmpick.models.samplers import make_scheduler

    sampler = req.samplers_for(spec)[0]
    scheduler = make_scheduler(sampler, spec.scheduler_config)
    scheduler.set_timesteps(steps, device="cpu", **spec.adapter.timestep_kwargs(spec, scheduler, req.resolution))
    return [float(t) for t in scheduler.timesteps[:steps]]


def measure_variant(spec: Any, req: Any, factory: Any, timer: Any, knobs: str,
                    settings: tuple[KnobSetting, ...]) -> KnobVariant:
    """One knob list on a fresh random-weight denoiser (see the module's docstring)."""
    from ldmpick.knobs import knob_kind
    from ldmpick.knobs.application import apply_knobs
    from ldmpick.knobs.cache import sort_of
    from ldmpick.knobs.precision import torch_dtype_name

    torch = factory.torch
    cache = next((s for s in settings if s.kind == "cache"), None)
    precision = next((s for s in settings if s.kind == "precision"), None)
    compiled = next((s for s in settings if s.kind == "compile" and s.name != "none"), None)
    sort = sort_of(cache) if cache is not None else "none"
    run_steps = RUN_STEPS if sort == FIXED else 1
    timesteps = _sampler_timesteps(spec, req, run_steps) if sort == FIXED else [500.0]
    full = set(knob_kind("cache").schedule(cache, run_steps, timesteps).full) if sort == FIXED else {0}
    dtype = getattr(torch, torch_dtype_name(precision)) if precision is not None else factory.dtype
    denoiser = factory.denoiser(spec)
    try:
        holder = SimpleNamespace(transformer=denoiser, current_timestep=timesteps[0])
        applied = apply_knobs(settings, holder, req.device, steps=run_steps)
        batch = req.batch * spec.adapter.evals_per_step(spec, req.cfg)
        inputs = spec.adapter.denoiser_inputs(spec, batch, req.resolution, req.device, dtype)
        cached = cache is not None and cache.name != "none"

        def run(samples: tuple[list[float], list[float]] | None) -> None:
            if cached:
                denoiser._reset_stateful_cache()
            context = denoiser.cache_context("cond") if cached else contextlib.nullcontext()
            with context:
                for i, t in enumerate(timesteps):
                    holder.current_timestep = t
                    ms = timer.once(lambda: denoiser(**inputs, return_dict=False))
                    if samples is not None:
                        samples[0 if i in full else 1].append(ms)

        with torch.no_grad():
            first_ms = None
            if compiled is not None:  # the first call compiles or captures: a cold-start cost, apart
                first: tuple[list[float], list[float]] = ([], [])
                run(first)
                first_ms = first[0][0]
            for _ in range(max(1, req.warmup if run_steps == 1 else 1)):
                run(None)
            timer.sync()
            samples: tuple[list[float], list[float]] = ([], [])
            runs, started = 0, time.perf_counter()
            while True:
                run(samples)
                runs += 1
                elapsed = time.perf_counter() - started
                if runs >= MIN_RUNS and (len(samples[0]) >= req.repeats or len(samples[0]) + len(samples[1])
                                         >= req.repeats * run_steps
                                         or elapsed + elapsed / runs > req.max_seconds_per_model):
                    break
        from ldmpick.profiles.latency_stats import LatencyStats

        step = LatencyStats.from_samples(samples[0])
        return KnobVariant(
            knobs=knobs, denoiser_step=step, schedule={FIXED: FIXED, ADAPTIVE: ADAPTIVE}.get(sort, EVERY_STEP),
            cached_step=LatencyStats.from_samples(samples[1]) if sort == FIXED else None,
            compile_ms=max(0.0, first_ms - step.median_ms) if first_ms is not None else None,
            notes="; ".join(a.note for a in applied)
            + ("; adaptive: a full step only (its skip rate comes from data)" if sort == ADAPTIVE else ""),
            pattern="".join("F" if i in full else "c" for i in range(run_steps)) if sort == FIXED else None,
            runs=runs if sort == FIXED else 0)
    finally:
        del denoiser
