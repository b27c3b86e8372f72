"""Sampler names and what each costs per step. Plain data: no torch or diffusers import here.

Each name maps to a diffusers scheduler class (built with ``from_config`` from the pipeline's own scheduler
config) and to the number of UNet evaluations one sampling step needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ldmpick.files.errors import UsageError, unknown_name


@dataclass(frozen=True)
class Sampler:
    name: str
    scheduler_class: str
    evals_per_step: int
    order: int  # solver order (1 = first-order like DDIM/Euler)
    distilled_only: bool = False  # only meaningful with a consistency-distilled model (LCM, SCM)
    extra_config: tuple[tuple[str, Any], ...] = ()
    flow: bool = False  # a flow-matching sampler (for flow-matching families: SD3, Flux, Sana)
    # whether its diffusers class can rescale betas to zero terminal SNR (a test checks this against diffusers)
    zero_snr: bool = True
    # evaluations fewer than steps x evals_per_step: Heun's first step is a single Euler evaluation, so N steps
    # take 2N - 1 (diffusers' HeunDiscreteScheduler lists 2N - 1 timesteps; a test checks it)
    saved_evals: int = 0

    def evaluations(self, steps: int) -> int:
        """Denoiser evaluations (each one a CFG-doubled batch where the model uses one) that ``steps`` take."""
        return max(steps * self.evals_per_step - self.saved_evals, 1)

    def scheduler_kwargs(self) -> dict[str, Any]:
        return dict(self.extra_config)


SAMPLERS: dict[str, Sampler] = {
    s.name: s
    for s in [
        Sampler("ddim", "DDIMScheduler", 1, 1),
        Sampler("ddpm", "DDPMScheduler", 1, 1),
        Sampler(
            "dpmpp-2m",
            "DPMSolverMultistepScheduler",
            1,
            2,
            extra_config=(("algorithm_type", "dpmsolver++"), ("solver_order", 2)),
        ),
        Sampler("euler", "EulerDiscreteScheduler", 1, 1),
        Sampler("euler-a", "EulerAncestralDiscreteScheduler", 1, 1),
        Sampler("unipc", "UniPCMultistepScheduler", 1, 2),
        Sampler("heun", "HeunDiscreteScheduler", 2, 2, zero_snr=False, saved_evals=1),
        Sampler("lcm", "LCMScheduler", 1, 1, distilled_only=True),
        # flow matching: the model's own shift is carried over from its scheduler config (make_scheduler)
        Sampler("flow-euler", "FlowMatchEulerDiscreteScheduler", 1, 1, flow=True, zero_snr=False),
        Sampler("flow-dpmpp-2m", "DPMSolverMultistepScheduler", 1, 2, flow=True,
                extra_config=(("algorithm_type", "dpmsolver++"), ("solver_order", 2), ("use_flow_sigmas", True),
                              ("prediction_type", "flow_prediction"))),
        Sampler("flow-unipc", "UniPCMultistepScheduler", 1, 2, flow=True,
                extra_config=(("use_flow_sigmas", True), ("prediction_type", "flow_prediction"))),
        Sampler("scm", "SCMScheduler", 1, 1, distilled_only=True, flow=True, zero_snr=False),
    ]
}

# The samplers profiled by default: the discrete-time ones of the SD-style families. Flow-matching families are
# profiled with their own (ldmpick.models.families), whatever the list asks.
DEFAULT_SAMPLERS: tuple[str, ...] = tuple(n for n, s in SAMPLERS.items() if not s.flow)

# The scheduler config of Stable Diffusion v1.x (scheduler/scheduler_config.json of SD v1.5), used when profiling
# the built-in family, which has no pipeline folder of its own.
SD_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}


def get_sampler(name: str) -> Sampler:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise unknown_name("sampler", name, SAMPLERS) from None


def parse_sampler_list(text: str | None) -> list[str]:
    """``"ddim,euler"`` or ``"all"`` -> validated names. Empty -> error."""
    from ldmpick.files.errors import UsageError

    if text is None or text.strip().lower() == "all":
        return list(DEFAULT_SAMPLERS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("empty sampler list; give names like 'ddim,euler' or 'all'")
    for n in names:
        get_sampler(n)
    return list(dict.fromkeys(names))


def make_scheduler(name: str, base_config: dict[str, Any] | None = None):  # -> diffusers SchedulerMixin
    """Build the diffusers scheduler for ``name`` from a pipeline's scheduler config (default: SD v1.x)."""
    import diffusers

    sampler = get_sampler(name)
    cls = getattr(diffusers, sampler.scheduler_class)
    config = dict(base_config or SD_SCHEDULER_CONFIG)
    if sampler.flow:
        # one shift, whichever scheduler the model shipped with (FlowMatchEuler: 'shift'; DPM-Solver: 'flow_shift')
        shift = config.get("flow_shift") or config.get("shift") or 1.0
        config.update(shift=shift, flow_shift=shift)
    config.update(sampler.scheduler_kwargs())
    if not runs_schedule(name, config):
        # from_config would drop the key silently and sample with other betas than the model was trained on
        raise UsageError(f"sampler '{name}' cannot run this model: its schedule has zero terminal SNR "
                         f"(rescale_betas_zero_snr), which diffusers' {sampler.scheduler_class} does not support")
    return cls.from_config(config)


def own_schedule_only(scheduler_config: dict[str, Any]) -> str | None:
    """The class of a saved scheduler whose noise schedule no ldmpick sampler reproduces (an EDM schedule, as
    Playground v2.5 ships: rebuilt as DDIM it would sample diffusers' default linear betas, broken images), or None.
    Such a model runs with its own scheduler only."""
    cls = str(scheduler_config.get("_class_name") or "")
    return cls if cls.startswith("EDM") else None  # (SCM's sigma_data is not EDM's: SANA-Sprint takes scm)


def runs_schedule(name: str, scheduler_config: dict[str, Any]) -> bool:
    """Whether sampler ``name`` can sample with the betas of ``scheduler_config``: a zero-terminal-SNR schedule
    needs a scheduler class that rescales its betas too (``Sampler.zero_snr``), and an EDM schedule none of ldmpick's
    (``own_schedule_only``; no diffusers import)."""
    if own_schedule_only(scheduler_config):
        return False
    return not scheduler_config.get("rescale_betas_zero_snr") or get_sampler(name).zero_snr


def sampler_for_scheduler(class_name: str, config: dict[str, Any] | None = None) -> str | None:
    """The ldmpick sampler a saved scheduler is (for costing it with a profile's overheads), or None when none is
    (PNDM, EDM variants ...)."""
    config = config or {}
    flow = bool(config.get("use_flow_sigmas")) or config.get("prediction_type") == "flow_prediction"
    for s in SAMPLERS.values():
        if s.scheduler_class == class_name and (s.flow == flow or class_name in ("FlowMatchEulerDiscreteScheduler",
                                                                                   "SCMScheduler")):
            return s.name
    return None


def steps_text(n: int, sampler: str = "") -> str:
    """'1 step', '8 steps', '1 unipc step': how many denoising steps, in words people read."""
    return f"{n} {sampler + ' ' if sampler else ''}{'step' if n == 1 else 'steps'}"
