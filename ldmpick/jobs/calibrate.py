"""One ``ldmpick calibrate`` run around ``calibration.run_calibration``: the request with its defaults, the
partial-file policy (resume, restart, refuse to overwrite), storing the measured points and
refitting the user's law under the table's lock. No printing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ldmpick.calibration.driver import DEMO_GUIDANCE, REFERENCE_GUIDANCE
from ldmpick.files.errors import UsageError

DEFAULT_CALIBRATION_SAMPLERS = ("ddim", "dpmpp-2m", "euler", "unipc")  # the shipped demo calibration's


SCORER_BATCH = 1  # a scorer calibration generates one image per call by default (as profiles measure: batch 1)


def build_request(*, models: str, samplers: str | None, steps: list[int], samples: int | None, seed: int,
                  guidance: float | None, batch: int | None, device: str | None, dtype: str | None,
                  reference: Path | None, prompts_file: Path | None, inception_weights: Path | None,
                  scorer: str | None = None, scorer_model: str | None = None,
                  reference_steps: int | None = None, prompt_set: str | None = None) -> Any:  # -> CalibrationRequest
    """A checked request; the device defaults to the GPU if there is one, dtype to what suits it, guidance to the
    demo world's or real models' usual scale (with a scorer: the models' own default), samples to 256 (with a
    scorer: one image per prompt of the prompt set), batch to 256 (with a scorer: 1)."""
    from ldmpick.calibration import driver as calib
    from ldmpick.models.catalogue import parse_model_list
    from ldmpick.hardware.execution import check_dtype, default_dtype
    from ldmpick.generation.runner import check_device, default_device
    from ldmpick.models.samplers import parse_sampler_list

    device = device or default_device()
    check_device(device)
    model_list, per_model = parse_model_list(models), None
    if scorer is not None:
        from ldmpick.calibration.scorers import scorer_module

        scorer_module(scorer)  # (a bad name is refused before anything is resolved or hashed)
        if prompt_set is not None and prompts_file is not None:
            raise UsageError("give --prompt-set or --prompts-file, not both")
    if guidance is None:
        guidance = (models_guidance(model_list) if scorer is not None
                    else REFERENCE_GUIDANCE if reference else DEMO_GUIDANCE)
    if batch is None:
        batch = SCORER_BATCH if scorer is not None else 256
    if samplers is None or samplers.strip().lower() == "all":
        # 'all': each model runs the samplers that fit it (as profile's 'all'); not given: those of the usual four
        # (ddim, dpmpp-2m, euler, unipc) that fit it, else all that fit it (a flow model: its flow samplers)
        from ldmpick.models.catalogue import resolve_model

        specs = {m: resolve_model(m) for m in model_list}
        per_model = {}
        for m, spec in specs.items():
            fits = spec.adapter.fitting_samplers(spec)
            usual = [s for s in DEFAULT_CALIBRATION_SAMPLERS if s in fits]
            per_model[m] = fits if samplers is not None or not usual else usual
        sampler_list = list(dict.fromkeys(s for fits in per_model.values() for s in fits))
    else:
        sampler_list = parse_sampler_list(samplers)
    req = calib.CalibrationRequest(
        models=model_list, samplers=sampler_list, per_model_samplers=per_model, steps=steps, samples=samples or 256,
        seed=seed, guidance=guidance, device=device, dtype=dtype or default_dtype(device),
        batch=batch, reference=reference, prompts_file=prompts_file, inception_weights=inception_weights,
        scorer=scorer, scorer_model=scorer_model, reference_steps=reference_steps, prompt_set_name=prompt_set)
    if scorer is not None and samples is None and reference is None:
        req.samples = max(2, len(req.prompt_set().prompts))  # one image per prompt
    check_dtype(req.dtype, req.device)
    calib.validate_request(req)
    return req


def models_guidance(models: list[str]) -> float:
    """The guidance scale ``models`` run at by default (their cards', else their families'); models of different
    defaults need one given (a calibration runs at one guidance)."""
    from ldmpick.models.catalogue import resolve_model

    scales = {m: resolve_model(m).guidance for m in models}
    if len(set(scales.values())) > 1:
        listed = ", ".join(f"{m} {g:g}" for m, g in scales.items())
        raise UsageError(f"these models run at different guidance scales by default ({listed}); give one with "
                         "--guidance")
    return next(iter(scales.values()))


def partial_state(req: Any, resume: bool, restart: bool) -> tuple[Path, list[Any] | None]:
    """The request's partial file, and the results to resume from (None: start afresh). An interrupted calibration
    of the same grid is neither overwritten nor resumed silently: it takes --resume or --restart."""
    from ldmpick.calibration import driver as calib

    partial = calib.partial_path(req)
    shards = calib.shard_store(req)
    if resume and restart:
        raise UsageError("give --resume or --restart, not both")
    if resume:
        if not partial.exists() and shards.folder.is_dir():
            return partial, []  # only shards of unfinished configurations were kept
        return partial, calib.read_partial(partial, req)
    if (partial.exists() or shards.folder.is_dir()) and not restart:
        raise UsageError(f"an interrupted calibration of this grid is kept in '{partial}'; continue it with --resume, "
                         "or discard it with --restart")
    if restart:
        shards.clear()
    return partial, None


def check_user_table() -> None:
    """The user's quality table, where the results will go, must read before anything is measured (a malformed
    row stopped the run only after every configuration was measured)."""
    from ldmpick.quality.table import read_table_file, user_table_path

    path = user_table_path()
    if path.exists():
        try:
            read_table_file(path)
        except UsageError as exc:
            raise UsageError(f"{exc} — the results would go into that table: fix or move it, then calibrate") \
                from None


def store_results(cal: Any, partial: Path) -> tuple[Path, int]:
    """Add the measured points to the user's quality table and drop the partial file; returns the table and its
    row count."""
    from ldmpick.calibration import driver as calib
    from ldmpick.quality.table import user_table_path

    table = user_table_path()
    try:
        rows = calib.append_points(calib.points_of(cal), table)
    except UsageError as exc:  # (the table changed while measuring): the work is in the partial file
        raise UsageError(f"{exc}; the measurements are kept in '{partial}': fix the table and rerun with --resume") \
            from None
    partial.unlink(missing_ok=True)
    calib.shard_store(cal.request).clear()
    return table, rows


def refit(req: Any, command: str) -> tuple[list[Any], Path]:
    """Refit the user's law (under the table's lock); returns the calibrated families fitted to this request's
    protocol (data set, guidance and sample count: FID's bias depends on the sample count, so a family measured at
    another count is another family) and where the law went."""
    from ldmpick.quality.refit import refit_user_law

    law, target = refit_user_law(command)
    return [f for f in law.calibrated if f.dataset == req.dataset and f.guidance == req.guidance
            and f.samples in (None, req.samples)], target


@contextmanager
def shard_runner(req: Any, cluster: str | None, threads: int | None) -> Iterator[Any]:
    """What runs the shards: None (here, in this process) or, with ``cluster``, a ``RayShardRunner`` connected for
    the block (``threads`` CPUs per task on CPU work)."""
    if cluster is None:
        yield None
        return
    from ldmpick.transport.ray_cluster import RayShardRunner, connected

    with connected(cluster) as info:
        yield RayShardRunner(req, info, threads or 1)
