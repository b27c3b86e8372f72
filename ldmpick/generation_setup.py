"""What ``generate`` settles before it loads a model: the profile, the selection of what --model / --sampler /
--steps leave open, the guidance scale and execution mode defaults, the checked settings, the output folder and
the latency prediction. No printing: notices go to the ``notify`` callback as they arise, so that they come in
order with any error that follows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ldmpick.errors import LdmpickError, UsageError


@dataclass
class GenerationSetup:
    request: Any  # generation.GenerateRequest
    settings: Any  # generation.Settings
    spec: Any  # catalogue.ModelSpec
    folder: Path
    profile: Any | None  # the profile the selection and the prediction come from
    selection: dict[str, Any] | None  # what the selector chose (None: --model, --sampler and --steps all given)
    prediction: Any | None  # generation.Prediction
    budget_ms: float | None

    def over_budget(self, result: Any) -> list[Any]:
        """The prompts (of a ``GenerationResult``) whose batch took longer than the budget."""
        return [p for p in result.prompts if self.budget_ms is not None and p.times.total_ms > self.budget_ms]


def prepare_generation(prompts: list[str], *, out: Path, budget: str | None = None, model: str | None = None,
                       sampler: str | None = None, steps: int | None = None, seed: int | None = None, n: int = 1,
                       negative_prompt: str = "", guidance: float | None = None, resolution: int | None = None,
                       device: str | None = None, dtype: str | None = None, mode: str | None = None,
                       profile: str | None = None,
                       notify: Callable[[str], None] = lambda message: None) -> GenerationSetup:
    """Everything ``generation.generate`` needs, checked before the model is loaded (the output folder is made
    once the settings are known to be valid)."""
    import secrets

    from ldmpick import generation as gen
    from ldmpick.outputs import prepare_out_dir
    from ldmpick.quality_law import load_law
    from ldmpick.selector import parse_budget

    budget_ms = parse_budget(budget) * 1e3 if budget is not None else None
    if device is None:
        device = gen.default_device()
    selection: dict[str, Any] | None = None
    choice = gen.load_profile_for(profile, device)  # profile_choice.ProfileChoice | None
    prof = choice.profile if choice is not None else None
    if choice is not None and (not choice.this_device or (budget_ms is not None and choice.how != "--profile")):
        notify(choice.notice)  # which profile decides, when the user did not name it
    # --model and --steps without --sampler (and no budget): the model's own saved scheduler
    own_scheduler = model is not None and steps is not None and sampler is None and budget_ms is None
    if (model is None or sampler is None or steps is None) and not own_scheduler:
        if budget_ms is None:
            raise UsageError("give --budget, or --model and --steps (and --sampler, else the model's own scheduler)")
        choice = gen.select_for_generation(prof, budget_ms, model=model, sampler=sampler, steps=steps,
                                           resolution=resolution)
        model, sampler, steps, selection = choice.model, choice.sampler, choice.steps, choice.to_json()
        for line in choice.notes:
            notify(line)
    law = load_law()[0]
    if guidance is None and sampler is not None:  # the scale the model's quality was calibrated at, if it was
        fam = law.calibrated_for(model, sampler, "fid")
        if fam is not None and fam.guidance is not None:
            guidance = fam.guidance
            notify(f"guidance {guidance:g}: the scale {model}'s quality was calibrated at (set --guidance to change)")
    # otherwise None: the model's own default (its card's in the catalogue, else its family's)
    if mode is None and prof is not None and prof.settings.device.split(":")[0] == device.split(":")[0]:
        mode = prof.settings.mode
    req = gen.GenerateRequest(
        model=model, prompts=prompts, sampler=sampler, steps=steps,
        seed=seed if seed is not None else secrets.randbelow(2**31), n=n, negative_prompt=negative_prompt,
        guidance=guidance, resolution=resolution, device=device, dtype=dtype, mode=mode,
    )
    settings, spec = gen.resolve_settings(req)  # fail fast, before the output folder and the model load
    folder = prepare_out_dir(out)
    prediction = None
    if prof is not None:
        prediction = _predict(prof, law, settings, spec, selection, budget_ms, notify)
    elif budget_ms is not None:
        notify("note: no profile of this device; the budget cannot be checked before the run "
               "(measure one with 'ldmpick profile')")
    return GenerationSetup(req, settings, spec, folder, prof, selection, prediction, budget_ms)


def _predict(prof: Any, law: Any, settings: Any, spec: Any, selection: dict[str, Any] | None,
             budget_ms: float | None, notify: Callable[[str], None]) -> Any | None:
    """The profile's latency prediction for the run, with the law's FID (the selector's, or the law's own for a
    configuration given in full); notices when the profile lacks it or measured other settings."""
    from ldmpick import generation as gen

    prediction = gen.predict_latency(prof, [settings.model, spec.source, str(spec.path), spec.path.name],
                                     settings.sampler, settings.steps)
    if prediction is None:
        notify(f"note: profile '{prof.id}' has no measurement of '{settings.model}' with '{settings.sampler}'; "
               f"no prediction (measure it with 'ldmpick profile --models {spec.source}')")
        return None
    if settings.sampler.startswith("own:"):
        return prediction
    prediction.budget_ms = budget_ms
    prediction.fid = (selection or {}).get("predicted_fid")
    if prediction.fid is None:  # all of --model/--sampler/--steps given: still say what the law predicts
        if law.quality_basis(settings.model, settings.sampler) is not None:
            try:
                prediction.fid = round(law.predict_fid(spec.unet_params, settings.sampler, settings.steps,
                                                       model=settings.model).value, 3)
            except LdmpickError:
                pass
    diffs = gen.profile_mismatches(prof, settings)
    if diffs:
        notify(f"warning: the profile measured {', '.join(diffs)}; the prediction may be off")
    return prediction
