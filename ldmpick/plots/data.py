"""Which measured quality points the quality-against-latency plot draws. No printing, no matplotlib."""

from __future__ import annotations

import dataclasses
from typing import Any


def measured_metric(metric: str) -> str:
    """The table metric a plot metric is drawn from (prompt-acc: the calibrated rows' prompt_acc)."""
    from ldmpick.quality.scales import CALIBRATED_METRIC

    return CALIBRATED_METRIC.get(metric, metric)


def plot_points(law: Any, metric: str) -> list[Any]:
    """The quality-table points of ``metric`` (shipped table and the user's), each model's only from the
    calibration it is predicted from (the law's calibrated family for it), relabelled as ``metric``."""
    from ldmpick.quality.table import load_tables

    measured = measured_metric(metric)

    def in_its_fit(p: Any) -> bool:
        fam = law.calibrated_for(p.model, p.sampler, measured)
        return fam is None or (p.dataset, p.guidance, p.num_samples) == (fam.dataset, fam.guidance, fam.samples)

    return [dataclasses.replace(p, metric=metric) for pts, _ in load_tables([]) for p in pts
            if p.metric == measured and in_its_fit(p)]
