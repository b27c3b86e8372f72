"""The paper's cost model: normalized sampling cost (Mei et al. 2024) = normalized cost per evaluation x
evaluations per step x steps, for the paper's family sizes, with no profile. It reproduces the paper's answers.

Pure Python: this is the ``recommend`` path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ldmpick.costs import CostRow, clip_text, positive, split_budget
from ldmpick.files.errors import UsageError
from ldmpick.models.samplers import steps_text

NAME = "flops"


@dataclass(frozen=True)
class FlopBreakdown:
    norm_cost: float  # the paper's normalized cost of one denoiser evaluation of this size
    evals_per_step: int  # from ldmpick's sampler table
    saved_evals: int = 0  # evaluations fewer than steps x evals_per_step (Heun's first step: 1)


def fmt_cost(x: float) -> str:
    return f"{x:.2f} cost units"


class FlopCost:
    name = NAME
    summary = "the paper's normalized sampling cost, no profile"
    unit = "cost"
    axis = "cost"
    needs_profile = False
    has_distribution = False

    def parse_budget(self, text: str) -> float:
        """A plain number of the paper's sampling-cost units (normalized cost x steps)."""
        value, unit = split_budget(text, "'3'")
        if unit:
            raise UsageError(f"budget '{clip_text(str(text))}': under --cost-model flops the budget is in the paper's "
                             "sampling-cost units (normalized cost x steps), without a unit, e.g. '--budget 3'")
        return positive(value, text)

    def format(self, value: float, precise: bool = False) -> str:
        return f"{value:.3f}" if precise else fmt_cost(value)

    def rows(self, *, profile: Any, law: Any, models: list[str] | None, samplers: list[str], percentile: float,
             excluded: list[str]) -> list[CostRow]:
        """Per (family size, sampler): the paper's normalized cost per step (x evaluations per step)."""
        from ldmpick.models.samplers import get_sampler

        params = {name: n for name, n, _ in law.size_points}
        names = models if models is not None else [n for n in law.norm_cost if n in params]
        rows = []
        for name in names:
            if name not in law.norm_cost or name not in params:
                raise UsageError(f"--cost-model flops knows only the paper's family sizes "
                                 f"({', '.join(law.norm_cost)}); '{name}' has no normalized cost")
            for s in samplers:
                if get_sampler(s).flow:  # the paper's family is an epsilon-prediction UNet, not a flow model
                    note = f"sampler {s}: for flow-matching models; the paper's family is not one"
                    if note not in excluded:
                        excluded.append(note)
                    continue
                evals, saved = get_sampler(s).evals_per_step, get_sampler(s).saved_evals
                rows.append(CostRow(name, params[name], s, -law.norm_cost[name] * saved, law.norm_cost[name] * evals,
                                    FlopBreakdown(law.norm_cost[name], evals, saved), MODEL))
        return rows

    def parts(self, row: CostRow, steps: int) -> dict[str, float]:
        return {"sampling_cost": row.at(steps), "norm_cost": row.breakdown.norm_cost,
                "evals_per_step": float(row.breakdown.evals_per_step)}

    def describe(self, row: CostRow, steps: int) -> str:
        b: FlopBreakdown = row.breakdown
        if b.saved_evals:
            n = steps * b.evals_per_step - b.saved_evals
            return f"{row.at(steps):.2f} = normalized cost {b.norm_cost:g} x {n} evaluations ({steps_text(steps)})"
        evals = f" x {b.evals_per_step} evaluations" if b.evals_per_step != 1 else ""
        return f"{row.at(steps):.2f} = normalized cost {b.norm_cost:g}{evals} x {steps_text(steps)}"

    def over_budget_chance(self, row: CostRow, steps: int, budget: float) -> float | None:
        return None  # a count, not a measurement: it has no spread

    def plan_basis(self, row: CostRow) -> str:
        return "the paper's sampling cost"

    def observations(self, rows: list[CostRow]) -> list[str]:
        return []


MODEL = FlopCost()


def cost_rows(law: Any, models: list[str] | None, samplers: list[str]) -> list[CostRow]:
    """``MODEL.rows`` for the law's family sizes (no profile)."""
    return MODEL.rows(profile=None, law=law, models=models, samplers=samplers, percentile=50.0, excluded=[])
