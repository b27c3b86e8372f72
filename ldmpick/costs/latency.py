"""The measured cost model: seconds per image (one prompt's batch) from a latency profile.

The one latency formula of ldmpick, for every part at one percentile ``q`` of its measured spread:

    latency(q) = text_encoder(q) + evaluations(steps) x denoiser_step(q) + steps x sampler_overhead(q)
                 + vae_decode(q),     evaluations(steps) = steps x evals_per_step - saved_evals

with ``evals_per_step`` and ``saved_evals`` (Heun: 2 and 1, as its first step is one evaluation) from ldmpick's
sampler table (``ldmpick.models.samplers``), never from the profile file. Adding
the parts at the same percentile treats them as moving together (a busy or throttled machine slows every part),
which is the cautious reading: the run's p90 built this way is at least the p90 of the sum of independent parts.
So ``over_budget_chance`` is the share of runs expected slower than a budget, from the profile's own spreads.

A model whose profile entry holds its own pipeline call (``PipelineCall``: a model with weights, profile version 3)
is predicted from that call instead (``CallCorrection``): the parts' medians plus what the measured call adds to them
(a fixed part and a part per step, from warm calls at two step counts), plus, for the first image of a process,
what a fresh process's first call costs beyond its second; its spread is the run-to-run spread of the calls
themselves (warm calls, and second calls across fresh processes; first calls for a first image), not each part's.

Pure Python (no torch or numpy): this is the ``recommend`` path.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ldmpick.costs import CostRow, clip_text, positive, split_budget
from ldmpick.files.errors import UsageError
from ldmpick.models.samplers import steps_text

NAME = "measured"
MAX_BUDGET_S = 86_400.0
UNITS = {"s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3,
         "millisecond": 1e-3, "milliseconds": 1e-3, "min": 60.0, "minute": 60.0, "minutes": 60.0}
# 'm' is refused, not guessed: '2m' reads as two minutes to some and as a typo of '2ms' to others
SAME_COST_RATIO = 0.6  # per-step costs closer than this (smallest / largest) are "about the same"


@dataclass(frozen=True)
class PartSpread:
    """The measured spread of one part, in milliseconds: a quantile function over its raw samples (or, for a file
    without samples, over its min / p10 / median / p90 / max)."""

    knots: tuple[float, ...]  # sorted samples, or the five summary values
    median_ms: float
    from_samples: bool

    @classmethod
    def of(cls, stats: Any) -> PartSpread:
        if stats.samples_ms:
            return cls(tuple(sorted(stats.samples_ms)), stats.median_ms, True)
        return cls((stats.min_ms, stats.p10_ms, stats.median_ms, stats.p90_ms, stats.max_ms), stats.median_ms, False)

    @classmethod
    def zero(cls) -> PartSpread:
        return cls((0.0,), 0.0, True)

    def at(self, percentile: float) -> float:
        """Milliseconds at ``percentile`` (0-100), linear between knots; the median is the profile's own."""
        if percentile == 50:
            return self.median_ms
        xs = self.knots
        if self.from_samples:
            pos = percentile / 100 * (len(xs) - 1)
            lo = min(int(math.floor(pos)), len(xs) - 1)
            hi = min(lo + 1, len(xs) - 1)
            return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
        grid = (0.0, 10.0, 50.0, 90.0, 100.0)
        i = min(max(bisect.bisect_right(grid, percentile) - 1, 0), len(grid) - 2)
        return xs[i] + (xs[i + 1] - xs[i]) * (percentile - grid[i]) / (grid[i + 1] - grid[i])


@dataclass(frozen=True)
class CallCorrection:
    """What a model's measured pipeline call adds to the sum of its parts (ms): ``fixed_ms`` per call and
    ``per_step_ms`` per step (CFG concatenation and split, input scaling, callbacks, set-up, post-processing and PNG
    encoding), and ``first_ms``, what the first call of a fresh process costs beyond its second. ``warm_ratio`` and
    ``first_ratio`` are the calls' run-to-run spread, each sample over its series' median."""

    fixed_ms: float
    per_step_ms: float
    first_ms: float | None
    warm_ratio: PartSpread
    first_ratio: PartSpread | None
    processes: int
    sampler: str
    steps: tuple[int, int]
    warm_calls: int

    @classmethod
    def of(cls, call: Any, parts: LatencyBreakdown) -> CallCorrection:
        """From a profile's ``PipelineCall`` and the breakdown of the sampler its calls ran."""
        low, high = call.warm
        p_low, p_high = (sum(parts.parts_ms(w.steps, 50)) for w in (low, high))
        slope = (high.wall.median_ms - low.wall.median_ms - (p_high - p_low)) / (high.steps - low.steps)
        fixed = low.wall.median_ms - p_low - low.steps * slope
        ratios = [x / w.wall.median_ms for w in (low, high) for x in w.wall.samples_ms if w.wall.median_ms > 0]
        first_ms = first_ratio = None
        if call.first is not None and call.second is not None and call.first.wall.samples_ms:
            diffs = sorted(a - b for a, b in zip(call.first.wall.samples_ms, call.second.wall.samples_ms))
            first_ms = max(_median(diffs), 0.0)  # a first call is never faster than a warm one: below 0 is noise
            if call.second.wall.median_ms > 0:  # the second calls of fresh processes: the spread across runs
                ratios += [x / call.second.wall.median_ms for x in call.second.wall.samples_ms]
            if call.first.wall.median_ms > 0:
                xs = tuple(sorted(x / call.first.wall.median_ms for x in call.first.wall.samples_ms))
                first_ratio = PartSpread(xs, 1.0, True)
        warm = PartSpread(tuple(sorted(ratios)), 1.0, True) if ratios else PartSpread((1.0,), 1.0, True)
        return cls(fixed, slope, first_ms, warm, first_ratio, call.processes, call.sampler, (low.steps, high.steps),
                   low.wall.n + high.wall.n)

    def extra_ms(self, steps: int, first_image: bool) -> float:
        """What the call adds to the parts' medians at ``steps``."""
        return self.fixed_ms + steps * self.per_step_ms + ((self.first_ms or 0.0) if first_image else 0.0)

    def ratio(self, first_image: bool) -> PartSpread:
        return self.first_ratio if first_image and self.first_ratio is not None else self.warm_ratio


def _median(xs: list[float]) -> float:
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


@dataclass(frozen=True)
class LatencyBreakdown:
    """Where one (model, sampler)'s seconds come from: each part's measured spread and the sampler's evaluations
    per step (from ldmpick's sampler table)."""

    text_encoder: PartSpread
    denoiser_step: PartSpread
    sampler_overhead: PartSpread
    vae_decode: PartSpread
    evals_per_step: int
    percentile: float  # the percentile the row's fixed / per_step are at
    saved_evals: int = 0  # evaluations fewer than steps x evals_per_step (Heun: 1)
    call: CallCorrection | None = None  # the model's measured pipeline call, when the profile has it
    first_image: bool = False  # predict the first image of a fresh process (with ``call``), not a warm one
    # a fixed-schedule cache: the measured cached step, and how many of a run's n denoiser evaluations run in full
    cached_step: PartSpread | None = None
    full_evals: Callable[[int], int] | None = field(default=None, compare=False)
    knobs: str = "none"  # the knob list the denoiser step (and cached step) were measured with

    def evaluations(self, steps: int) -> int:
        return max(0, steps * self.evals_per_step - self.saved_evals)

    def parts_ms(self, steps: int, percentile: float) -> tuple[float, float, float]:
        """(text encoder, denoising loop, VAE decode) in ms at ``percentile`` of each part; with a fixed-schedule
        cache, the schedule's exact mix of full and cached evaluations."""
        if self.full_evals is not None and self.cached_step is not None:
            evals = self.evaluations(steps)
            full = min(evals, self.full_evals(evals))
            loop = (full * self.denoiser_step.at(percentile) + (evals - full) * self.cached_step.at(percentile)
                    + steps * self.sampler_overhead.at(percentile))
            return self.text_encoder.at(percentile), loop, self.vae_decode.at(percentile)
        per_step = self.evals_per_step * self.denoiser_step.at(percentile) + self.sampler_overhead.at(percentile)
        loop = steps * per_step - self.saved_evals * self.denoiser_step.at(percentile)
        return self.text_encoder.at(percentile), loop, self.vae_decode.at(percentile)

    def call_ms(self, steps: int) -> float:
        """What the pipeline's own call adds to the parts' medians (0 without a measured call)."""
        return self.call.extra_ms(steps, self.first_image) if self.call is not None else 0.0

    def median_ms(self, steps: int) -> float:
        return sum(self.parts_ms(steps, 50)) + self.call_ms(steps)

    def seconds(self, steps: int, percentile: float) -> float:
        """The run's latency at ``percentile``: with a measured call, its median scaled by the calls' own spread;
        without, each part at ``percentile`` (moving together)."""
        if self.call is not None:
            return self.median_ms(steps) * self.call.ratio(self.first_image).at(percentile) / 1e3
        return sum(self.parts_ms(steps, percentile)) / 1e3


@dataclass
class LatencyPrediction:
    """What a profile predicts for one prompt's batch: the parts at the median (ms), the latency planned on (at
    ``percentile``) and, with a budget, the chance of running over it."""

    profile_id: str
    text_encoder_ms: float
    denoise_ms: float
    vae_decode_ms: float
    percentile: float = 50.0
    planned_ms: float | None = None  # the run's latency at ``percentile``
    budget_ms: float | None = None
    over_budget_chance: float | None = None
    fid: float | None = None  # the predicted quality on the FID scale, when there is one (sidecar field)
    call_ms: float = 0.0  # what the model's measured pipeline call adds to the parts (0: not measured)
    basis: str = "parts"  # "parts": the sum of parts; "pipeline call (warm)" / "pipeline call (first image)"

    @property
    def total_ms(self) -> float:
        return self.text_encoder_ms + self.denoise_ms + self.vae_decode_ms + self.call_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile_id,
            "text_encoder_ms": round(self.text_encoder_ms, 3),
            "denoise_ms": round(self.denoise_ms, 3),
            "vae_decode_ms": round(self.vae_decode_ms, 3),
            "pipeline_call_ms": round(self.call_ms, 3),
            "total_ms": round(self.total_ms, 3),
            "basis": self.basis,
            "percentile": self.percentile,
            "planned_ms": round(self.planned_ms, 3) if self.planned_ms is not None else None,
            "fid": self.fid,
            "budget_ms": self.budget_ms,
            "over_budget_chance": (round(self.over_budget_chance, 4) if self.over_budget_chance is not None
                                   else None),
        }


def breakdown(profile: Any, model: Any, sampler: str, percentile: float, without_fixed: bool = False,
              first_image: bool = False) -> LatencyBreakdown | str:
    """The breakdown of ``model`` (a profile's ``ModelLatency``) with ``sampler``, or why there is none. With
    ``without_fixed`` a missing text-encoder or VAE measurement counts as zero (a denoiser-only profile's loop).
    With the model's pipeline call in the profile, the breakdown carries its correction; ``first_image``: for the
    first image of a fresh process."""
    b = _parts_breakdown(profile, model, sampler, percentile, without_fixed)
    call = getattr(model, "pipeline_call", None)
    if isinstance(b, str) or call is None:
        return b
    ran = b if call.sampler == sampler else _parts_breakdown(profile, model, call.sampler, percentile, without_fixed)
    if isinstance(ran, str):  # the sampler its calls ran is not in the profile (an edited file): parts only
        return b
    return replace(b, call=CallCorrection.of(call, ran), first_image=first_image)


def _parts_breakdown(profile: Any, model: Any, sampler: str, percentile: float,
                     without_fixed: bool) -> LatencyBreakdown | str:
    from ldmpick.models.samplers import get_sampler

    if (model.text_encoder is None or model.vae_decode is None) and not without_fixed:
        return f"{model.name}: the profile lacks its text encoder or VAE measurement; measure it again"
    overhead = next((s for s in profile.samplers if s.name == sampler), None)
    if overhead is None:
        return f"sampler {sampler}: not in the profile"

    def spread(stats: Any) -> PartSpread:
        return PartSpread.of(stats) if stats is not None else PartSpread.zero()

    s = get_sampler(sampler)
    return LatencyBreakdown(spread(model.text_encoder), PartSpread.of(model.denoiser_step),
                            PartSpread.of(overhead.step_overhead), spread(model.vae_decode),
                            s.evals_per_step, percentile, s.saved_evals)


def predict(profile: Any, model_names: list[str], sampler: str, steps: int, percentile: float = 50.0,
            budget_ms: float | None = None, first_image: bool = False) -> LatencyPrediction | None:
    """The profile's prediction for ``steps`` of ``sampler`` with the first ok model called any of
    ``model_names`` (a part the profile did not measure counts as zero); ``None`` when the profile lacks the model
    or the sampler."""
    from ldmpick.models.samplers import SAMPLERS

    model = next((m for m in profile.models if m.name in model_names and m.ok), None)
    if model is None or sampler not in SAMPLERS:
        return None
    b = breakdown(profile, model, sampler, percentile, without_fixed=True, first_image=first_image)
    return None if isinstance(b, str) else prediction(profile.id, b, steps, budget_ms)


def prediction(profile_id: str, b: LatencyBreakdown, steps: int, budget_ms: float | None) -> LatencyPrediction:
    te, denoise, vae = b.parts_ms(steps, 50)
    chance = None if budget_ms is None else chance_over(b, steps, budget_ms / 1e3)
    return LatencyPrediction(profile_id, te, denoise, vae, b.percentile, b.seconds(steps, b.percentile) * 1e3,
                             budget_ms, chance, call_ms=b.call_ms(steps), basis=basis_of(b))


def basis_of(b: LatencyBreakdown) -> str:
    """What a breakdown's latency rests on, in a few words."""
    if b.call is None:
        return "parts"
    if b.first_image:
        return "pipeline call (first image)" if b.call.first_ratio is not None else \
            "pipeline call (warm; no fresh-process first call measured)"
    return "pipeline call (warm)"


def chance_over(b: LatencyBreakdown, steps: int, budget_s: float) -> float:
    """The share of runs of ``steps`` expected slower than ``budget_s`` (to 0.1%), from the parts' spreads."""
    if b.seconds(steps, 100) <= budget_s:
        return 0.0
    if b.seconds(steps, 0) > budget_s:
        return 1.0
    lo, hi = 0.0, 100.0  # seconds(lo) <= budget < seconds(hi); the run's latency rises with the percentile
    while hi - lo > 0.05:
        mid = (lo + hi) / 2
        if b.seconds(steps, mid) <= budget_s:
            lo = mid
        else:
            hi = mid
    return round(1 - lo / 100, 3)


def fmt_seconds(x: float) -> str:
    if x < 0.01:  # below 10 ms, whole milliseconds would round a budget such as '0.2ms' to '0 ms'
        return f"{x * 1e3:.2g} ms"
    return f"{x * 1e3:.0f} ms" if x < 1 else f"{x:.2f} s"


def fmt_fine(x: float) -> str:
    """Precise enough that the parts of a breakdown add up."""
    return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.3f} s"


class LatencyCost:
    name = NAME
    summary = "seconds per image, from the measured profile"
    unit = "s"
    axis = "latency"
    needs_profile = True
    has_distribution = True

    def __init__(self, first_image: bool = False, knobs: dict[str, Any] | None = None):
        self.first_image = first_image  # cost the first image of a fresh process (where the profile measured it)
        # knob list text -> None (every step alike) or, for a fixed-schedule cache, n evaluations -> full ones
        self.knobs = dict(knobs or {})

    def for_first_image(self) -> LatencyCost:
        """This cost model for the first image of a run (``generate`` with no warm-up call)."""
        return LatencyCost(first_image=True, knobs=self.knobs)

    def with_knobs(self, knobs: dict[str, Any]) -> LatencyCost:
        """This cost model with rows for the knob variants ``knobs`` names (text -> None for a knob that changes
        every step alike, or a function of a run's denoiser evaluations giving how many run in full, from the
        knob's fixed schedule). Variants the profile did not measure get no row."""
        return LatencyCost(first_image=self.first_image, knobs=knobs)

    def parse_budget(self, text: str) -> float:
        """``'2s'``, ``'1500ms'``, ``'0.5 s'``, ``'1 min'`` -> seconds. A bare number is refused: is '2' seconds
        or milliseconds? The message says how to write either."""
        value, unit = split_budget(text, "'2s' or '1500ms'")
        shown = clip_text(str(text))
        if not unit:
            raise UsageError(f"budget '{shown}' has no unit; write '{shown.strip()}s' for seconds or "
                             f"'{shown.strip()}ms' for milliseconds")
        if unit == "m":
            raise UsageError(f"budget '{shown}': is 'm' minutes or milliseconds? write '{value:g}min' or '{value:g}ms'")
        if unit not in UNITS:
            raise UsageError(f"budget '{shown}': unknown unit '{clip_text(unit, 12)}' (use s, ms or min)")
        seconds = positive(value * UNITS[unit], text)
        if seconds > MAX_BUDGET_S:
            raise UsageError(f"budget '{shown}' is more than a day; give a per-image latency such as '2s'")
        return seconds

    def format(self, value: float, precise: bool = False) -> str:
        return fmt_fine(value) if precise else fmt_seconds(value)

    def rows(self, *, profile: Any, law: Any, models: list[str] | None, samplers: list[str], percentile: float,
             excluded: list[str]) -> list[CostRow]:
        """Per (model, sampler that fits it): the model's own fixed seconds (its text-encoder stack and VAE decode)
        and seconds per step, at ``percentile`` of each part."""
        memory = profile.device.get("memory_bytes")
        names = models if models is not None else profile.model_names()
        measured = {s.name for s in profile.samplers}
        rows = []
        for name in names:
            m = profile.model(name)
            if not m.ok:
                excluded.append(f"{name}: {m.status.replace('_', ' ')}" + (f": {m.error}" if m.error else ""))
                continue
            if memory and m.peak_memory_bytes and m.peak_memory_bytes > memory:
                excluded.append(f"{name}: needs more memory than the device has")
                continue
            for s in samplers:
                if not m.fits_sampler(s) or (m.samplers is None and s not in measured):
                    continue  # (a version-1 model fits every sampler its profile measured; planning says why not)
                b = breakdown(profile, m, s, percentile, first_image=self.first_image)
                if isinstance(b, str):
                    if b not in excluded:
                        excluded.append(b)
                    if b.startswith(f"{name}:"):
                        break
                    continue
                # linear in steps: at 0 steps, minus what a first step saves (Heun: one evaluation), a fixed part
                fixed = b.seconds(0, percentile)
                rows.append(CostRow(name, m.denoiser_params, s, fixed, b.seconds(1, percentile) - fixed, b,
                                    self, distilled=m.distilled))
                rows.extend(self._knob_rows(m, s, b, percentile))
        return rows

    def _knob_rows(self, m: Any, sampler: str, plain: LatencyBreakdown, percentile: float) -> list[CostRow]:
        """The rows of ``m``'s measured knob variants that ``self.knobs`` names: the plain breakdown (its fixed
        parts and its pipeline-call correction) with the variant's measured step, and for a fixed-schedule cache
        its cached step and the schedule's exact count of full evaluations."""
        rows = []
        for variant in getattr(m, "knobs", None) or []:
            if variant.knobs not in self.knobs:
                continue
            full_evals = self.knobs[variant.knobs]
            if (full_evals is None) != (variant.cached_step is None):
                continue  # a schedule and a measurement that disagree (an edited file): no row
            b = replace(plain, denoiser_step=PartSpread.of(variant.denoiser_step), knobs=variant.knobs,
                        cached_step=PartSpread.of(variant.cached_step) if variant.cached_step else None,
                        full_evals=full_evals)
            fixed = b.seconds(0, percentile)
            rows.append(CostRow(m.name, m.denoiser_params, sampler, fixed, b.seconds(1, percentile) - fixed, b, self,
                                distilled=m.distilled, knobs=variant.knobs,
                                exact=(lambda n, b=b: b.seconds(n, percentile)) if full_evals is not None else None))
        return rows

    def parts(self, row: CostRow, steps: int) -> dict[str, float]:
        b: LatencyBreakdown = row.breakdown
        q = b.percentile
        parts = {"text_encoder": b.text_encoder.at(q) / 1e3, "denoise": b.parts_ms(steps, q)[1] / 1e3,
                 "vae_decode": b.vae_decode.at(q) / 1e3, "unet_step": b.denoiser_step.at(q) / 1e3,
                 "evals_per_step": float(b.evals_per_step),
                 "sampler_overhead_per_step": b.sampler_overhead.at(q) / 1e3}
        if b.call is not None:  # (the parts at their medians, and what the measured call adds to them)
            te, loop, vae = b.parts_ms(steps, 50)
            parts.update(text_encoder=te / 1e3, denoise=loop / 1e3, vae_decode=vae / 1e3,
                         pipeline_call=b.call_ms(steps) / 1e3)
        return parts

    def describe(self, row: CostRow, steps: int) -> str:
        p = self.parts(row, steps)
        b: LatencyBreakdown = row.breakdown
        saved = (f" - {fmt_fine(b.saved_evals * p['unet_step'])} (the {b.saved_evals} evaluation a first "
                 f"{row.sampler} step saves)" if b.saved_evals else "")
        if b.call is not None:
            te, loop, vae = (x / 1e3 for x in b.parts_ms(steps, 50))
            first = " (first image of a fresh process)" if b.first_image and b.call.first_ratio is not None else ""
            return (f"{fmt_fine(row.at(steps))} at p{b.percentile:g} of the measured pipeline calls{first}; median "
                    f"{fmt_fine(b.median_ms(steps) / 1e3)} = text encoder {fmt_fine(te)} + denoising "
                    f"{fmt_fine(loop)} + VAE decode {fmt_fine(vae)} + the pipeline's own call "
                    f"{fmt_fine(b.call_ms(steps) / 1e3)}")
        if b.full_evals is not None:
            evals = b.evaluations(steps)
            full = min(evals, b.full_evals(evals))
            return (f"{fmt_fine(row.at(steps))} = text encoder {fmt_fine(p['text_encoder'])} + denoising "
                    f"{fmt_fine(p['denoise'])} ({b.knobs}: {full} full x {fmt_fine(p['unet_step'])} + "
                    f"{evals - full} cached x {fmt_fine(b.cached_step.at(b.percentile) / 1e3)} + {steps_text(steps)} "
                    f"of sampler) + VAE decode {fmt_fine(p['vae_decode'])}")
        return (f"{fmt_fine(row.at(steps))} = text encoder {fmt_fine(p['text_encoder'])} + {steps_text(steps)} x "
                f"{fmt_fine(row.per_step)}{saved} + VAE decode {fmt_fine(p['vae_decode'])}")

    def over_budget_chance(self, row: CostRow, steps: int, budget: float) -> float | None:
        return chance_over(row.breakdown, steps, budget)

    def plan_basis(self, row: CostRow) -> str:
        b: LatencyBreakdown = row.breakdown
        q = b.percentile
        if b.call is not None:
            c = b.call
            which = ("the first call of {} fresh processes".format(c.processes) if b.first_image and c.first_ratio
                     else f"{c.warm_calls} warm calls" + (f" and {c.processes} fresh processes" if c.processes else ""))
            return (f"the run's p{q:g}: the model's own pipeline call measured end to end ({which}, "
                    f"{c.sampler} at {c.steps[0]} and {c.steps[1]} steps), prompt to encoded image")
        return f"the run's p{q:g} (each part at its p{q:g} of the profile's measurements)"

    def observations(self, rows: list[CostRow]) -> list[str]:
        per_step = {r.model: r.breakdown.denoiser_step.at(r.breakdown.percentile) / 1e3 for r in rows
                    if r.knobs == "none"}
        if not per_step:
            return []
        lo, hi = min(per_step.values()), max(per_step.values())
        if hi > 0 and lo / hi > SAME_COST_RATIO and len(per_step) > 1:
            return ["On this profile every size costs about the same per step "
                    f"({fmt_seconds(lo)}-{fmt_seconds(hi)}), so the step budget does not favour small models as the "
                    "paper's FLOP axis would."]
        return []


MODEL = LatencyCost()


def cost_rows(profile: Any, models: list[str] | None, samplers: list[str], percentile: float,
              excluded: list[str]) -> list[CostRow]:
    """``MODEL.rows`` for a profile (the law is not needed for measured costs)."""
    return MODEL.rows(profile=profile, law=None, models=models, samplers=samplers, percentile=percentile,
                      excluded=excluded)
