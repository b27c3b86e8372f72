"""Step responses that transfer: how a model's quality changes with its step count, carried from the models whose
step sweeps were published (or measured) to a model with one published point on a scale.

A model's quality at k steps is its converged quality changed by a step response ``R(k) = -A * k^-p``, in units of
its scale's spread across models (``ScaleUnit``: on a scale where lower is better, FID, of ``-ln value``), so that
one response can be read on any scale. Responses are fitted per kind of model and sampler order (``group_of``:
``flow/1``, ``unet/1``, ``unet/2``, ``distilled``) to every published sweep of that kind, per model to its own
sweeps (on every scale it has one), and per model and sampler to your calibration (``ldmpick fit``).

``StepResponses.transfer`` moves a model's published point (``anchor``) along a response: its own calibrated
response first ("calibrated step response"), then its own published sweeps ("transferred from its own ... sweep",
on another scale), then the kind's ("transferred from <kind> sweeps of <models>"). Each kind of transfer has its
own interval width (``floor + k * |shift|`` in scale units), calibrated on held-out published sweeps
(``ldmpick.quality.response_fit``). Never below the fewest steps of the sweeps a response rests on.

Pure Python: on the ``recommend`` path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ldmpick.quality.scales import Z_LEVEL

KINDS = {"unet": "epsilon/v UNet", "flow": "flow-matching", "distilled": "few-step distilled"}
# published samplers of few-step distilled models (their own samplers or training recipes, not ldmpick's)
DISTILLED_SAMPLERS = frozenset({"lcm", "scm", "turbo", "dmd", "dmd2", "pcm", "add", "pd", "guided-distill"})
# the width kinds: a response of the same model measured on another scale, and one of other models
OTHER_SCALE, OTHER_MODEL = "other-scale", "other-model"
NON_NEGATIVE = frozenset({"geneval", "dpg", "mjhq-clip", "coco-clip", "coco5k-clip", "laion6-clip", "drawbench-clip",
                          "ras-coco-clip"})
FLOOR_UNITS = 0.05  # the half-width at the anchor itself, in scale units (a published value's own noise)


def group_of(kind: str, order: int) -> str:
    """The response group of a kind of model run with a sampler of ``order``: distilled models have one."""
    return "distilled" if kind == "distilled" else f"{kind}/{order}"


def group_text(group: str) -> str:
    kind, _, order = group.partition("/")
    return KINDS[kind] + (f" order-{order}" if order else "")


@dataclass
class ScaleUnit:
    """One scale's unit: the spread (standard deviation) of its values across models (of ``-ln value`` where lower
    is better), from the models published on it, or borrowed (``basis`` says which)."""

    unit: float
    lower_is_better: bool
    basis: str

    def to_units(self, value: float) -> float:
        x = -math.log(max(value, 1e-12)) if self.lower_is_better else value
        return x / self.unit

    def from_units(self, u: float) -> float:
        x = u * self.unit
        return math.exp(-x) if self.lower_is_better else x

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "lower_is_better": self.lower_is_better, "basis": self.basis}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ScaleUnit:
        out = cls(unit=float(d["unit"]), lower_is_better=bool(d["lower_is_better"]), basis=str(d.get("basis", "")))
        if not (math.isfinite(out.unit) and out.unit > 0):
            raise ValueError("a scale unit must be a finite number above 0")
        return out


@dataclass
class Response:
    """``R(k) = -A * k^-p`` in scale units (0 at convergence, negative = worse), fitted to ``sweeps``."""

    A: float
    p: float
    min_steps: int  # the fewest steps of the sweeps it rests on: never used below
    max_steps: int  # the most: held beyond
    sweeps: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    scales: list[str] = field(default_factory=list)
    points: int = 0
    rms: float = 0.0  # residual RMS in scale units

    def at(self, steps: float) -> float:
        return -self.A * steps ** (-self.p)

    def reaches(self, steps: int, floor: float = 0.05) -> bool:
        """Whether a point at ``steps`` can be moved along it: inside its sweeps' steps, or past them where it has
        converged (within ``floor`` units of 0 at its most steps): SD3-Medium's 4-7-step sweep cannot move a
        28-step point."""
        return steps <= self.max_steps or abs(self.at(self.max_steps)) <= floor

    def to_json(self) -> dict[str, Any]:
        return {"A": self.A, "p": self.p, "min_steps": self.min_steps, "max_steps": self.max_steps,
                "sweeps": self.sweeps, "models": self.models, "scales": self.scales, "points": self.points,
                "rms": self.rms, "form": "R(k) = -A * k^-p (scale units)"}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Response:
        out = cls(A=float(d["A"]), p=float(d["p"]), min_steps=int(d["min_steps"]), max_steps=int(d["max_steps"]),
                  sweeps=[str(x) for x in d.get("sweeps", [])], models=[str(x) for x in d.get("models", [])],
                  scales=[str(x) for x in d.get("scales", [])], points=int(d.get("points", 0)),
                  rms=float(d.get("rms", 0.0)))
        if not (math.isfinite(out.A) and math.isfinite(out.p) and out.A >= 0 and out.p > 0
                and 1 <= out.min_steps <= out.max_steps):
            raise ValueError("a step response needs A >= 0, p > 0 and 1 <= min_steps <= max_steps")
        return out


@dataclass
class Transfer:
    """A prediction moved from a published point along a step response."""

    value: float
    low: float
    high: float
    sigma: float
    basis: str  # "transferred" or "calibrated-response"
    detail: str  # "transferred from ..." / "calibrated step response (...)"
    flags: list[str] = field(default_factory=list)


class BelowSweeps(ValueError):
    """Fewer steps than any sweep the response rests on covers: no prediction."""


@dataclass
class StepResponses:
    groups: dict[str, Response] = field(default_factory=dict)  # kind/order -> fitted to every sweep of that kind
    own: dict[str, dict[str, Response]] = field(default_factory=dict)  # model -> group -> its own published sweeps
    calibrated: dict[str, dict[str, Response]] = field(default_factory=dict)  # model -> sampler -> your calibration
    calibrated_source: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> sampler -> data set
    units: dict[str, ScaleUnit] = field(default_factory=dict)
    model_kinds: dict[str, str] = field(default_factory=dict)  # models with published data -> kind
    widths: dict[str, float] = field(default_factory=lambda: {OTHER_SCALE: 1.0, OTHER_MODEL: 1.0})
    floor: float = FLOOR_UNITS
    coverage: dict[str, Any] = field(default_factory=dict)

    def kind_of(self, model: str, sampler: str) -> str:
        from ldmpick.models.samplers import SAMPLERS

        s = SAMPLERS.get(sampler)
        if (s is not None and s.distilled_only) or sampler in DISTILLED_SAMPLERS:
            return "distilled"
        if model in self.model_kinds:
            return self.model_kinds[model]
        return "flow" if s is not None and s.flow else "unet"

    def group_for(self, model: str, sampler: str) -> str:
        from ldmpick.models.samplers import SAMPLERS

        s = SAMPLERS.get(sampler)
        return group_of(self.kind_of(model, sampler), s.order if s is not None else 1)

    def _group_response(self, group: str, flags: list[str]) -> Response | None:
        if group in self.groups:
            return self.groups[group]
        kind = group.split("/")[0]
        stand_in = sorted(g for g in self.groups if g.split("/")[0] == kind)
        if not stand_in:
            return None
        flags.append(f"no {group_text(group)} sweep is published: the {group_text(stand_in[0])} response stands "
                     "in (a lower-order sampler converges more slowly: the loss at few steps may be overstated)"
                     if stand_in[0] < group else
                     f"no {group_text(group)} sweep is published: the {group_text(stand_in[0])} response stands in")
        return self.groups[stand_in[0]]

    def transfer(self, model: str, sampler: str, steps: int, scale: str, anchor_steps: int, anchor_value: float,
                 anchor_sampler: str, anchor_scale_unit: ScaleUnit | None = None) -> Transfer | None:
        """``model`` with ``sampler`` at ``steps`` on ``scale``, moved from its published point (``anchor_value``
        at ``anchor_steps`` with ``anchor_sampler``: "" when not stated) along the best response it has. None
        when no response or unit fits; ``BelowSweeps`` below the fewest steps the response rests on."""
        unit = anchor_scale_unit or self.units.get(scale)
        if unit is None:
            return None
        flags: list[str] = []
        target = self.group_for(model, sampler)
        source = self.group_for(model, anchor_sampler or sampler)
        options: list[tuple[str, float, str, Response, Response, list[str]]] = []
        mine = self.calibrated.get(model, {}).get(sampler)
        if mine is not None and source == target:
            where = self.calibrated_source.get(model, {}).get(sampler, "your calibration")
            options.append(("calibrated-response", self.widths[OTHER_SCALE],
                            f"calibrated step response ({where}, {mine.min_steps}-{mine.max_steps} steps), moved "
                            f"from the published point at {anchor_steps} steps", mine, mine, []))
        own = self.own.get(model, {}).get(target)
        if own is not None and source == target and own.A > 0:
            other = [s for s in own.scales if s != scale]
            options.append(("transferred", self.widths[OTHER_SCALE],
                            f"transferred from {model}'s own {', '.join(other or own.scales)} sweep"
                            f"{'s' if len(own.sweeps) > 1 else ''} ({own.min_steps}-{own.max_steps} steps"
                            f"{', another scale' if scale not in own.scales else ''})", own, own, []))
        group_flags: list[str] = []
        r_t = self._group_response(target, group_flags)
        r_a = self._group_response(source, group_flags) if source != target else r_t
        if r_t is not None and r_a is not None:
            names = r_t.models[:4] + (["others"] if len(r_t.models) > 4 else [])
            options.append(("transferred", self.widths[OTHER_MODEL],
                            f"transferred from the {group_text(target)} sweeps of {', '.join(names)} "
                            f"({r_t.min_steps}-{r_t.max_steps} steps"
                            + ("; its own among them" if model in r_t.models else "") + ")", r_t, r_a, group_flags))
        if not options:
            return None
        options = [o for o in options if o[4].reaches(anchor_steps, self.floor)]
        if not options:
            return None
        usable = [o for o in options if o[3].min_steps <= steps]
        if not usable:
            raise BelowSweeps(f"below the fewest steps any sweep it rests on covers "
                              f"({min(o[3].min_steps for o in options)})")
        basis, width, detail, r_t, r_a, extra = usable[0]
        flags += extra
        k = steps
        if steps > r_t.max_steps:
            k = r_t.max_steps
            flags.append(f"held at {r_t.max_steps} steps: no sweep past {r_t.max_steps} steps")
        k0 = min(max(anchor_steps, r_a.min_steps), r_a.max_steps)
        shift = r_t.at(k) - r_a.at(k0)
        u0 = unit.to_units(anchor_value)
        u = u0 + shift
        h = self.floor + width * abs(shift)
        a, b = unit.from_units(u - h), unit.from_units(u + h)
        low, high, value = min(a, b), max(a, b), unit.from_units(u)
        if not unit.lower_is_better and scale in NON_NEGATIVE and anchor_value >= 0:
            low, value = max(low, 0.0), max(value, 0.0)  # a GenEval or CLIP score is never below 0
        return Transfer(value, low, high, (high - low) / 2 / Z_LEVEL, basis, detail, flags)

    def to_json(self) -> dict[str, Any]:
        return {
            "form": "value(k) = the published point moved by R(k) - R(k_published), R(k) = -A k^-p in scale units",
            "groups": {g: r.to_json() for g, r in self.groups.items()},
            "own": {m: {g: r.to_json() for g, r in rs.items()} for m, rs in self.own.items()},
            "calibrated": {m: {s: r.to_json() for s, r in rs.items()} for m, rs in self.calibrated.items()},
            "calibrated_source": self.calibrated_source,
            "units": {s: u.to_json() for s, u in self.units.items()},
            "model_kinds": self.model_kinds,
            "widths": self.widths, "floor": self.floor, "coverage": self.coverage,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StepResponses:
        out = cls(groups={str(g): Response.from_json(r) for g, r in d.get("groups", {}).items()},
                  own={str(m): {str(g): Response.from_json(r) for g, r in rs.items()}
                       for m, rs in d.get("own", {}).items()},
                  calibrated={str(m): {str(s): Response.from_json(r) for s, r in rs.items()}
                              for m, rs in d.get("calibrated", {}).items()},
                  calibrated_source={str(m): {str(s): str(v) for s, v in rs.items()}
                                     for m, rs in d.get("calibrated_source", {}).items()},
                  units={str(s): ScaleUnit.from_json(u) for s, u in d.get("units", {}).items()},
                  model_kinds={str(m): str(k) for m, k in d.get("model_kinds", {}).items()},
                  widths={str(k): float(v) for k, v in d.get("widths", {}).items()},
                  floor=float(d.get("floor", FLOOR_UNITS)), coverage=dict(d.get("coverage", {})))
        if (set(out.widths) != {OTHER_SCALE, OTHER_MODEL}
                or not all(math.isfinite(v) and v >= 0 for v in [*out.widths.values(), out.floor])
                or any(k not in KINDS for k in out.model_kinds.values())):
            raise ValueError("step responses: widths need other-scale and other-model >= 0, kinds one of "
                             + ", ".join(KINDS))
        return out
