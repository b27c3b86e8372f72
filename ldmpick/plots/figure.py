"""The paper's key figure on the user's hardware: quality against predicted latency per image.

``plot_quality_vs_latency`` draws, for every model and sampler a profile covers, the quality metric (FID, lower is
better; or CLIP score, higher is better) on the y axis against the end-to-end latency per image that the profile
predicts (``ldmpick.costs.latency.predict``, the one latency formula) on a log x axis. Measured (calibrated) points are markers joined
by thin lines; the quality law's predictions over steps are dashed lines. One colour per model (ordered by UNet
parameters), one marker per sampler. It also draws the latency budget as a vertical line and the latency/quality
Pareto frontier (the configurations no other is both at least as fast and at least as good as) as a step line.

matplotlib is imported inside the function (Agg backend); this module imports neither torch nor diffusers.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldmpick.models.catalogue import format_params
from ldmpick.files.errors import UsageError
from ldmpick.costs.latency import predict as predict_latency
from ldmpick.quality.scales import SCALES
from ldmpick.models.samplers import SAMPLERS
from ldmpick.planning.selector import pareto_frontier
from ldmpick.files.storage import atomic_write_bytes

FORMATS = (".png", ".svg")
METRICS = {key: scale.lower_is_better for key, scale in SCALES.items()}  # metric -> lower is better
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")
DEFAULT_LAW_STEPS = 50
MARK_STEPS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)  # steps marked on the law's dashed curves


@dataclass
class PlotSummary:
    """What was drawn: the file, how many series and points, and the Pareto frontier (fastest first)."""

    path: Path
    series: int
    points: int
    frontier: list[dict[str, Any]] = field(default_factory=list)
    basis: str = "measured"  # "measured": calibrated points; "law": law predictions only
    knob_frontier: list[dict[str, Any]] | None = None  # with --knobs: the frontier when knobs are in the choice

    def to_json(self) -> dict[str, Any]:
        doc = {"path": str(self.path), "series": self.series, "points": self.points, "basis": self.basis,
               "frontier": self.frontier}
        if self.knob_frontier is not None:
            doc["knob_frontier"] = self.knob_frontier
        return doc


@dataclass(frozen=True)
class PlotPoint:
    """One plotted configuration: its predicted latency per image and its (measured or predicted) quality."""

    model: str
    sampler: str
    steps: int
    latency_ms: float
    value: float


def _check_out(out: Path) -> str:
    from ldmpick.files.output_paths import check_output_file

    out = check_output_file(out, example="plot.png")  # a folder, or a folder that does not exist: said as such
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"cannot write plot '{out}': unknown format '{out.suffix or '(none)'}' (use .png or .svg)")
    return suffix[1:]


def plot_quality_vs_latency(points: list[Any], profile: Any, law: Any = None, budget_ms: float | None = None,
                            out: Path = Path("quality_vs_latency.png"), metric: str = "fid",
                            samplers: list[str] | None = None, models: list[str] | None = None,
                            percentile: float = 50.0, title: str | None = None,
                            knob_frontier: list[dict[str, Any]] | None = None) -> PlotSummary:
    """Draw quality vs predicted latency for ``profile`` into ``out`` (.png or .svg); see the module docstring.

    ``points`` are ``QualityPoint``s; those of a calibrated series, of ``metric``, of a (model, sampler) the
    profile covers (and in ``models`` / ``samplers`` when given) are plotted. With ``law`` its predictions are drawn
    too, over steps 1..the most steps measured (1..50 without measured points, when they are the plotted data).
    ``knob_frontier`` (``plots.data.knob_frontier``: the selector's frontier with knobs in the choice) is drawn as a
    second step line, so the frontier with and without knobs can be compared."""
    out = Path(out)
    fmt = _check_out(out)
    if metric not in METRICS:
        raise UsageError(f"unknown metric '{metric}' (valid: {', '.join(METRICS)})")
    if budget_ms is not None and not budget_ms > 0:
        raise UsageError(f"the latency budget must be positive (got {budget_ms} ms)")
    lower = METRICS[metric]
    params = {m.name: m.unet_params for m in profile.models if m.ok and (models is None or m.name in models)}
    prof_samplers = [s.name for s in profile.samplers if samplers is None or s.name in samplers]

    def latency(model: str, sampler: str, steps: int) -> float | None:
        pred = predict_latency(profile, [model], sampler, steps, percentile)
        return None if pred is None else pred.planned_ms  # at ``percentile`` (total_ms is the median)

    measured: dict[tuple[str, str], list[PlotPoint]] = {}
    for q in points:
        if not q.series.startswith("calibrated") or q.metric != metric or q.model not in params:
            continue
        if q.sampler not in prof_samplers or q.steps < 1:
            continue
        ms = latency(q.model, q.sampler, q.steps)
        if ms is not None:
            measured.setdefault((q.model, q.sampler), []).append(PlotPoint(q.model, q.sampler, q.steps, ms, q.value))

    predict: Callable[..., Any] | None = None
    if law is not None:
        predict = law.predict  # (model, sampler, steps, metric) -> Prediction, or None without data on the scale
    predicted: dict[tuple[str, str], list[PlotPoint]] = {}
    if predict is not None:
        if measured:
            pairs = list(measured)
            max_steps = max(p.steps for pts in measured.values() for p in pts)
        else:  # law only: every ok model x every sampler (distilled ones only when asked for)
            pairs = [(m, s) for m in params for s in prof_samplers
                     if samplers is not None or not (s in SAMPLERS and SAMPLERS[s].distilled_only)]
            max_steps = DEFAULT_LAW_STEPS
        for model, sampler in pairs:
            curve = []
            for steps in range(1, max_steps + 1):
                ms = latency(model, sampler, steps)
                pred = predict(model, sampler, steps, metric) if ms is not None else None
                if pred is not None:
                    curve.append(PlotPoint(model, sampler, steps, ms, pred.value))
            if curve:
                predicted[(model, sampler)] = curve

    if not measured and not predicted:
        raise UsageError(f"nothing to plot: no calibrated {metric} points for the profile's models and samplers; "
                         "run 'ldmpick calibrate' first or pass a law")

    basis = "measured" if measured else "law"
    data = [p for pts in (measured or predicted).values() for p in pts]
    frontier = pareto_frontier(data, lower, cost=lambda p: p.latency_ms, value=lambda p: p.value)
    all_ms = [p.latency_ms for pts in (*measured.values(), *predicted.values()) for p in pts]
    scale, unit = (1000.0, "s") if max(all_ms) >= 10_000 else (1.0, "ms")

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    drawn_models = sorted({m for m, _ in (*measured, *predicted)}, key=lambda m: (params[m], m))
    drawn_samplers = [s for s in prof_samplers if any(s == k[1] for k in (*measured, *predicted))]
    cmap = matplotlib.colormaps["viridis"]
    colour = {m: cmap(0.9 * i / max(1, len(drawn_models) - 1)) for i, m in enumerate(drawn_models)}
    marker = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(drawn_samplers)}

    def xy(pts: list[PlotPoint]) -> tuple[list[float], list[float]]:
        pts = sorted(pts, key=lambda p: (p.latency_ms, p.steps))
        return [p.latency_ms / scale for p in pts], [p.value for p in pts]

    fig = Figure(figsize=(9.0, 6.0), dpi=110)
    ax = fig.add_subplot()
    for (model, sampler), pts in predicted.items():  # hollow markers at a few round step counts
        marks = [i for i, p in enumerate(sorted(pts, key=lambda p: (p.latency_ms, p.steps))) if p.steps in MARK_STEPS]
        ax.plot(*xy(pts), linestyle="--", linewidth=1.0, color=colour[model], alpha=0.8, marker=marker[sampler],
                markevery=marks, markersize=3.5, markerfacecolor="none")
    for (model, sampler), pts in measured.items():
        ax.plot(*xy(pts), linestyle="-", linewidth=0.8, marker=marker[sampler], markersize=5, color=colour[model])
    fx, fy = xy(frontier)
    ax.step(fx, fy, where="post", color="crimson", linewidth=1.6, alpha=0.8, zorder=5)
    if measured:
        ax.scatter(fx, fy, s=70, facecolors="none", edgecolors="crimson", zorder=6)
    handles = [Line2D([], [], color=colour[m], linewidth=2, label=f"{m} ({format_params(params[m])})")
               for m in drawn_models]
    handles += [Line2D([], [], color="grey", marker=marker[s], linestyle="-" if measured else "--", label=s,
                       markerfacecolor=None if measured else "none") for s in drawn_samplers]
    if measured and predicted:
        handles.append(Line2D([], [], color="grey", linestyle="--", label="law prediction"))
    handles.append(Line2D([], [], color="crimson", linewidth=1.6, label=f"Pareto frontier ({basis})"))
    if knob_frontier:
        kx = [f["latency_ms"] / scale for f in knob_frontier]
        ky = [f["value"] for f in knob_frontier]
        ax.step(kx, ky, where="post", color="darkorange", linewidth=1.6, linestyle="--", zorder=5)
        ax.scatter([x for x, f in zip(kx, knob_frontier) if f["knobs"] != "none"],
                   [y for y, f in zip(ky, knob_frontier) if f["knobs"] != "none"], s=40, marker="*",
                   color="darkorange", zorder=6)
        handles.append(Line2D([], [], color="darkorange", linewidth=1.6, linestyle="--", marker="*",
                              label="Pareto frontier with knobs (law, * a knob configuration)"))
    if budget_ms is not None:
        label = f"budget {budget_ms / scale:g} {unit}"
        ax.axvline(budget_ms / scale, color="black", linestyle=":", linewidth=1.2)
        handles.append(Line2D([], [], color="black", linestyle=":", label=label))
    ax.set_xscale("log")
    if metric == "fid":
        ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis) if metric == "fid" else (ax.xaxis,):  # ticks at 1, 2, 5 x 10^k, plain
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"predicted latency per image ({unit}, p{percentile:g})")
    ax.set_ylabel(f"{metric.upper()} ({'lower' if lower else 'higher'} is better)")
    ax.set_title(title or f"{metric.upper()} vs latency on {profile.device_name} ({profile.settings.describe()})",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "ldmpick"}):
        fig.savefig(buf, format=fmt, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
    atomic_write_bytes(out, buf.getvalue())
    return PlotSummary(
        path=out,
        series=len(measured) + len(predicted),
        points=len(data),
        frontier=[{"model": p.model, "sampler": p.sampler, "steps": p.steps, "latency_ms": p.latency_ms,
                   "value": p.value} for p in frontier],
        basis=basis,
        knob_frontier=knob_frontier,
    )
