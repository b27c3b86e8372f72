"""The energy cost model: joules per image, from the energy a profile measured with NVML on an NVIDIA GPU.

    energy = text_encoder_j + evaluations(steps) x denoiser_step_j + steps x sampler_step_j + vae_decode_j

with ``evaluations(steps)`` as the measured latency counts them (``ldmpick.costs.latency``: the sampler's
evaluations per step, less what its first step saves). The joules come from each model's optional ``energy`` block
of the profile (``ModelLatency.energy``: ``denoiser_step_j``, ``text_encoder_j``, ``vae_decode_j``,
``sampler_step_j``, ``device``), measured by ``profile`` with NVML's total-energy counter around its timed blocks
(``ldmpick.hardware.energy``): the GPU board's energy, idle draw included, not the host's. A profile without it
(every CPU profile) is a one-line error. The counter gives one mean per block, no spread: no chance of running
over is stated.

Which models and samplers have rows is the measured latency's decision (its rows are reused: a model that did not
fit, a sampler not measured), so the two cost models never disagree on what can run.

Pure Python (no torch or numpy): this is the ``recommend`` path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ldmpick.costs import CostRow, clip_text, positive, split_budget
from ldmpick.costs import latency
from ldmpick.files.errors import UsageError
from ldmpick.models.samplers import steps_text

NAME = "energy"
UNITS = {"j": 1.0, "joule": 1.0, "joules": 1.0, "kj": 1e3, "kilojoule": 1e3, "kilojoules": 1e3, "wh": 3600.0,
         "kwh": 3.6e6}
# 'mJ' and 'MJ' read the same once lower-cased (budgets are): refused, with the spelling that is unambiguous
AMBIGUOUS = ("mj",)
PARTS = ("text_encoder_j", "denoiser_step_j", "sampler_step_j", "vae_decode_j")
NO_ENERGY = "this profile has no energy measurements (NVML energy counters, NVIDIA GPUs only)"


@dataclass(frozen=True)
class EnergyBreakdown:
    """Where one (model, sampler)'s joules come from: each part's mean energy as NVML measured it, and the
    sampler's evaluations per step (from ldmpick's sampler table, through the latency breakdown)."""

    text_encoder_j: float
    denoiser_step_j: float
    sampler_step_j: float
    vae_decode_j: float
    evals_per_step: int
    saved_evals: int
    device: str  # the NVML name of the GPU it was measured on

    def denoise_j(self, steps: int) -> float:
        return (steps * (self.evals_per_step * self.denoiser_step_j + self.sampler_step_j)
                - self.saved_evals * self.denoiser_step_j)

    def joules(self, steps: int) -> float:
        return self.text_encoder_j + self.denoise_j(steps) + self.vae_decode_j


def energy_block(model: Any) -> dict[str, Any] | str | None:
    """A profile model's energy measurements as a mapping, ``None`` where it has none, or why the block is unusable
    (a part missing, not a finite non-negative number). Read with ``getattr``: profiles of before energy lack it."""
    block = getattr(model, "energy", None)
    if block is None:
        return None
    if not isinstance(block, Mapping):
        block = {k: getattr(block, k, None) for k in (*PARTS, "device")}
    for key in PARTS:
        v = block.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            return f"{model.name}: its energy block has no usable {key}"
    return dict(block)


def fmt_joules(x: float, precise: bool = False) -> str:
    """Joules to three significant figures (four when ``precise``), in mJ below 1 J and kJ from 1000 J."""
    scale, unit = (1e-3, "kJ") if abs(x) >= 1e3 else (1e3, "mJ") if 0 < abs(x) < 1 else (1.0, "J")
    v = x * scale
    figures = 4 if precise else 3
    decimals = max(0, figures - 1 - math.floor(math.log10(abs(v)))) if v else 0
    return f"{v:.{decimals}f} {unit}"


class EnergyCost:
    name = NAME
    summary = "joules per image, from the NVML energy a profile measured on an NVIDIA GPU"
    unit = "J"
    axis = "energy"
    needs_profile = True
    has_distribution = False
    budget_units = frozenset((*UNITS, *AMBIGUOUS))

    def parse_budget(self, text: str) -> float:
        """``'50J'``, ``'0.5 kJ'``, ``'0.01Wh'`` -> joules per image."""
        value, unit = split_budget(text, "'50J'")
        shown = clip_text(str(text))
        if unit in AMBIGUOUS:
            raise UsageError(f"budget '{shown}': millijoules or megajoules? write it in J, kJ or Wh (e.g. "
                             f"'{value / 1e3:g}J' for millijoules)")
        if unit not in UNITS:
            raise UsageError(f"budget '{shown}': an energy budget is joules per image, e.g. '50J', '0.5kJ' or "
                             "'0.01Wh' (a latency budget such as '2s' needs no --cost-model)")
        return positive(value * UNITS[unit], text)

    def format(self, value: float, precise: bool = False) -> str:
        return fmt_joules(value, precise)

    def rows(self, *, profile: Any, law: Any, models: list[str] | None, samplers: list[str], percentile: float,
             excluded: list[str]) -> list[CostRow]:
        """Per row of the measured latency (what can run): the model's measured joules per part. Models without an
        energy block go to ``excluded``; a profile with none at all is the one-line error."""
        seconds = latency.MODEL.rows(profile=profile, law=law, models=models, samplers=samplers,
                                     percentile=percentile, excluded=excluded)
        blocks = {r.model: energy_block(profile.model(r.model)) for r in seconds}
        if seconds and all(b is None for b in blocks.values()):
            raise UsageError(f"{NO_ENERGY}: profile '{profile.id}' was measured on {profile.device_name}; measure "
                             "one on an NVIDIA GPU with 'ldmpick profile' (nvidia-ml-py installed), or give a "
                             "latency budget such as '2s'")
        rows = []
        for r in seconds:
            block = blocks[r.model]
            if not isinstance(block, dict):
                note = block or f"{r.model}: no energy measurement in profile '{profile.id}'"
                if note not in excluded:
                    excluded.append(note)
                continue
            lb: latency.LatencyBreakdown = r.breakdown
            b = EnergyBreakdown(float(block["text_encoder_j"]), float(block["denoiser_step_j"]),
                                float(block["sampler_step_j"]), float(block["vae_decode_j"]), lb.evals_per_step,
                                lb.saved_evals, str(block.get("device") or profile.device_name))
            rows.append(CostRow(r.model, r.unet_params, r.sampler, b.joules(0), b.joules(1) - b.joules(0), b, MODEL,
                                distilled=r.distilled))
        return rows

    def parts(self, row: CostRow, steps: int) -> dict[str, float]:
        b: EnergyBreakdown = row.breakdown
        return {"text_encoder": b.text_encoder_j, "denoise": b.denoise_j(steps), "vae_decode": b.vae_decode_j,
                "denoiser_step": b.denoiser_step_j, "evals_per_step": float(b.evals_per_step),
                "sampler_step": b.sampler_step_j}

    def describe(self, row: CostRow, steps: int) -> str:
        b: EnergyBreakdown = row.breakdown
        f = fmt_joules
        saved = (f" - {f(b.saved_evals * b.denoiser_step_j, True)} (the {b.saved_evals} evaluation a first "
                 f"{row.sampler} step saves)" if b.saved_evals else "")
        return (f"{f(row.at(steps), True)} = text encoder {f(b.text_encoder_j, True)} + {steps_text(steps)} x "
                f"{f(row.per_step, True)}{saved} + VAE decode {f(b.vae_decode_j, True)} (NVML, {b.device})")

    def over_budget_chance(self, row: CostRow, steps: int, budget: float) -> float | None:
        return None  # one mean per measured block: no spread

    def plan_basis(self, row: CostRow) -> str:
        return (f"the mean energy of each part as NVML measured it on {row.breakdown.device} (the GPU board's, not "
                "the host's; no spread is measured)")

    def observations(self, rows: list[CostRow]) -> list[str]:
        devices = sorted({r.breakdown.device for r in rows})
        return [f"Energy is the GPU board's as NVML's total-energy counter measured it on {', '.join(devices)}, idle "
                "draw included; the host's CPU, memory and fans are not counted."]


MODEL = EnergyCost()
