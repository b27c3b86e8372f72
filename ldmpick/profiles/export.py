"""A profile as a table: one flat row per measured thing, written as CSV or Markdown; and two profiles compared
thing by thing. Torch-free."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from ldmpick.profiles.schema import LatencyStats, ModelLatency, Profile


def profile_rows(profile: Profile) -> list[dict[str, Any]]:
    """One flat row per measured thing: models, fixed parts, samplers."""
    rows: list[dict[str, Any]] = []

    def row(kind: str, name: str, stats: LatencyStats | None, **extra: Any) -> None:
        rows.append(
            {
                "kind": kind,
                "name": name,
                "median_ms": round(stats.median_ms, 4) if stats else None,
                "p10_ms": round(stats.p10_ms, 4) if stats else None,
                "p90_ms": round(stats.p90_ms, 4) if stats else None,
                "iqr_ms": round(stats.iqr_ms, 4) if stats else None,
                "n": stats.n if stats else None,
                **extra,
            }
        )

    for m in profile.models:
        row("denoiser_step", m.name, m.denoiser_step, status=m.status, family=m.family,
            denoiser_params=m.denoiser_params, peak_memory_bytes=m.peak_memory_bytes)
    for m in profile.models:
        row("text_encoder", m.name, m.text_encoder, status="ok" if m.text_encoder else "missing", family=m.family)
        row("vae_decode", m.name, m.vae_decode, status="ok" if m.vae_decode else "missing", family=m.family)
    for s in profile.samplers:
        row("sampler_step", s.name, s.step_overhead, status="ok", evals_per_step=s.evals_per_step)
    return rows


ROW_FIELDS = ["kind", "name", "status", "family", "median_ms", "p10_ms", "p90_ms", "iqr_ms", "n",
              "denoiser_params", "peak_memory_bytes", "evals_per_step"]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet would run as a formula


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: a string starting like a formula gets a leading quote (OWASP's advice
    against CSV injection); numbers are written as they are."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def export_csv(profile: Profile) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in profile_rows(profile):
        writer.writerow({k: csv_cell(r.get(k)) for k in ROW_FIELDS})
    return buf.getvalue()


def markdown_text(value: Any) -> str:
    """Text that stays inside one Markdown table cell: '|' and backslashes escaped."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|")


def export_markdown(profile: Profile) -> str:
    s = profile.settings
    lines = [
        f"Profile `{profile.id}` — {markdown_text(profile.device_name)}, {s.describe()}, measured {profile.created}",
        "",
        "| kind | name | status | median [ms] | p10 [ms] | p90 [ms] | IQR [ms] | n |",
        "|:---|:---|:---|---:|---:|---:|---:|---:|",
    ]
    for r in profile_rows(profile):
        cells = [r["kind"], r["name"], r.get("status", "")] + [
            "" if r[k] is None else (f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]))
            for k in ("median_ms", "p10_ms", "p90_ms", "iqr_ms", "n")
        ]
        lines.append("| " + " | ".join(markdown_text(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class DiffRow:
    name: str
    kind: str
    a_ms: float | None
    b_ms: float | None

    @property
    def ratio(self) -> float | None:
        if self.a_ms is None or self.b_ms is None or self.a_ms <= 0:
            return None
        return self.b_ms / self.a_ms


def diff_profiles(a: Profile, b: Profile) -> list[DiffRow]:
    """Median latencies of ``b`` relative to ``a``, thing by thing (ratio > 1: ``b`` is slower)."""
    rows: list[DiffRow] = []
    names = list(dict.fromkeys(a.model_names() + b.model_names()))
    amods = {m.name: m for m in a.models}
    bmods = {m.name: m for m in b.models}

    def med(m: ModelLatency | None, part: str = "denoiser_step") -> float | None:
        stats = getattr(m, part) if m is not None and m.ok else None
        return stats.median_ms if stats else None

    for part in ("denoiser_step", "text_encoder", "vae_decode"):
        for n in names:
            rows.append(DiffRow(n, part, med(amods.get(n), part), med(bmods.get(n), part)))
    asam = {s.name: s for s in a.samplers}
    bsam = {s.name: s for s in b.samplers}
    for n in dict.fromkeys(list(asam) + list(bsam)):
        rows.append(DiffRow(n, "sampler_step",
                            asam[n].step_overhead.median_ms if n in asam else None,
                            bsam[n].step_overhead.median_ms if n in bsam else None))
    return rows
