"""Cost models: what a budget is counted in. One module per kind, found by name in ``REGISTRY``.

A cost model says what its unit is, parses a budget written in it, builds one ``CostRow`` per (model, sampler)
(a fixed cost plus a cost per step, with its own typed breakdown), and formats costs. The selector, the planner and
the renderer use only this interface, never a cost model's name:

- ``measured`` (``ldmpick.costs.latency``): seconds per image from a measured latency profile, with the spread
  of each part, so that a plan can say its chance of running over the budget;
- ``flops`` (``ldmpick.costs.flops``): the paper's normalized sampling cost (Mei et al. 2024), no profile.

Adding a budget kind (energy in joules per image, money per image) is adding one module here that defines
``MODEL`` (an object with the attributes and methods of ``CostModel``) and one line in ``REGISTRY``.

Pure Python (no torch, numpy or scipy): this is the ``recommend`` path. Imports only ``models`` (the samplers)
and ``files``.
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

from ldmpick.files.errors import UsageError, unknown_name

# name -> module that defines ``MODEL``; imported only when asked for
REGISTRY: dict[str, str] = {
    "measured": "ldmpick.costs.latency",
    "flops": "ldmpick.costs.flops",
}
DEFAULT = "measured"
MAX_BUDGET_CHARS = 64  # a budget is a number and a unit: longer text is refused before it is parsed
BUDGET_RTOL = 1e-12  # a configuration fits a budget if its cost is within float rounding of it
# one number (no ambiguous digit splits, so matching is linear), then an optional unit of letters
_BUDGET = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*")


@dataclass(frozen=True)
class CostRow:
    """What one (model, sampler) costs in its cost model's unit: ``fixed + steps x per_step``; ``breakdown`` is the
    cost model's own typed record of where the numbers come from."""

    model: str
    unet_params: int
    sampler: str
    fixed: float
    per_step: float
    breakdown: Any
    cost: CostModel
    distilled: bool = False  # a few-step distilled model: distilled samplers (lcm, scm) fit it

    def at(self, steps: int) -> float:
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


def cost_model(name: str) -> CostModel:
    """The cost model called ``name`` (one-line error suggesting the closest name)."""
    if name not in REGISTRY:
        raise unknown_name("cost model", name, REGISTRY)
    return importlib.import_module(REGISTRY[name]).MODEL


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
    """The most steps (up to ``max_steps``) of ``row`` whose total cost is within ``budget``; 0 if none."""
    if row.fixed > budget:
        return 0
    if row.per_step <= 0:
        return max_steps
    n = min(max_steps, int((budget - row.fixed) / row.per_step + 1e-9))
    # the epsilon above absorbs float rounding (0.2 x 15 cost units is a budget of 3); it must not overshoot more
    while n > 0 and row.at(n) > budget * (1 + BUDGET_RTOL):
        n -= 1
    return max(n, 0)
