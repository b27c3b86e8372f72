"""Cost models: what a budget is counted in. One module per kind, found by name in ``REGISTRY``.

A cost model says what its unit is, parses a budget written in it, builds one ``CostRow`` per (model, sampler)
(a fixed cost plus a cost per step, with its own typed breakdown), and formats costs. The selector, the planner and
the renderer use only this interface, never a cost model's name:

- ``measured`` (``ldmpick.costs.latency``): seconds per image from a measured latency profile, with the spread
  of each part, so that a plan can say its chance of running over the budget;
- ``flops`` (``ldmpick.costs.flops``): the paper's normalized sampling cost (Mei et al. 2024), no profile;
- ``money`` (``ldmpick.costs.money``): dollars per image, the measured latency x a device price per hour that the
  user gives (never one ldmpick invents), with the latency's spread;
- ``energy`` (``ldmpick.costs.energy``): joules per image, from the NVML energy a profile measured on an NVIDIA GPU.

Adding a budget kind is adding one module here that defines ``MODEL`` (an object with the attributes and methods
of ``CostModel``) and one line in ``REGISTRY``. A budget picks its cost model by its unit (``budget_cost_model``:
``$0.002`` is money, ``50J`` energy, ``2s`` latency): a model claims the units in its ``budget_units``.

Pure Python (no torch, numpy or scipy): this is the ``recommend`` path. Imports only ``models`` (the samplers)
and ``files``.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ldmpick.files.errors import UsageError, unknown_name

# name -> module that defines ``MODEL``; imported only when asked for
REGISTRY: dict[str, str] = {
    "measured": "ldmpick.costs.latency",
    "flops": "ldmpick.costs.flops",
    "money": "ldmpick.costs.money",
    "energy": "ldmpick.costs.energy",
}
DEFAULT = "measured"
MAX_BUDGET_CHARS = 64  # a budget is a number and a unit: longer text is refused before it is parsed
BUDGET_RTOL = 1e-12  # a configuration fits a budget if its cost is within float rounding of it
# one number (no ambiguous digit splits, so matching is linear), then an optional unit of letters
_BUDGET = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*")
_UNIT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*([A-Za-z]*|\$)")  # after .strip()


@dataclass(frozen=True)
class CostRow:
    """What one (model, sampler, knobs) costs in its cost model's unit: ``fixed + steps x per_step``; ``breakdown``
    is the cost model's own typed record of where the numbers come from. A row of a knob variant whose steps do not
    all cost the same (a cache's full and cached steps) carries ``exact``, its cost at a step count, which ``at``
    uses; ``fixed`` and ``per_step`` are then its cost at 0 steps and the first step's, for display only."""

    model: str
    unet_params: int
    sampler: str
    fixed: float
    per_step: float
    breakdown: Any
    cost: CostModel
    distilled: bool = False  # a few-step distilled model: distilled samplers (lcm, scm) fit it
    knobs: str = "none"  # the knob list (ldmpick.knobs text form) the row is costed with
    exact: Callable[[int], float] | None = field(default=None, compare=False)

    def at(self, steps: int) -> float:
        if self.exact is not None:
            return self.exact(steps)
        return self.fixed + steps * self.per_step


class CostModel(Protocol):
    name: str  # the --cost-model value
    summary: str  # what a budget in it is, for --help
    unit: str  # how JSON names the unit: "s", "cost"
    axis: str  # a column header: "latency", "cost"
    needs_profile: bool  # whether rows come from a measured profile
    has_distribution: bool  # whether over_budget_chance can say anything

    def parse_budget(self, text: str) -> float: ...

    def format(self, value: float, precise: bool = False) -> str: ...

    def rows(self, *, profile: Any, law: Any, models: list[str] | None, samplers: list[str], percentile: float,
             excluded: list[str]) -> list[CostRow]: ...

    def parts(self, row: CostRow, steps: int) -> dict[str, float]: ...

    def describe(self, row: CostRow, steps: int) -> str: ...

    def over_budget_chance(self, row: CostRow, steps: int, budget: float) -> float | None: ...

    def plan_basis(self, row: CostRow) -> str: ...

    def observations(self, rows: list[CostRow]) -> list[str]: ...


def cost_model(name: str | CostModel) -> CostModel:
    """The cost model called ``name`` (one-line error suggesting the closest name); a cost model passed in is
    returned as it is (one set up with its inputs, e.g. money's price, by ``budget_cost_model``)."""
    if not isinstance(name, str):
        return name
    if name not in REGISTRY:
        raise unknown_name("cost model", name, REGISTRY)
    return importlib.import_module(REGISTRY[name]).MODEL


def budget_unit(text: Any) -> str | None:
    """The unit a budget is written in, lower case: ``'$'`` for a leading dollar sign (``'$0.002'``), else the
    letters after the number (``'2s'`` -> ``'s'``, ``'3'`` -> ``''``); ``None`` for text that is no budget at all
    (the cost model's own parser then says why)."""
    if text is None or len(str(text)) > MAX_BUDGET_CHARS:
        return None
    text = str(text).strip()
    if text.startswith("$"):
        return "$"
    m = _UNIT.fullmatch(text)
    return m.group(1).lower() if m else None


def budget_units(model: CostModel) -> frozenset[str]:
    """The units ``model`` claims for a budget: its ``budget_units``, else its module's ``UNITS`` (the measured
    latency's s / ms / min)."""
    declared = getattr(model, "budget_units", None)
    if declared is None:
        declared = getattr(importlib.import_module(type(model).__module__), "UNITS", ())
    return frozenset(declared)


def budget_cost_model(budget: Any, name: str | None = None, *, price: str | None = None,
                      price_source: str = "--price") -> CostModel:
    """The cost model a budget is counted in: ``name`` (--cost-model) when given, else the one whose unit the budget
    is written in (``$0.002``: money, ``50J``: energy; a bare number or an unknown unit: the default, whose parser
    says what it takes). A cost model that needs a price (money) gets ``price`` (from ``price_source``: ``--price``
    or ``$LDMPICK_PRICE``) and refuses to go on without one; a ``--price`` given for any other budget is refused,
    one from the environment is a machine-wide default and ignored."""
    unit = budget_unit(budget)
    claimant = None
    if unit:
        claimant = next((m for m in (cost_model(n) for n in REGISTRY) if unit in budget_units(m)), None)
    if name is not None:
        chosen = cost_model(name)
        if claimant is not None and claimant.name != chosen.name:
            try:
                chosen.parse_budget(budget)
            except UsageError as exc:  # its own message, and the cost model the unit would have picked
                raise UsageError(f"{exc}; '{unit}' is a {claimant.name} budget's unit: drop --cost-model to count "
                                 f"{claimant.summary}") from None
    else:
        chosen = claimant if claimant is not None else cost_model(DEFAULT)
    with_price = getattr(chosen, "with_price", None)
    if with_price is not None:
        return with_price(price, price_source)
    if price is not None and price_source == "--price":
        raise UsageError(f"--price applies to a money budget such as '$0.002' (per image); this budget is "
                         f"{chosen.summary}")
    return chosen


def cost_inputs(model: CostModel) -> dict[str, dict[str, Any]]:
    """What ``model`` rests on besides the profile and the law (money: the price and where it came from), each with
    a ``text`` for people; empty for the others."""
    inputs = getattr(model, "inputs", None)
    return inputs() if inputs is not None else {}


def latency_budget(model: CostModel, value: float) -> float | None:
    """A budget of ``value`` in ``model``'s unit as seconds per image, where it is one (money: at its price);
    ``None`` where it is not (energy, the paper's cost)."""
    if model.unit == "s":
        return value
    seconds = getattr(model, "latency_budget", None)
    return seconds(value) if seconds is not None else None


def as_latency_budget(budget: str | None, *, price: str | None = None,
                      price_source: str = "--price") -> tuple[str | None, str | None]:
    """A budget for what plans on seconds (``generate``): a latency budget (or none) as it is; one in another unit
    that converts (money, at its price) as the seconds it buys, with a sentence saying so; any other (energy, the
    paper's cost) is a one-line error, as is a --price with no money budget."""
    if budget is None:
        if price is not None and price_source == "--price":
            raise UsageError("--price applies to a money budget such as --budget '$0.002' (per image)")
        return None, None
    cm = budget_cost_model(budget, price=price, price_source=price_source)
    if cm.unit == "s":
        return budget, None
    value = cm.parse_budget(budget)
    seconds = latency_budget(cm, value)
    if seconds is None:
        raise UsageError(f"generate plans on latency, and budget '{clip_text(str(budget))}' is {cm.summary}; choose "
                         f"with 'ldmpick recommend --budget {clip_text(str(budget))}' and run its pick with --model, "
                         "--sampler and --steps")
    basis = "; ".join(i["text"] for i in cost_inputs(cm).values())
    in_seconds = cost_model(DEFAULT).format(seconds)
    return f"{seconds!r}s", (f"budget {cm.format(value)} per image batch is {in_seconds} of this device"
                             + (f" at {basis}" if basis else ""))


def clip_text(text: str, limit: int = 24) -> str:
    """``text`` as it may appear in a one-line message: shortened, with its length said when it was cut."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def split_budget(text: Any, example: str) -> tuple[float, str]:
    """``' 1500 ms '`` -> ``(1500.0, 'ms')``: one finite number and an optional unit (lower case), in linear time.
    ``example`` is a budget of the right kind, for the messages."""
    if text is None or not str(text).strip():
        raise UsageError(f"empty budget; give one such as {example}")
    text = str(text)
    if len(text) > MAX_BUDGET_CHARS:
        raise UsageError(f"budget '{clip_text(text)}' is too long for a number with a unit; give one such as {example}")
    m = _BUDGET.fullmatch(text)
    if not m:
        raise UsageError(f"budget '{clip_text(text)}' is not a number with an optional unit (e.g. {example})")
    value = float(m.group(1))
    if not math.isfinite(value):
        raise UsageError(f"budget '{clip_text(text)}' is too large")
    return value, m.group(2).lower()


def positive(value: float, text: str) -> float:
    if not math.isfinite(value):
        raise UsageError(f"budget '{clip_text(str(text))}' is too large")
    if value <= 0:
        raise UsageError(f"budget '{clip_text(str(text))}' must be positive")
    return value


def steps_within(row: CostRow, budget: float, max_steps: int) -> int:
    """The most steps (up to ``max_steps``) of ``row`` whose total cost is within ``budget``; 0 if none. A row with
    an exact cost (``CostRow.exact``: never lower at more steps) is searched by halving."""
    if row.fixed > budget:
        return 0
    if row.exact is not None:
        lo, hi = 0, max_steps  # at(lo) within the budget (0 steps: the fixed part), the answer in lo..hi
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if row.at(mid) <= budget * (1 + BUDGET_RTOL):
                lo = mid
            else:
                hi = mid - 1
        return lo
    if row.per_step <= 0:
        return max_steps
    n = min(max_steps, int((budget - row.fixed) / row.per_step + 1e-9))
    # the epsilon above absorbs float rounding (0.2 x 15 cost units is a budget of 3); it must not overshoot more
    while n > 0 and row.at(n) > budget * (1 + BUDGET_RTOL):
        n -= 1
    return max(n, 0)
