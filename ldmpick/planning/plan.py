"""The planning layer: what to run and what to expect, for ``recommend``, ``generate`` and ``plot`` alike.

``plan_selection`` chooses the cost model's rows (a measured profile, or the paper's FLOP cost), checks the
request against the profile and asks the selector for the best configuration within a budget. ``plan_generation``
settles everything ``generate`` runs: the selection of what --model / --sampler / --steps leave open (the same
``plan_selection``, among models with weights), the guidance scale (said, never silently changed), the execution
mode, the checked settings, the output folder, and the prediction: latency with its parts (the one formula of
``ldmpick.costs.latency``), the chance of running over the budget, quality, and how the run differs from what the
profile measured. ``generation`` only runs a plan.

No printing: notices go to the ``notify`` callback as they arise, so that they come in order with any error that
follows. The ``plan_selection`` path imports no torch, diffusers or scipy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldmpick.costs import DEFAULT, cost_model
from ldmpick.files.errors import LdmpickError, UsageError, unknown_name
from ldmpick.models.samplers import steps_text

MODES = ("eager", "cudagraph", "compile")
PLAN_PERCENTILE = 90.0  # plan on the run's p90: at most about 1 run in 10 over the budget
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
Notify = Callable[[str], None]


def check_percentile(percentile: float) -> float:
    """A --percentile of the run's latency: 1 to 99."""
    if not 1 <= percentile <= 99:
        raise UsageError(f"--percentile must be between 1 and 99 (got {percentile:g})")
    return percentile


def _quiet(message: str) -> None:
    pass


# ---------------------------------------------------------------------------------------------- profile settings


def settings_mismatches(profile: Any, *, resolution: int | None = None, batch: int | None = None,
                        cfg: bool | None = None, mode: str | None = None, dtype: str | None = None,
                        device: str | None = None) -> list[tuple[str, Any, Any]]:
    """How a request differs from what ``profile`` measured: (setting, measured, requested) for each requested
    setting (``None``: not requested) that differs."""
    s = profile.settings
    out = [(name, getattr(s, name), want) for name, want in
           (("mode", mode), ("resolution", resolution), ("batch", batch), ("cfg", cfg), ("dtype", dtype))
           if want is not None and want != getattr(s, name)]
    if device is not None and s.device.split(":")[0] != device.split(":")[0]:
        out.append(("device", s.device, device))
    return out


def check_settings(profile: Any, resolution: int | None, batch: int | None, cfg: bool | None,
                   mode: str | None = None) -> None:
    """The requested resolution / batch / guidance / execution mode must be what the profile measured."""
    flags = {"mode": lambda v: f"--mode {v}", "resolution": lambda v: f"--resolution {v}",
             "batch": lambda v: f"--batch {v}", "cfg": lambda v: "--cfg" if v else "--no-cfg"}
    wanted = [flags[name](want) for name, _, want in
              settings_mismatches(profile, resolution=resolution, batch=batch, cfg=cfg, mode=mode)]
    if wanted:
        raise UsageError(
            f"profile '{profile.id}' was measured at {profile.settings.describe()}; measure one with "
            f"'ldmpick profile {' '.join(wanted)}' (or pick another with --profile)"
        )


# ---------------------------------------------------------------------------------------------- selection


@dataclass
class SelectionPlan:
    """A selection and where its numbers came from."""

    selection: Any  # selector.Selection
    source: dict[str, Any]  # the law file, and for a measured cost the profile, its choice and settings
    profile: Any | None = None
    law: Any = None


def plan_selection(budget: str | float, *, profile: Any = None, profile_ref: str | None = None,
                   percentile: float = PLAN_PERCENTILE, metric: str = "fid", models: list[str] | None = None,
                   samplers: list[str] | None = None, max_steps: int = 100, resolution: int | None = None,
                   batch: int | None = None, cfg: bool | None = None, mode: str | None = None,
                   cost: str = DEFAULT, top: int = 5, law: Any = None, law_file: Path | None = None,
                   steps: int | None = None, notify: Notify = _quiet, first_image: bool = False,
                   knobs: str = "auto") -> SelectionPlan:
    """The best configuration within ``budget`` (text in the cost model's unit, or a number in it). The profile is
    ``profile`` when given (a loaded one), else chosen by ``choose_profile`` from ``profile_ref``. With ``steps``
    only that step count is considered. ``knobs``: ``auto`` (the knob variants the profile measured), ``none``, or
    knob lists separated by ';' (``knob_choice``). Its notices (which profile, which law) are said once the request has been
    checked and a configuration chosen, so that bad input is a one-line error on any machine."""
    from ldmpick.models.catalogue import typed_by_label
    from ldmpick.profiles.choice import choose_profile, quality_data_for
    from ldmpick.quality.law import STALE_LAW_NOTICE, load_law, passed_over_user_law, unfitted_rows_notice
    from ldmpick.quality.scales import scale_of_metric
    from ldmpick.planning.selector import BudgetBelowFastest, select_config

    knob_lists = parse_knobs_choice(knobs)  # the text, before any file is read
    cm = cost_model(cost)
    if first_image and hasattr(cm, "for_first_image"):  # (a cost without a first-image variant costs every image alike)
        cm = cm.for_first_image()
    check_percentile(percentile)
    if top < 1:
        raise UsageError("--top must be at least 1")
    for flag, v in (("--resolution", resolution), ("--batch", batch)):
        if v is not None and v < 1:
            raise UsageError(f"{flag} must be a positive number (got {v})")
    scale_of_metric(metric)  # an unknown metric is a one-line error naming the valid ones
    if mode is not None and mode not in MODES:
        raise unknown_name("execution mode", mode, MODES)
    if not cm.needs_profile:
        given = [flag for flag, v in (("--profile", profile_ref), ("--resolution", resolution), ("--batch", batch),
                                      ("--cfg/--no-cfg", cfg), ("--mode", mode)) if v is not None]
        if percentile != PLAN_PERCENTILE:
            given.append("--percentile")
        if given:
            raise UsageError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --cost-model "
                             f"{cm.name}: it counts the paper's sampling cost, with no profile or measured latency")
    pending: list[str] = []
    value = cm.parse_budget(budget) if isinstance(budget, str) else float(budget)
    sampler_list = samplers if samplers is not None else _all_samplers()
    if samplers is None and not cm.needs_profile:  # the paper's family: no flow-matching samplers
        from ldmpick.models.samplers import get_sampler

        sampler_list = [s for s in sampler_list if not get_sampler(s).flow]
    law_path = None
    if law is None:
        law, law_path = load_law(law_file)
        if law_file is None and passed_over_user_law(law_path):
            pending.append(STALE_LAW_NOTICE)
        elif law_file is None:
            unfitted = unfitted_rows_notice()
            if unfitted:
                pending.append(unfitted)
    source: dict[str, Any] = {"law": str(law_path)} if law_path is not None else {}
    excluded: list[str] = []
    typed = typed_by_label(models)
    if cm.needs_profile:
        if profile is None:
            choice = choose_profile(profile_ref, resolution=resolution, batch=batch, cfg=cfg, mode=mode, models=models,
                                    rankable=None if models else quality_data_for(law, metric, sampler_list))
            pending.append(choice.notice)
            profile, models = choice.profile, choice.models  # folders asked for: under the names profiles keep
            source.update(profile_path=str(choice.path), profile_choice=choice.how)
        check_settings(profile, resolution, batch, cfg, mode)
        st = profile.settings
        names = models or [m.name for m in profile.models]
        on_paper_scale = any(law.scale_of(m, metric) == "the paper's scale"  # (a model without data is on none)
                             and any(law.quality_basis(m, s, metric) is not None for s in sampler_list) for m in names)
        if metric == "fid" and (st.resolution != 512 or not st.cfg) and on_paper_scale:
            pending.append(f"note: the latencies are for {st.describe()}, but predicted FIDs are on the paper's scale "
                   "(512 px, guidance 7.5): the law has no resolution or guidance input")
        source.update(profile=profile.id, device=profile.device_name, settings=st.to_json())
    if cm.needs_profile and knob_lists != [] and hasattr(cm, "with_knobs"):
        schedules, notes = knob_choice(profile, models, knob_lists)
        excluded.extend(notes)
        cm = cm.with_knobs(schedules)
    elif knob_lists not in ([], None):
        raise UsageError(f"--knobs applies to a measured latency budget (its variants are measured by 'ldmpick "
                         f"profile --knobs'); --cost-model {cm.name} counts no knobs")
    rows = cm.rows(profile=profile, law=law, models=models, samplers=sampler_list, percentile=percentile,
                   excluded=excluded)
    if cm.needs_profile:
        excluded.extend(unmeasured_samplers(profile, models, sampler_list, typed))
    try:
        try:
            selection = select_config(rows, law, value, metric=metric, max_steps=steps or max_steps, top_k=top,
                                      excluded=excluded, headroom=True, min_steps=steps or 1, typed=typed)
        except BudgetBelowFastest as exc:
            from ldmpick.models.catalogue import DEMO_MODELS

            if models is not None or {r.model for r in rows} & set(DEMO_MODELS):
                raise
            raise UsageError(f"{exc}, or name faster models with --models (the shipped demo family, 32 px: "
                             f"--models {','.join(DEMO_MODELS)})") from None
    except LdmpickError:
        # the options were valid: what the chosen profile and law hold decided this, so say which they are
        for line in pending:
            notify(line)
        raise
    for line in pending:
        notify(line)
    return SelectionPlan(selection, source, profile, law)


def parse_knobs_choice(text: str | None) -> list[str] | None:
    """``--knobs``: ``auto`` (None: every variant the profile measured), ``none`` (``[]``), or knob lists separated
    by ';' (their canonical texts). One-line errors for bad knob text."""
    if text is None or str(text).strip().lower() == "auto":
        return None
    if str(text).strip().lower() == "none":
        return []
    from ldmpick.knobs import format_knobs, parse_knobs

    out = []
    for item in str(text).split(";"):
        if not item.strip():
            raise UsageError(f"--knobs '{str(text)[:40]}' has an empty knob list (two ';', or one at an end)")
        canonical = format_knobs(parse_knobs(item))
        if canonical != "none" and canonical not in out:
            out.append(canonical)
    return out


def knob_choice(profile: Any, models: list[str] | None, lists: list[str] | None) -> tuple[dict[str, Any], list[str]]:
    """The knob variants the cost model rows: text -> None (every step alike) or, for a fixed-schedule cache that
    needs no sampler timesteps (TaylorSeer), a function of a run's denoiser evaluations giving how many run in
    full. ``lists`` None: every variant the profile measured for ``models``. Variants that cannot be costed (an
    adaptive cache: its skip rate must come from data; PAB / FasterCache: their schedule needs the sampler's
    timesteps, which this torch-free path does not compute) and asked lists the profile did not measure get a
    note, with the command that would measure them."""
    from ldmpick.knobs import parse_knobs
    from ldmpick.knobs.cache import KIND as CACHE
    from ldmpick.knobs.cache import sort_of
    from ldmpick.models.catalogue import models_argument

    names = models or [m.name for m in profile.models]
    measured = {v.knobs for m in profile.models if m.name in names and m.ok for v in m.knobs}
    wanted = sorted(measured) if lists is None else lists
    schedules: dict[str, Any] = {}
    notes: list[str] = []
    for text in wanted:
        if text not in measured:
            notes.append(f"knobs {text}: not measured by profile '{profile.id}' (measure with 'ldmpick profile "
                         f"--models {models_argument(names)} --knobs \"{text}\"')")
            continue
        cache = next((s for s in parse_knobs(text) if s.kind == "cache" and s.name != "none"), None)
        if cache is None:
            schedules[text] = None
        elif sort_of(cache) == "adaptive":
            notes.append(f"knobs {text}: unmeasured latency: an adaptive cache's skip rate comes from data (published "
                         "rows or your generate runs), and there is none yet; not ranked")
        elif cache.name != "taylorseer":
            notes.append(f"knobs {text}: its schedule needs the sampler's timesteps, which recommend does not "
                         "compute; not ranked")
        else:
            schedules[text] = lambda n, c=cache: len(CACHE.schedule(c, n).full)
    return schedules, notes


def unmeasured_samplers(profile: Any, models: list[str] | None, samplers: list[str],
                        typed: dict[str, str] | None = None) -> list[str]:
    """One note per asked sampler that ``profile`` did not measure for some of ``models`` (default: its ok models)
    though it fits them: one another profile measured for the same model, or, when the samplers were asked for by
    name (not all of them), one that can run the model (its family's, for a model this installation cannot
    resolve). A profile of fewer samplers than the shipped one narrows the choice, and says so, with the command
    that measures them. Samplers asked for by name that cannot run a model get a note saying why."""
    from ldmpick.models.catalogue import models_argument, resolve_trusted_name
    from ldmpick.models.families import family_named
    from ldmpick.profiles.choice import samplers_measured_elsewhere
    from ldmpick.models.samplers import SAMPLERS

    by_name = set(samplers) != set(SAMPLERS)
    unfit: dict[tuple[str, str], list[str]] = {}  # (sampler, why it cannot run them) -> the models
    elsewhere = samplers_measured_elsewhere(profile)
    measured = {s.name for s in profile.samplers}
    names = models if models is not None else [m.name for m in profile.models if m.ok]
    missing: dict[str, list[str]] = {}  # sampler -> the models it fits but was not measured for
    fits: dict[str, list[str]] = {}  # model -> the asked samplers that fit it
    for m in profile.models:
        if m.name not in names or not m.ok:
            continue
        expected = set(elsewhere.get(m.name, ()))
        try:
            spec = resolve_trusted_name(m.name)
        except LdmpickError:
            spec = None
        if spec is not None:  # another profile's samplers count only where they can run the model (lcm: distilled)
            expected &= set(spec.adapter.fitting_samplers(spec))
        if by_name:
            if spec is not None:  # a model this installation knows: exactly the samplers that can run it
                expected |= set(spec.adapter.fitting_samplers(spec))
                for s in samplers:
                    why = spec.adapter.misfit_reason(spec, s)
                    if why is not None:
                        unfit.setdefault((s, why), []).append(m.name)
            else:
                try:
                    fam = family_named(m.family)
                    expected |= {*fam.samplers, *(fam.distilled_samplers if m.distilled else ())}
                except LdmpickError:
                    pass  # a family this installation does not know: which samplers fit it is unknown
        fits[m.name] = [s for s in samplers if s in expected or (s in measured and m.fits_sampler(s))]
        for s in fits[m.name]:
            if s not in measured or not m.fits_sampler(s):
                missing.setdefault(s, []).append(m.name)
    notes = [f"sampler {s}: does not fit {', '.join(ms)} ({why})" for (s, why), ms in unfit.items()]
    groups: dict[tuple[str, ...], list[str]] = {}  # models -> the samplers missing for exactly those
    for s, ms in missing.items():
        groups.setdefault(tuple(ms), []).append(s)
    for ms, group in groups.items():
        samplers_arg = ",".join(s for s in samplers if any(s in fits[n] for n in ms))
        notes.append(f"{'sampler' if len(group) == 1 else 'samplers'} {', '.join(group)}: not measured by profile "
                     f"'{profile.id}' for {', '.join(ms)} (measure with 'ldmpick profile --models "
                     f"{models_argument([(typed or {}).get(m, m) for m in ms])} "
                     f"--samplers {samplers_arg}')")
    return notes


def _all_samplers() -> list[str]:
    from ldmpick.planning.selector import sampler_names

    return sampler_names(None)


# ---------------------------------------------------------------------------------------------- generation


@dataclass
class QualityPrediction:
    """The law's prediction for the run (``quality_law.Prediction``) with the metric and the scale it is on."""

    metric: str
    scale: str
    predicted: Any  # quality_law.Prediction: value, sigma, basis

    @property
    def value(self) -> float:
        return self.predicted.value

    def to_json(self) -> dict[str, Any]:
        p = self.predicted
        return {"metric": self.metric, "value": round(p.value, 4), "sigma": round(p.sigma, 4), "basis": p.basis,
                "scale": self.scale}


@dataclass(frozen=True)
class QualityQuery:
    """What the quality law is asked about: a model (with its denoiser size) and a sampler."""

    model: str
    unet_params: int
    sampler: str


@dataclass
class Guidance:
    scale: float | None  # None: the model's own default, filled in by generation.resolve_settings
    why: str


@dataclass
class GenerationPlan:
    """What ``generate`` runs and what it expects."""

    request: Any  # generation.GenerateRequest
    settings: Any  # generation.RunSettings
    spec: Any  # catalogue.ModelSpec
    folder: Path
    guidance: Guidance
    profile: Any | None = None
    selection: Any | None = None  # selector.Selection, when the selector chose what was left open
    latency: Any | None = None  # costs.latency.LatencyPrediction
    quality: QualityPrediction | None = None
    mismatches: list[str] = field(default_factory=list)
    budget_ms: float | None = None

    def choice_json(self) -> dict[str, Any] | None:
        """The sidecar's ``selection``: what the selector chose, its planned latency and quality."""
        if self.selection is None:
            return None
        b = self.selection.best
        return {"model": b.model, "sampler": b.sampler, "steps": b.steps,
                "predicted_fid": round(b.quality, 3), "predicted_ms": round(b.latency * 1e3, 3),
                "over_budget_chance": b.over_budget_chance, "guidance": self.guidance.scale}

    def over_budget(self, result: Any) -> list[Any]:
        """The prompts (of a ``GenerationResult``) whose batch took longer than the budget, from the prompt to the
        written images."""
        return [p for p in result.prompts if self.budget_ms is not None and p.latency_ms > self.budget_ms]

    @property
    def profile_threads(self) -> int | None:
        """The CPU thread count of the profile that predicts this run (None: no CPU prediction)."""
        p = self.profile
        if p is None or self.latency is None or self.settings.device != "cpu" or p.settings.device != "cpu":
            return None
        return p.settings.threads

    @property
    def first_image(self) -> bool:
        """Whether the run's first timed image is the first call of its process (no warm-up call before it)."""
        return not self.request.warmup and self.settings.mode == "eager"


def plan_generation(prompts: list[str], *, out: Path, budget: str | None = None, model: str | None = None,
                    sampler: str | None = None, steps: int | None = None, seed: int | None = None, n: int = 1,
                    negative_prompt: str = "", guidance: float | None = None, resolution: int | None = None,
                    device: str | None = None, dtype: str | None = None, mode: str | None = None,
                    profile: str | None = None, warmup: bool = True, notify: Notify = _quiet,
                    knobs: str | None = None) -> GenerationPlan:
    """Everything ``generation.generate`` needs, checked before the model is loaded (the output folder is made
    once the settings are known to be valid). ``knobs``: one knob list to run with, ``none``, or ``auto`` (the
    default): the selection's knobs when the selector chooses within a budget, else none."""
    import secrets

    from ldmpick.generation import runner as gen
    from ldmpick.costs import latency
    from ldmpick.quality.law import STALE_LAW_NOTICE, load_law, passed_over_user_law

    gen.check_prompts(prompts)
    knob_lists = parse_knobs_choice(knobs)
    if knob_lists is not None and len(knob_lists) > 1:
        raise UsageError("generate runs one knob list; give one (knobs separated by ',', not lists by ';')")
    budget_s = cost_model(latency.NAME).parse_budget(budget) if budget is not None else None
    budget_ms = budget_s * 1e3 if budget_s is not None else None
    _check_out(Path(out), len(prompts) * n)
    if device is None:
        device = gen.default_device()
    pending: list[str] = []  # said once the request is known to be valid, so that an error stays one line
    own_scheduler = model is not None and steps is not None and sampler is None and budget_s is None
    needs_selection = (model is None or sampler is None or steps is None) and not own_scheduler
    # a run guides (a CFG-doubled batch) unless --guidance says not to; a distilled model's own entry in a profile
    # says it runs without, so a profile measured with CFG serves it too
    prof, label = _generation_profile(profile, device, model, budget_s is not None and needs_selection,
                                      pending.append, cfg=guidance is None or guidance > 1)
    law, law_path = load_law()
    if passed_over_user_law(law_path):
        pending.append(STALE_LAW_NOTICE)
    selection = None
    # --model and --steps without --sampler (and no budget): the model's own saved scheduler
    if needs_selection:
        if budget_s is None:
            raise UsageError("give --budget, or --model and --steps (and --sampler, else the model's own scheduler)")
        # no warm-up call (eager): the first image is the process's first call, and the budget must hold for it
        first_image = not warmup and (mode or gen.default_mode(device)) == "eager"
        selection = _select_runnable(prof, law, budget_s, model, label, sampler, steps, resolution, n, pending,
                                     first_image=first_image, knobs=knobs or "auto")
        model, sampler, steps = selection.best.model if model is None else model, selection.best.sampler, \
            selection.best.steps
        if knob_lists is None:
            knob_lists = [selection.best.knobs] if selection.best.knobs != "none" else []
    assert model is not None and steps is not None
    chosen = _guidance(law, model, sampler, guidance)
    if mode is None and prof is not None and prof.settings.device.split(":")[0] == device.split(":")[0]:
        mode = prof.settings.mode
    req = gen.GenerateRequest(
        model=model, prompts=prompts, sampler=sampler, steps=steps,
        seed=seed if seed is not None else secrets.randbelow(2**31), n=n, negative_prompt=negative_prompt,
        guidance=chosen.scale, resolution=resolution, device=device, dtype=dtype, mode=mode, warmup=warmup,
        knobs=knob_lists[0] if knob_lists else "none",
    )
    settings, spec = gen.resolve_settings(req)  # fail fast, before the output folder and the model load
    if guidance is None:
        pending.append(f"guidance {settings.guidance:g}: {chosen.why} (set --guidance to change)")
    if spec.kind == "demo":
        pending.extend(_outside_demo_world(prompts))
    from ldmpick.generation.outputs import prepare_out_dir

    folder = prepare_out_dir(out)
    for line in pending:
        notify(line)
    plan = GenerationPlan(req, settings, spec, folder, chosen, prof, selection, budget_ms=budget_ms)
    if prof is not None:
        # by the name the profile keeps the model under only: a folder named like a built-in model is not it
        plan.latency = latency.predict(prof, [settings.model], settings.sampler, settings.steps, PLAN_PERCENTILE,
                                       budget_ms, first_image=plan.first_image)
        if settings.knobs != "none":  # the knob variant's own row (selected), else no prediction
            best = selection.best if selection is not None else None
            plan.latency = None
            if best is not None and (best.model, best.sampler, best.steps, best.knobs) == \
                    (settings.model, settings.sampler, settings.steps, settings.knobs):
                plan.latency = latency.prediction(prof.id, selection.row_of(best).breakdown, settings.steps, budget_ms)
            else:
                notify(f"note: no latency prediction with knobs {settings.knobs} for this configuration (recommend "
                       "prices the knob variants a profile measured: 'ldmpick profile --knobs')")
        from ldmpick.models.catalogue import models_argument

        if plan.latency is None:
            notify(f"note: profile '{prof.id}' has no measurement of '{settings.model}' with '{settings.sampler}'; "
                   "no latency prediction (measure it with 'ldmpick profile --models "
                   f"{models_argument([spec.source])}')")
        entry = next((m for m in prof.models if m.name == settings.model and m.ok), None)
        # a model that never doubles its batch (guidance-distilled, LCM, Sprint) is measured as it runs, whatever
        # the profile's cfg setting says: compare with how its own step was measured
        cfg_differs = entry is None or prof.model_cfg(entry) != settings.cfg
        plan.mismatches = [f"{name} {measured} (this run: {want})" for name, measured, want in settings_mismatches(
            prof, resolution=settings.resolution, batch=settings.n, cfg=settings.cfg if cfg_differs else None,
            mode=settings.mode, dtype=settings.dtype, device=settings.device)]
        other_size = prof.settings.resolution != settings.resolution
        if other_size and plan.latency is not None:
            # every part scales with the pixels (Flux at 1024 px on a 64 px profile: 24 ms predicted, 767 measured):
            # a number that far off is worse than none
            plan.latency = None
            notify(f"note: no latency prediction: profile '{prof.id}' measured {prof.settings.resolution} px, this run "
                   f"is {settings.resolution} px (measure it: 'ldmpick profile --models "
                   f"{models_argument([spec.source])} --resolution {settings.resolution}')")
        elif plan.mismatches and plan.latency is not None:
            notify(f"warning: the profile measured {', '.join(plan.mismatches)}; the prediction may be off")
    elif budget_ms is not None:
        notify("note: no profile of this device; the budget cannot be checked before the run "
               "(measure one with 'ldmpick profile')")
    plan.quality = _quality(law, settings, spec, selection)
    fam = law.calibrated_for(settings.model, settings.sampler, "fid") if plan.quality is not None else None
    if fam is not None and fam.guidance is not None and abs(fam.guidance - settings.guidance) > 1e-6:
        notify(f"note: the predicted FID is for guidance {fam.guidance:g}, the scale {settings.model} was calibrated "
               f"at; this run uses {settings.guidance:g}, so it may differ")
    if negative_prompt and not settings.cfg:  # it acts only through classifier-free guidance's second batch
        why = (f"at guidance {settings.guidance:g} (classifier-free guidance needs a scale above 1)"
               if settings.guidance <= 1 else f"on {settings.model}, which runs no classifier-free guidance "
               "(guidance-distilled: its guidance is an input of the denoiser)")
        notify(f"note: --negative-prompt has no effect {why}")
    if plan.latency is not None and plan.quality is not None and plan.quality.metric == "fid":
        plan.latency.fid = round(plan.quality.value, 3)
    return plan


def _outside_demo_world(prompts: list[str]) -> list[str]:
    """A note when a prompt for a shipped demo model uses words its shapes world does not have: it will draw
    shapes whatever is asked ('a red fox in the snow' gets a red blob)."""
    import re

    from ldmpick.demo.world import vocabulary

    known = set(vocabulary())
    unknown = sorted({w for p in prompts for w in re.findall(r"[a-z]+", p.lower())} - known)
    if not unknown:
        return []
    listed = ", ".join(f"'{w}'" for w in unknown[:6]) + (" ..." if len(unknown) > 6 else "")
    return [f"note: the demo family knows only its shapes world, and not {listed}; its captions read like 'a large "
            "red circle in the center on a blue background' (register a model of your own for other prompts: "
            "'ldmpick models add NAME FOLDER')"]


def _check_out(out: Path, images: int) -> None:
    """``generate`` writes a folder of numbered images and a JSON record: an image file name is refused."""
    out = out.expanduser()
    if out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir():
        what = "one image" if images == 1 else f"{images} images"
        raise UsageError(f"--out '{out}' looks like an image file name, but generate writes a folder ({what}, "
                         f"numbered, with a JSON record of the run); give a folder, e.g. --out "
                         f"'{out.with_suffix('')}'")


def _generation_profile(ref: str | None, device: str, model: str | None, required: bool, later: Notify, cfg: bool | None = None) -> tuple[Any | None, str | None]:
    """The profile ``generate`` plans on and the name it keeps --model under: the one profile-choice policy
    (``profile_choice.choose_profile``, through ``generation.load_profile_for``: --profile, $LDMPICK_PROFILE, else
    the best-ranked profile that measures --model, as recommend and plot choose, or with no --model one that
    measures models with weights here), said by name (``later``, once the request is valid); a profile of another
    device is warned of at once. ``required`` (a budget to select within, for --model): no profile of --model is
    the error saying which profile measures what."""
    from ldmpick.models.catalogue import model_label
    from ldmpick.generation.runner import load_profile_for

    choice = load_profile_for(ref, device, [model] if model is not None else None, required=required, cfg=cfg)
    label = model_label(model) if model is not None else None
    if choice is None:
        return None, label
    later(choice.notice if choice.this_device else f"warning: {choice.notice}")
    return choice.profile, label


def _select_runnable(prof: Any, law: Any, budget_s: float, model: str | None, label: str | None,
                     sampler: str | None, steps: int | None, resolution: int | None, n: int, notes: list[str],
                     first_image: bool = False, knobs: str = "auto") -> Any:
    """``plan_selection`` among the profile's models that have weights (what --model / --sampler / --steps fix is
    kept; ``label``: the name the profile keeps --model under); a note when the best size overall has none, and
    one naming the models with weights here that the profile did not measure."""
    from ldmpick.models.catalogue import resolve_model

    if model is not None:
        resolve_model(model)  # an unknown name is a one-line error that suggests the closest one
    if prof is None:
        raise UsageError("--budget needs a profile of this device; measure one with "
                         "'ldmpick profile --models <your model>' (or give --model, --sampler and --steps)")
    if prof.settings.batch != n:
        raise UsageError(f"profile '{prof.id}' was measured at batch {prof.settings.batch}; choosing within a budget "
                         f"for --n {n} needs a profile measured with 'ldmpick profile --batch {n}' (or give --model, "
                         "--sampler and --steps)")
    runnable = _models_with_weights(prof, model, label)
    if model is None:
        notes.extend(_unmeasured_models(prof))
    samplers = [sampler] if sampler else [s.name for s in prof.samplers]
    plan = plan_selection(budget_s, profile=prof, models=runnable, samplers=samplers, resolution=resolution,
                          law=law, steps=steps, first_image=first_image, knobs=knobs)
    sel = plan.selection
    try:
        everyone = plan_selection(budget_s, profile=prof, samplers=samplers, resolution=resolution, law=law,
                                  steps=steps, first_image=first_image, knobs=knobs).selection.best
        if everyone.model not in runnable and everyone.quality < sel.best.quality - 1e-9:
            why = (f"; using {sel.best.model}, as --model asks" if model is not None else
                   f", which has no weights; using {sel.best.model}, the best model that has")
            notes.append(f"note: the best size for this budget is {everyone.model} ({everyone.sampler}, "
                         f"{steps_text(everyone.steps)}, predicted FID {everyone.quality:.1f}){why}")
    except LdmpickError:
        pass
    b = sel.best
    fam = law.calibrated_for(b.model, b.sampler, "fid")
    scale = f"calibrated on {fam.dataset}" if fam else f"on {law.scale_of(b.model, 'fid')}"  # (an anchor's own)
    chance = f", {_percent(b.over_budget_chance)} chance of running over" if b.over_budget_chance is not None else ""
    with_knobs = f", knobs {b.knobs}" if b.knobs != "none" else ""
    notes.append(f"selected {b.model}, {b.sampler}, {steps_text(b.steps)}{with_knobs} within {budget_s * 1e3:.0f} ms "
                 f"(planned {b.latency * 1e3:.0f} ms at p{PLAN_PERCENTILE:g}{chance}; FID {b.quality:.1f} {scale})")
    return sel


def _percent(chance: float) -> str:
    return "<1%" if 0 < chance < 0.01 else f"{chance * 100:.0f}%"


def _unmeasured_models(prof: Any) -> list[str]:
    """A note naming this installation's models with weights (the demo family, registered checkpoints) that
    ``prof`` did not measure: ``generate --budget`` cannot choose them."""
    from ldmpick.models.catalogue import DEMO_MODELS, load_registry, models_argument
    from ldmpick.generation.runner import _has_weights

    missing = [name for name in (*DEMO_MODELS, *sorted(load_registry()))
               if name not in prof.model_names() and _has_weights(name)]
    if not missing:
        return []
    return [f"note: not considered: {', '.join(missing)}: not measured by profile '{prof.id}' (measure with "
            f"'ldmpick profile --models {models_argument([*prof.model_names(), *missing])}')"]


def _models_with_weights(prof: Any, model: str | None, label: str | None = None) -> list[str]:
    """The profile's ok models that have weights here (``model``, when named, matched by ``label``: the name
    profiles keep it under, ``catalogue.model_label``)."""
    from ldmpick.models.catalogue import models_argument, resolve_model, resolve_trusted_name

    found: list[str] = []
    for m in prof.models:
        if not m.ok:
            continue
        if model is not None:
            # the user named the model: resolve what they typed (a folder is fine); the profile's labels are compared
            if m.name != (label or model):
                continue
            ref, resolve = model, resolve_model
        else:
            # names in a profile, which may be someone else's, are labels: never opened as paths
            ref, resolve = m.name, resolve_trusted_name
        try:
            spec = resolve(ref)
        except LdmpickError:
            continue
        if spec is not None and spec.has_weights:
            found.append(m.name)
    if model is not None and not found:
        spec = resolve_model(model)
        if not spec.has_weights:  # profiling would not help: there is nothing to generate with
            problems = "; ".join(spec.weight_problems()) or f"model '{model}' has no weights here"
            raise UsageError(f"{problems}; generate needs a model with weights: register a local checkpoint with "
                             "'ldmpick models add NAME FOLDER' (or a cached hub id)")
        raise UsageError(f"profile '{prof.id}' has no measurement of model '{model}'; measure it "
                         f"with 'ldmpick profile --models {models_argument([model])}'")
    if not found:
        raise UsageError(f"profile '{prof.id}' measures no model that has weights (the paper's family has none); "
                         "register one with 'ldmpick models add' and profile it, or give --model, --sampler, --steps")
    return found


def _guidance(law: Any, model: str, sampler: str | None, given: float | None) -> Guidance:
    """The guidance scale and why: the user's; else the scale the model's quality was calibrated at (with this
    sampler, else with the model's other samplers: one calibration, one guidance); else the model's own default."""
    if given is not None:
        return Guidance(given, "--guidance")
    fam = law.calibrated_for(model, sampler, "fid") if sampler is not None else None
    if fam is None:
        fams = [f for f in law.calibrated if model in f.floors and f.guidance is not None]
        fam = max(fams, key=lambda f: (f.origin == "yours", f.points)) if fams else None
    if fam is not None and fam.guidance is not None:
        why = f"the scale {model}'s quality was calibrated at"
        if sampler is not None and sampler not in fam.curves:
            why += f" (with {', '.join(fam.curves)}; not {sampler})"
        return Guidance(fam.guidance, why)
    return Guidance(None, "the model's own default (its card's, else its family's)")


def _quality(law: Any, settings: Any, spec: Any, selection: Any | None) -> QualityPrediction | None:
    """The predicted FID of the run: the selector's, else the law's for the configuration given in full (none for
    the model's own scheduler or a model without quality data on the scale)."""
    from ldmpick.quality.law import Prediction
    from ldmpick.planning.selector import _predict

    if settings.sampler.startswith("own:"):
        return None
    if selection is not None and (selection.best.model, selection.best.sampler, selection.best.steps,
                                  selection.best.knobs) == (settings.model, settings.sampler, settings.steps,
                                                            settings.knobs):
        b = selection.best
        return QualityPrediction("fid", law.scale_of(b.model, "fid"), Prediction(b.quality, b.sigma, b.basis))
    if law.quality_basis(settings.model, settings.sampler) is None or \
            law.uncalibrated_sampler(settings.model, settings.sampler) or settings.knobs != "none":
        return None  # (knobs: their effect is the selector's, on a scale that has it)
    try:
        pred = _predict(law, "fid", QualityQuery(settings.model, spec.unet_params, settings.sampler), settings.steps)
    except LdmpickError:
        return None
    return QualityPrediction("fid", law.scale_of(settings.model, "fid"), pred)
