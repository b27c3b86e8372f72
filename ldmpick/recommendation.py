"""``recommend`` as one call: check the request, choose the cost basis (a measured profile, or the paper's FLOP
cost), build the cost rows and select. No printing: notices go to the ``notify`` callback as they arise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ldmpick.errors import UsageError, unknown_name

COST_MODELS = ("measured", "flops")
MODES = ("eager", "cudagraph", "compile")


@dataclass
class Recommendation:
    selection: Any  # selector.Selection
    source: dict[str, Any]  # where the numbers came from: the law file, and the profile for measured costs


def recommend(budget: str, *, profile: str | None = None, percentile: float = 50.0, metric: str = "fid",
              models: str | None = None, samplers: str | None = None, max_steps: int = 100,
              resolution: int | None = None, batch: int | None = None, cfg: bool | None = None,
              mode: str | None = None, cost_model: str = "measured", top: int = 5, law_file: Path | None = None,
              notify: Callable[[str], None] = lambda message: None) -> Recommendation:
    """The model, sampler and step count with the best predicted ``metric`` within ``budget``."""
    from ldmpick.catalogue import parse_model_list
    from ldmpick.profile_choice import choose_profile
    from ldmpick.quality_law import load_law
    from ldmpick.quality_scales import scale_of_metric
    from ldmpick.selector import (check_settings, cost_rows_flops, cost_rows_measured, parse_budget, sampler_names,
                                  select_config)

    if cost_model not in COST_MODELS:
        raise unknown_name("cost model", cost_model, COST_MODELS)
    if not 1 <= percentile <= 99:
        raise UsageError(f"--percentile must be between 1 and 99 (got {percentile:g})")
    if top < 1:
        raise UsageError("--top must be at least 1")
    scale_of_metric(metric)  # an unknown metric is a one-line error naming the valid ones
    seconds = parse_budget(budget, unitless=cost_model == "flops")
    model_list = parse_model_list(models) if models else None
    sampler_list = sampler_names(samplers)
    law, law_path = load_law(law_file)
    excluded: list[str] = []
    source: dict[str, Any] = {"law": str(law_path)}
    if cost_model == "flops":
        rows = cost_rows_flops(law, model_list, sampler_list)
        unit = "cost"
    else:
        if mode is not None and mode not in MODES:
            raise unknown_name("execution mode", mode, MODES)
        choice = choose_profile(profile, resolution=resolution, batch=batch, cfg=cfg, mode=mode,
                                models=parse_model_list(models) if models else None)
        notify(choice.notice)
        check_settings(choice.profile, resolution, batch, cfg, mode)
        st = choice.profile.settings
        names = model_list or [m.name for m in choice.profile.models]
        on_paper_scale = any(law.scale_of(m, metric) == "the paper's scale" for m in names)
        if metric == "fid" and (st.resolution != 512 or not st.cfg) and on_paper_scale:
            notify(f"note: the latencies are for {st.describe()}, but predicted FIDs are on the paper's scale "
                   "(512 px, guidance 7.5): the law has no resolution or guidance input")
        rows = cost_rows_measured(choice.profile, model_list, sampler_list, percentile, excluded)
        unit = "s"
        source.update(profile=choice.profile.id, profile_path=str(choice.path), profile_choice=choice.how,
                      device=choice.profile.device_name, settings=choice.profile.settings.to_json())
    selection = select_config(rows, law, seconds, metric=metric, max_steps=max_steps, top_k=top, unit=unit,
                              cost_model=cost_model, excluded=excluded)
    return Recommendation(selection, source)
