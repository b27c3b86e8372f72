"""``ldmpick profiles list / show / export / import / diff``, and how a profile is drawn (``profile`` uses it too)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ldmpick.cli.options import ForceOpt, JsonOpt, OutOpt
from ldmpick.cli.render import command_group, console, make_table, notice, print_json, shown

app = command_group("List, show, export, import and compare latency profiles.")

RefArg = Annotated[str, typer.Argument(help="Profile id, name prefix or file.")]


@app.command("list")
def profiles_list(json_out: JsonOpt = False) -> None:
    """List local profiles (user folder) and the reference profiles shipped with ldmpick."""
    from rich.table import Table

    from ldmpick.profiles.library import profile_rows

    rows = profile_rows()
    if json_out:
        print_json(rows)
        return
    if not rows:
        notice("no profiles yet; measure this machine with 'ldmpick profile'")
        return
    table = Table(title="Profiles (the id or the file name works with --profile)")
    for col in ("where", "id", "file", "device", "settings", "models"):
        table.add_column(col, overflow="fold")  # ids and file names are meant to be copied whole
    for r in rows:
        table.add_row(r["where"], r["id"], r["file"], r["device"], r["problem"] or r["settings"], str(r["models"]))
    console().print(table)


@app.command("show")
def profiles_show(ref: RefArg, json_out: JsonOpt = False) -> None:
    """Show one profile's measurements."""
    from ldmpick.profiles.library import load_ref

    profile = load_ref(ref)
    if not profile.complete:
        notice(f"warning: '{profile.id}' is a partial profile (an interrupted run); finish it with "
               "'ldmpick profile --resume'")
    render_profile(profile, json_out)


@app.command("export")
def profiles_export(
    ref: RefArg,
    out: OutOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="json (shareable, re-importable), csv or markdown.")] = "json",
) -> None:
    """Export a profile to one shareable file (JSON), or a CSV / Markdown table; to --out, else to stdout."""
    from ldmpick.files.output_paths import check_output_file
    from ldmpick.profiles.library import check_export_target, export_profile
    from ldmpick.files.storage import atomic_write_text

    profile, text = export_profile(ref, fmt)
    if out is None:
        typer.echo(text, nl=False)
        return
    out = check_output_file(out)
    check_export_target(out)
    atomic_write_text(out, text)
    notice(f"exported '{profile.id}' to '{out}'")


@app.command("import")
def profiles_import(
    path: Annotated[Path, typer.Argument(help="A profile JSON file (e.g. from 'ldmpick profiles export').")],
    force: ForceOpt = False,
) -> None:
    """Validate a shared profile and add it to the user profile folder."""
    from ldmpick.profiles.library import import_profile

    profile, target = import_profile(path, force=force)
    notice(f"imported '{profile.id}' ({profile.device_name}, {len(profile.models)} models) to '{target}'")


@app.command("diff")
def profiles_diff(
    a: Annotated[str, typer.Argument(help="Baseline profile (id, prefix or file).")],
    b: Annotated[str, typer.Argument(help="Profile to compare (id, prefix or file).")],
    json_out: JsonOpt = False,
) -> None:
    """Compare two profiles thing by thing: median latency of B over A (above 1: B is slower)."""
    from ldmpick.profiles.export import diff_profiles
    from ldmpick.profiles.library import load_ref

    pa, pb = load_ref(a), load_ref(b)
    work = [(p.settings.resolution, p.settings.batch, p.settings.cfg) for p in (pa, pb)]
    if work[0] != work[1]:  # (another device, dtype or mode is what a diff is for)
        notice(f"note: A and B were measured at different settings (A: {pa.settings.describe()}; B: "
               f"{pb.settings.describe()}): the ratios compare different work, not only different machines")
    rows = diff_profiles(pa, pb)
    if json_out:
        print_json({"a": pa.id, "b": pb.id, "rows": [
            {"kind": r.kind, "name": r.name, "a_ms": r.a_ms, "b_ms": r.b_ms, "ratio": r.ratio} for r in rows]})
        return
    table = make_table(f"B / A\nA = {pa.id} ({pa.settings.describe()})\nB = {pb.id} ({pb.settings.describe()})",
                       ("kind", "name", "A median", "B median", "B / A"), left=("kind", "name"))
    for r in rows:
        table.add_row(r.kind, r.name, _ms(r.a_ms, 3), _ms(r.b_ms, 3), f"{r.ratio:.2f}x" if r.ratio is not None else "-")
    console().print(table)


def _ms(value: float | None, digits: int) -> str:
    return f"{value:.{digits}f} ms" if value is not None else "-"


def _ms_n(stats: Any) -> str:
    """A median with the number of timed runs it comes from."""
    return f"{stats.median_ms:.2f} ms (n={stats.n})" if stats is not None else "-"


def render_profile(profile: Any, json_out: bool) -> None:
    """A profile's measurements: per model its denoiser step and its own fixed parts, then each sampler's overhead."""
    if json_out:
        print_json(profile.to_json())
        return
    from rich.text import Text

    from ldmpick.models.catalogue import format_params

    s = profile.settings
    table = make_table(f"{profile.id}\n{profile.device_name} — {s.describe()}",
                       ("model", "family", "denoiser params", "status", "step median", "p10", "p90", "IQR", "n",
                        "text encoders", "VAE decode", "peak mem"),
                       left=("model", "family", "status"))
    for m in profile.models:
        st = m.denoiser_step
        table.add_row(
            m.name, m.family, format_params(m.denoiser_params), m.status + ("" if profile.model_cfg(m) == s.cfg
                                                                             or not s.cfg else " (no CFG batch)"),
            _ms(st.median_ms if st else None, 2), f"{st.p10_ms:.2f}" if st else "-",
            f"{st.p90_ms:.2f}" if st else "-", f"{st.iqr_ms:.2f}" if st else "-", str(st.n) if st else "-",
            _ms_n(m.text_encoder), _ms_n(m.vae_decode),
            f"{m.peak_memory_bytes / 2**30:.2f} GiB" if m.peak_memory_bytes else "-",
        )
    console().print(table)
    for m in profile.models:
        if not m.ok and m.error:  # why a model was not measured (does_not_fit: the memory it needs)
            console().print(Text(shown(f"{m.name}: {m.status.replace('_', ' ')}: {m.error}")))
    fixed = make_table("Sampler overhead (per sampling step)",
                       ("part", "evals/step", "median", "p10", "p90", "n"), left=("part",))
    for x in profile.samplers:
        st = x.step_overhead
        fixed.add_row(f"sampler {x.name}", str(x.evals_per_step), f"{st.median_ms:.3f} ms", f"{st.p10_ms:.3f}",
                      f"{st.p90_ms:.3f}", str(st.n))
    console().print(fixed)
    render_pipeline_calls(profile)


def render_pipeline_calls(profile: Any) -> None:
    """Each model's own pipeline call, end to end (prompt to encoded images): warm at two step counts, and the first
    and second call of fresh processes; what the call adds to the sum of the parts."""
    from ldmpick.costs.latency import breakdown

    calls = [m for m in profile.models if m.ok and m.pipeline_call is not None]
    if not calls:
        return
    table = make_table("Pipeline call, end to end (prompt to encoded images; the budget promise)",
                       ("model", "sampler", "warm (median, n)", "fresh process: 1st call", "2nd call",
                        "call adds to the parts"), left=("model", "sampler"))
    for m in calls:
        c = m.pipeline_call
        warm = ", ".join(f"{w.steps} steps {w.wall.median_ms:.1f} ms (n={w.wall.n})" for w in c.warm)
        first = f"{c.first.wall.median_ms:.1f} ms (n={c.first.wall.n})" if c.first else "-"
        second = f"{c.second.wall.median_ms:.1f} ms" if c.second else "-"
        b = breakdown(profile, m, c.sampler, 50)
        adds = "-"
        if not isinstance(b, str) and b.call is not None:
            adds = f"{b.call.fixed_ms:+.1f} ms per call, {b.call.per_step_ms:+.2f} ms per step"
            if b.call.first_ms is not None:
                adds += f"; first image {b.call.first_ms:+.1f} ms"
        table.add_row(m.name, c.sampler, warm, first, second, adds)
    console().print(table)
