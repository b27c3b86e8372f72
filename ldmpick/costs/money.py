"""The money cost model: dollars per image = the measured latency x the device's price per hour.

The price is the user's (``--price 2.49/h`` or ``$LDMPICK_PRICE``), never one ldmpick invents or looks up: without
one a money budget is a one-line error saying how to give it. The latency is the measured cost model's own
(``ldmpick.costs.latency``: its rows, breakdowns, spread and description), scaled by the price, so a plan on the
run's p90 in dollars is the p90 latency's cost and the chance of running over a money budget is the chance of running
over the latency it buys (``budget / price``).

Spellings: a price is ``[$]AMOUNT/UNIT`` with UNIT ``h`` (``hr``, ``hour``), ``min`` or ``s`` (``sec``, ``second``):
``2.49/h``, ``$2.49/h``, ``0.0007/s``; a bare number is refused (per what?). A budget is ``$0.002``, ``0.002 usd``
or ``0.2 cents``. Both are dollars: ldmpick converts no currency, so give the price in dollars.

Pure Python (no torch or numpy): this is the ``recommend`` path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from ldmpick.costs import CostRow, clip_text, positive, split_budget
from ldmpick.costs import latency
from ldmpick.files.errors import UsageError

NAME = "money"
PRICE_ENV = "LDMPICK_PRICE"
PRICE_HOW = "give the device's price per hour with --price 2.49/h (dollars) or set LDMPICK_PRICE"
MAX_PRICE_CHARS = 64
# a price: an optional dollar sign, one number (linear to match), '/' and a time unit
_PRICE = re.compile(r"\s*\$?\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?:/\s*([A-Za-z]+))?\s*")
PER = {"h": 3600.0, "hr": 3600.0, "hour": 3600.0, "min": 60.0, "minute": 60.0, "s": 1.0, "sec": 1.0,
       "second": 1.0}  # seconds in one unit of a price's time
BUDGET_UNITS = {"$": 1.0, "usd": 1.0, "dollar": 1.0, "dollars": 1.0, "cent": 0.01, "cents": 0.01}
PER_THOUSAND = 1000  # images, for the description: what a thousand of them cost


@dataclass(frozen=True)
class Price:
    """What one second of the device costs, as the user gave it."""

    usd_per_hour: float
    source: str  # "--price" or "$LDMPICK_PRICE"
    given: str  # the text as given

    @property
    def usd_per_second(self) -> float:
        return self.usd_per_hour / 3600.0

    def describe(self) -> str:
        return f"{fmt_dollars(self.usd_per_hour)} per device-hour ({self.source})"

    def to_json(self) -> dict[str, Any]:
        return {"usd_per_hour": self.usd_per_hour, "source": self.source, "given": self.given,
                "text": self.describe()}


def parse_price(text: str | None, source: str = "--price") -> Price:
    """``'2.49/h'``, ``'$2.49/h'``, ``'0.0007/s'`` -> a ``Price``; one-line errors that say how to write one."""
    if text is None or not str(text).strip():
        raise UsageError(f"a money budget needs the device's price, which ldmpick never guesses: {PRICE_HOW}")
    text = str(text)
    shown = clip_text(text)
    if len(text) > MAX_PRICE_CHARS:
        raise UsageError(f"{source} '{shown}' is too long for a price; write dollars per hour such as '2.49/h'")
    m = _PRICE.fullmatch(text)
    if not m:
        raise UsageError(f"{source} '{shown}' is not a price; write dollars per hour such as '2.49/h' or '$2.49/h' "
                         "(also /min or /s)")
    amount, per = float(m.group(1)), (m.group(2) or "").lower()
    if not per:
        raise UsageError(f"{source} '{shown}': per what? write '{m.group(1)}/h' for dollars per hour of the device "
                         "(or /min, /s)")
    if per not in PER:
        raise UsageError(f"{source} '{shown}': unknown time unit '{clip_text(per, 12)}' (use /h, /min or /s)")
    if not math.isfinite(amount) or amount <= 0:
        raise UsageError(f"{source} '{shown}' must be a positive, finite price")
    return Price(amount * 3600.0 / PER[per], source, text.strip())


def fmt_dollars(x: float, precise: bool = False) -> str:
    """Dollars to three significant figures (four when ``precise``), at least cents: ``$0.00137``, ``$2.49``,
    ``$12.30``; trailing zeros past the cents dropped unless ``precise`` (so that a column lines up)."""
    if x == 0 or not math.isfinite(x):
        return f"${x:.2f}"
    figures = 4 if precise else 3
    decimals = max(2, figures - 1 - math.floor(math.log10(abs(x))))
    text = f"{x:.{decimals}f}"
    if not precise and decimals > 2:
        text = text.rstrip("0")
        if len(text.split(".")[1]) < 2:
            text = f"{x:.2f}"
    return "$" + text


@dataclass(frozen=True)
class MoneyBreakdown:
    """Where one (model, sampler)'s dollars come from: the measured latency row (seconds, with its spread) and the
    price it is multiplied by."""

    seconds: CostRow  # the measured cost model's row
    price: Price


class MoneyCost:
    name = NAME
    summary = "dollars per image, the measured latency x the device price you give (--price)"
    unit = "USD"
    axis = "cost per image"
    needs_profile = True
    has_distribution = True
    budget_units = frozenset(BUDGET_UNITS)

    def __init__(self, price: Price | None = None):
        self.price = price

    def with_price(self, text: str | None, source: str = "--price") -> MoneyCost:
        """This cost model at the price ``text`` (from ``source``); none is the error saying how to give one."""
        return MoneyCost(parse_price(text, source))

    def _price(self) -> Price:
        if self.price is None:
            raise UsageError(f"a money budget needs the device's price, which ldmpick never guesses: {PRICE_HOW}")
        return self.price

    def inputs(self) -> dict[str, dict[str, Any]]:
        return {"price": self._price().to_json()}

    def parse_budget(self, text: str) -> float:
        """``'$0.002'``, ``'0.002 usd'``, ``'0.2 cents'`` -> dollars per image."""
        raw = str(text) if text is not None else ""
        stripped = raw.strip()
        dollar_sign = stripped.startswith("$") or stripped.endswith("$")
        number = stripped[1:] if stripped.startswith("$") else stripped[:-1] if dollar_sign else raw
        value, unit = split_budget(number, "'$0.002'")
        if dollar_sign and unit:
            raise UsageError(f"budget '{clip_text(raw)}': a dollar sign and a unit; write '$0.002' or '0.2 cents'")
        unit = "$" if dollar_sign else unit
        if unit not in BUDGET_UNITS:
            raise UsageError(f"budget '{clip_text(raw)}': a money budget is dollars per image, e.g. '$0.002' or "
                             "'0.2 cents' (a latency budget such as '2s' needs no --cost-model)")
        return positive(value * BUDGET_UNITS[unit], raw)

    def format(self, value: float, precise: bool = False) -> str:
        return fmt_dollars(value, precise)

    def rows(self, *, profile: Any, law: Any, models: list[str] | None, samplers: list[str], percentile: float,
             excluded: list[str]) -> list[CostRow]:
        """The measured cost model's rows, in dollars at the price."""
        price = self._price()
        return [self.priced(r, price) for r in latency.MODEL.rows(
            profile=profile, law=law, models=models, samplers=samplers, percentile=percentile, excluded=excluded)]

    def priced(self, row: CostRow, price: Price) -> CostRow:
        k = price.usd_per_second
        return replace(row, fixed=row.fixed * k, per_step=row.per_step * k, breakdown=MoneyBreakdown(row, price),
                       cost=self)

    def parts(self, row: CostRow, steps: int) -> dict[str, float]:
        b: MoneyBreakdown = row.breakdown
        k = b.price.usd_per_second
        seconds = b.seconds.cost.parts(b.seconds, steps)
        out = {key: (v if key == "evals_per_step" else v * k) for key, v in seconds.items()}
        out.update(seconds=b.seconds.at(steps), usd_per_hour=b.price.usd_per_hour)
        return out

    def describe(self, row: CostRow, steps: int) -> str:
        b: MoneyBreakdown = row.breakdown
        seconds = b.seconds.cost  # the measured cost model the row came from
        return (f"{fmt_dollars(row.at(steps), precise=True)} = {seconds.format(b.seconds.at(steps), precise=True)} "
                f"x {b.price.describe()}; {seconds.describe(b.seconds, steps)}; "
                f"{fmt_dollars(row.at(steps) * PER_THOUSAND)} per {PER_THOUSAND:,} images")

    def over_budget_chance(self, row: CostRow, steps: int, budget: float) -> float | None:
        b: MoneyBreakdown = row.breakdown
        return b.seconds.cost.over_budget_chance(b.seconds, steps, budget / b.price.usd_per_second)

    def plan_basis(self, row: CostRow) -> str:
        b: MoneyBreakdown = row.breakdown
        return f"{b.seconds.cost.plan_basis(b.seconds)} at {b.price.describe()}"

    def observations(self, rows: list[CostRow]) -> list[str]:
        return latency.MODEL.observations([r.breakdown.seconds for r in rows]) if rows else []

    def latency_budget(self, value: float) -> float:
        """A budget of ``value`` dollars as the seconds it buys at the price."""
        return value / self._price().usd_per_second


MODEL = MoneyCost()
