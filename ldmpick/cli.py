"""The command line: parse, call the core, render with rich. No logic lives here.

stdout carries results (rich tables, or JSON with --json); progress, notices and errors go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from ldmpick import __version__
from ldmpick.errors import LdmpickError, UsageError


class _Group(TyperGroup):
    """Turns every error into one line on stderr and an exit code; tracebacks only with --debug.

    ldmpick's own errors exit with their code (2: bad input, 1: runtime failure); typer's parsing errors (unknown
    option, bad value) exit 2; anything unexpected exits 1.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        """A group named without a command prints its help (exit 0); the top level's own parsing errors (an
        unknown option before any command) are one line too."""
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:  # click's exceptions (vendored by newer typer, so matched by what they are)
            if type(exc).__name__ == "NoArgsIsHelpError":
                typer.echo(ctx.get_help())
                ctx.exit(0)
            if type(exc).__name__ in ("Exit", "Abort") or not hasattr(exc, "format_message"):
                raise
            _fail(f"{exc.format_message()} (see '{ctx.command_path} --help')", int(getattr(exc, "exit_code", 2)))
            raise  # pragma: no cover - _fail exits

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as exc:  # option parsing: unknown option, bad value, no such command
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            sub = getattr(getattr(exc, "ctx", None), "command_path", None) or ctx.command_path
            _fail(f"{message} (see '{sub} --help')", int(getattr(exc, "exit_code", 2) or 2))
        except LdmpickError as exc:
            if _debug_enabled(ctx):
                raise
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            if _debug_enabled(ctx):
                raise
            _fail("interrupted", 130)
        except Exception as exc:  # a bug or an unexpected runtime failure
            if _debug_enabled(ctx):
                raise
            _fail(f"{exc.__class__.__name__}: {exc} (run with --debug for the traceback)", 1)


def _debug_enabled(ctx: typer.Context) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) or os.environ.get("LDMPICK_DEBUG") == "1"


def _fail(message: str, code: int) -> None:
    message = " ".join(str(message).split())  # one line, always
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


app = typer.Typer(
    cls=_Group,
    help="Pick the latent-diffusion model size, sampler and step count that give the best images in a latency budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
profiles_app = typer.Typer(cls=_Group, help="List, show, export, import and compare latency profiles.",
                           no_args_is_help=True, rich_markup_mode=None)
models_app = typer.Typer(cls=_Group, help="Known models: the paper's family, registered checkpoints.",
                         no_args_is_help=True, rich_markup_mode=None)
app.add_typer(profiles_app, name="profiles")
app.add_typer(models_app, name="models")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ldmpick {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    ctx.obj = {"debug": debug}


def console(stderr: bool = False):  # -> rich.console.Console
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=False, width=None if sys.stdout.isatty() else 140)


def notice(message: str) -> None:
    """A one-line notice on stderr."""
    typer.echo(message, err=True)


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, allow_nan=False))


JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]

# ============================================================================ models (issue 2; add/remove: issue 4)


@models_app.command("list")
def models_list(json_out: JsonOpt = False) -> None:
    """List known models: the paper's family and registered checkpoints, with UNet parameter counts."""
    from ldmpick.catalogue import format_params, known_names, load_registry, resolve_model

    registry = load_registry()
    rows = []
    for name in known_names():
        try:
            spec = resolve_model(name)
            params: int | None = spec.unet_params
            problem = None
        except LdmpickError as exc:
            spec, params, problem = None, None, str(exc)
        rows.append(
            {
                "name": name,
                "kind": spec.kind if spec else "registered",
                "unet_params": params,
                "unet_params_m": round(params / 1e6, 1) if params is not None else None,
                "base_channels": (spec.unet_config.get("block_out_channels") or [None])[0] if spec else None,
                "weights": bool(spec and spec.has_weights),
                "source": registry.get(name, spec.source if spec else ""),
                "problem": problem,
            }
        )
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title="Known models")
    for col, justify in (("name", "left"), ("kind", "left"), ("UNet params", "right"), ("base ch", "right"),
                         ("weights", "left"), ("source", "left")):
        table.add_column(col, justify=justify)
    for r in rows:
        table.add_row(
            r["name"], r["kind"], format_params(r["unet_params"]) if r["unet_params"] is not None else "?",
            str(r["base_channels"] or ""), "yes" if r["weights"] else "no (config only)",
            r["problem"] or r["source"],
        )
    console().print(table)


@models_app.command("add")
def models_add(
    name: Annotated[str, typer.Argument(help="The name to use with --model / --models.")],
    source: Annotated[str, typer.Argument(help="A local diffusers pipeline folder, or a hub id in the local cache.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a name that is already registered.")] = False,
) -> None:
    """Register a real checkpoint (local folder or cached hub id) under a short name."""
    import re

    from ldmpick.catalogue import (FAMILY_CHANNELS, HUB_ID, check_safetensors_weights, format_params, hub_snapshot,
                                   load_local_spec, load_registry, update_registry)
    from ldmpick.errors import ModelError

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise UsageError(f"model name '{name}' must be 1-64 letters, digits, '.', '_' or '-' (no '/')")
    if name in FAMILY_CHANNELS:
        raise UsageError(f"'{name}' is a built-in family name; choose another name")
    from ldmpick.catalogue import DEMO_MODELS

    if name in DEMO_MODELS:
        raise UsageError(f"'{name}' is a shipped demo model name; choose another name")
    registry = load_registry()
    if name in registry and not force:
        raise UsageError(f"'{name}' is already registered (as '{registry[name]}'); use --force to replace it")
    path = Path(source).expanduser()
    if path.exists():
        spec = load_local_spec(path, name=name)
        value = str(path.resolve())
    elif HUB_ID.match(source):
        spec = load_local_spec(hub_snapshot(source), name=name, kind="hub", source=source)
        value = source
    else:
        raise ModelError(f"'{source}' is neither an existing folder nor a hub id (owner/name)")
    assert spec.path is not None
    try:
        for component in ("unet", "vae", "text_encoder"):
            check_safetensors_weights(spec.path, component)
        weights = "safetensors weights"
    except ModelError as exc:
        weights = "no usable weights (can be profiled, not generated with)"
        notice(f"note: {exc}")
    def add(current: dict[str, str]) -> None:
        if name in current and not force:  # checked again under the lock: another process may have added it
            raise UsageError(f"'{name}' is already registered (as '{current[name]}'); use --force to replace it")
        current[name] = value

    update_registry(add)
    notice(f"registered '{name}' -> '{value}' (UNet {format_params(spec.unet_params)} parameters, {weights})")


@models_app.command("remove")
def models_remove(name: Annotated[str, typer.Argument(help="A registered name.")]) -> None:
    """Forget a registered name (the checkpoint's files are not touched)."""
    from ldmpick.catalogue import FAMILY_CHANNELS, update_registry
    from ldmpick.errors import unknown_name

    if name in FAMILY_CHANNELS:
        raise UsageError(f"'{name}' is a built-in family model and cannot be removed")
    removed: list[str] = []

    def remove(registry: dict[str, str]) -> None:
        if name not in registry:
            if not registry:
                raise UsageError(f"no model named '{name}' is registered (none are; see 'ldmpick models add')")
            raise unknown_name("registered model", name, registry)
        removed.append(registry.pop(name))

    update_registry(remove)
    source = removed[0]
    notice(f"removed '{name}' (was '{source}'; its files are untouched)")


# ============================================================================ profile (issue 2)


@app.command("profile")
def profile_cmd(
    models: Annotated[str, typer.Option("--models", "-m", help="Comma-separated names, folders or hub ids, or 'all' (the paper's family).")] = "all",
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N (default: the GPU if there is one).")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="fp16, bf16 or fp32 (default: fp16 on GPU, fp32 on CPU).")] = None,
    resolution: Annotated[int, typer.Option("--resolution", help="Image side in pixels.")] = 512,
    batch: Annotated[int, typer.Option("--batch", help="Images per prompt.")] = 1,
    cfg: Annotated[bool, typer.Option("--cfg/--no-cfg", help="Classifier-free guidance (doubles the UNet batch).")] = True,
    mode: Annotated[Optional[str], typer.Option("--mode", help="eager, cudagraph or compile (default: cudagraph on GPU, eager on CPU).")] = None,
    samplers: Annotated[str, typer.Option("--samplers", help="Comma-separated sampler names, or 'all'.")] = "all",
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls before timing.")] = 3,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed calls per model (at most).")] = 20,
    max_seconds: Annotated[float, typer.Option("--max-seconds", help="Time cap per model (at least 5 samples are kept).")] = 20.0,
    threads: Annotated[Optional[int], typer.Option("--threads", help="torch CPU threads (default: torch's choice).")] = None,
    rounds: Annotated[int, typer.Option("--rounds", help="Measure the models round-robin in this many rounds and pool the samples (steadier on a drifting, shared machine).")] = 1,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Profile file to write (default: the user profile folder).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its partial file.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Measure per-step UNet latency of each model, the fixed costs and each sampler's overhead on this machine."""
    from ldmpick.catalogue import parse_model_list
    from ldmpick.profile_file import load_profile, save_profile, stored_profile_path
    from ldmpick.samplers import parse_sampler_list
    from ldmpick.storage import atomic_write_text, profiles_dir

    import shlex

    from ldmpick import profiling

    device = device or profiling.default_device()
    req = profiling.ProfileRequest(
        models=parse_model_list(models),
        device=device,
        dtype=dtype or ("fp16" if device.startswith("cuda") else "fp32"),
        resolution=resolution,
        batch=batch,
        cfg=cfg,
        mode=mode or ("cudagraph" if device.startswith("cuda") else "eager"),
        samplers=parse_sampler_list(samplers),
        warmup=warmup,
        repeats=repeats,
        max_seconds_per_model=max_seconds,
        threads=threads,
        command="ldmpick " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        rounds=rounds,
    )
    if max_seconds <= 0:
        raise UsageError("--max-seconds must be positive")
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1 (got {repeats})")
    if not 1 <= rounds <= 100 or rounds > repeats:
        raise UsageError(f"--rounds must be between 1 and 100 and at most --repeats (got {rounds})")
    profiling.validate_request(req)  # fail fast, before the progress bar
    if out is not None:
        out = out.expanduser()
        if out.is_dir():
            raise UsageError(f"--out '{out}' is a folder; give a file name such as '{out / 'profile.json'}'")
        if not out.parent.is_dir():
            raise UsageError(f"--out: folder '{out.parent}' does not exist")
    else:
        profiles_dir().mkdir(parents=True, exist_ok=True)
    partial_path = (out.with_name(out.name + ".partial.json") if out else profiles_dir() / "latest.partial.json")
    resume_from = None
    if resume:
        if not partial_path.exists():
            raise UsageError(f"--resume: no partial profile at '{partial_path}'")
        resume_from = load_profile(partial_path)
        notice(f"resuming from '{partial_path}' ({len(resume_from.models)} model(s) already measured)")

    from ldmpick.fingerprint import cpu_cores, system_load

    load = system_load()
    if load is not None and load > 0.5 * cpu_cores():
        notice(f"warning: the machine is busy (load average {load:.1f} on {cpu_cores()} cores); "
               "measurements will be slower and noisier than on an idle machine")

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    def checkpoint(p: Any) -> None:
        atomic_write_text(partial_path, p.dumps())

    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console(stderr=True), transient=False) as bar:
        task = bar.add_task("profiling", total=req.work_units())

        def tick(label: str) -> None:
            bar.update(task, advance=1, description=f"measured {label}")

        try:
            profile = profiling.run_profile(req, progress=tick, checkpoint=checkpoint, resume_from=resume_from)
        except KeyboardInterrupt:
            bar.stop()
            if partial_path.exists():
                notice(f"interrupted: completed measurements kept in '{partial_path}'; rerun with --resume")
            raise
    target = out or stored_profile_path(profile)
    save_profile(profile, target)
    partial_path.unlink(missing_ok=True)
    notice(f"profile written to '{target}' ({profile.wall_seconds:.1f} s)")
    _render_profile(profile, json_out)
    for m in profile.models:
        if m.ok and m.unet_step and m.unet_step.relative_iqr > 0.1:
            notice(f"warning: {m.name}: noisy measurement (IQR {100 * m.unet_step.relative_iqr:.0f}% of the median); "
                   "close other programs or raise --repeats")


def _render_profile(profile: Any, json_out: bool) -> None:
    if json_out:
        print_json(profile.to_json())
        return
    from rich.table import Table

    from ldmpick.catalogue import format_params

    s = profile.settings
    table = Table(title=f"{profile.id}\n{profile.device_name} — {s.describe()}")
    for col in ("model", "UNet params", "status", "step median", "p10", "p90", "IQR", "n", "peak mem"):
        table.add_column(col, justify="left" if col in ("model", "status") else "right")
    for m in profile.models:
        st = m.unet_step
        table.add_row(
            m.name, format_params(m.unet_params), m.status,
            f"{st.median_ms:.2f} ms" if st else "-", f"{st.p10_ms:.2f}" if st else "-",
            f"{st.p90_ms:.2f}" if st else "-", f"{st.iqr_ms:.2f}" if st else "-", str(st.n) if st else "-",
            f"{m.peak_memory_bytes / 2**30:.2f} GiB" if m.peak_memory_bytes else "-",
        )
    console().print(table)
    fixed = Table(title="Fixed costs and sampler overhead (per sampling step)")
    for col in ("part", "evals/step", "median", "p10", "p90", "n"):
        fixed.add_column(col, justify="left" if col == "part" else "right")
    for label, st, evals in [("text encoder", profile.text_encoder, ""), ("VAE decode", profile.vae_decode, "")] + [
        (f"sampler {x.name}", x.step_overhead, str(x.evals_per_step)) for x in profile.samplers
    ]:
        if st is None:
            fixed.add_row(label, evals, "-", "-", "-", "-")
        else:
            fixed.add_row(label, evals, f"{st.median_ms:.3f} ms", f"{st.p10_ms:.3f}", f"{st.p90_ms:.3f}", str(st.n))
    console().print(fixed)


# ============================================================================ profiles (issue 2)


def _load_ref(ref: str) -> Any:
    from ldmpick.profile_file import find_profile, load_profile

    return load_profile(find_profile(ref))


@profiles_app.command("list")
def profiles_list(json_out: JsonOpt = False) -> None:
    """List local profiles (user folder) and the reference profiles shipped with ldmpick."""
    from ldmpick.profile_file import list_profile_files, load_profile, shipped_profiles_dir
    from ldmpick.storage import profiles_dir

    rows = []
    for where, folder in (("local", profiles_dir()), ("shipped", shipped_profiles_dir())):
        for path in list_profile_files(folder):
            try:
                p = load_profile(path)
                rows.append({"where": where, "id": p.id, "file": path.name, "device": p.device_name,
                             "settings": p.settings.describe(), "models": len(p.models), "created": p.created,
                             "path": str(path), "problem": None})
            except LdmpickError as exc:
                rows.append({"where": where, "id": "?", "file": path.name, "device": "?", "settings": "", "models": 0,
                             "created": "", "path": str(path), "problem": str(exc)})
    if json_out:
        print_json(rows)
        return
    if not rows:
        notice("no profiles yet; measure this machine with 'ldmpick profile'")
        return
    from rich.table import Table

    table = Table(title="Profiles (the id or the file name works with --profile)")
    for col in ("where", "id", "file", "device", "settings", "models"):
        table.add_column(col, overflow="fold")  # ids and file names are meant to be copied whole
    for r in rows:
        table.add_row(r["where"], r["id"], r["file"], r["device"], r["problem"] or r["settings"], str(r["models"]))
    console().print(table)


@profiles_app.command("show")
def profiles_show(
    ref: Annotated[str, typer.Argument(help="Profile id, name prefix or file.")],
    json_out: JsonOpt = False,
) -> None:
    """Show one profile's measurements."""
    _render_profile(_load_ref(ref), json_out)


EXPORT_FORMATS = ("json", "csv", "markdown")


@profiles_app.command("export")
def profiles_export(
    ref: Annotated[str, typer.Argument(help="Profile id, name prefix or file.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="File to write (default: stdout).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="json (shareable, re-importable), csv or markdown.")] = "json",
) -> None:
    """Export a profile to one shareable file (JSON), or a CSV / Markdown table."""
    from ldmpick.errors import unknown_name
    from ldmpick.profile_file import export_csv, export_markdown
    from ldmpick.storage import atomic_write_text

    if fmt not in EXPORT_FORMATS:
        raise unknown_name("format", fmt, EXPORT_FORMATS)
    profile = _load_ref(ref)
    text = {"json": profile.dumps, "csv": lambda: export_csv(profile), "markdown": lambda: export_markdown(profile)}[fmt]()
    if out is None:
        typer.echo(text, nl=False)
        return
    out = out.expanduser()
    if out.is_dir():
        raise UsageError(f"--out '{out}' is a folder; give a file name")
    if not out.parent.is_dir():
        raise UsageError(f"--out: folder '{out.parent}' does not exist")
    atomic_write_text(out, text)
    notice(f"exported '{profile.id}' to '{out}'")


@profiles_app.command("import")
def profiles_import(
    path: Annotated[Path, typer.Argument(help="A profile JSON file (e.g. from 'ldmpick profiles export').")],
    force: Annotated[bool, typer.Option("--force", help="Replace a local profile with the same id.")] = False,
) -> None:
    """Validate a shared profile and add it to the user profile folder."""
    from ldmpick.profile_file import load_profile, save_profile, stored_profile_path
    from ldmpick.storage import profiles_dir

    profile = load_profile(path)
    if not profile.complete:
        raise UsageError(f"'{path}' is a partial (interrupted) profile; finish it with 'ldmpick profile --resume'")
    target = stored_profile_path(profile)
    if target.exists() and not force:
        raise UsageError(f"a profile with id '{profile.id}' already exists; use --force to replace it")
    profiles_dir().mkdir(parents=True, exist_ok=True)
    save_profile(profile, target)
    notice(f"imported '{profile.id}' ({profile.device_name}, {len(profile.models)} models) to '{target}'")


@profiles_app.command("diff")
def profiles_diff(
    a: Annotated[str, typer.Argument(help="Baseline profile (id, prefix or file).")],
    b: Annotated[str, typer.Argument(help="Profile to compare (id, prefix or file).")],
    json_out: JsonOpt = False,
) -> None:
    """Compare two profiles thing by thing: median latency of B over A (above 1: B is slower)."""
    from ldmpick.profile_file import diff_profiles

    pa, pb = _load_ref(a), _load_ref(b)
    rows = diff_profiles(pa, pb)
    if json_out:
        print_json({"a": pa.id, "b": pb.id, "rows": [
            {"kind": r.kind, "name": r.name, "a_ms": r.a_ms, "b_ms": r.b_ms, "ratio": r.ratio} for r in rows]})
        return
    from rich.table import Table

    table = Table(title=f"B / A\nA = {pa.id} ({pa.settings.describe()})\nB = {pb.id} ({pb.settings.describe()})")
    for col in ("kind", "name", "A median", "B median", "B / A"):
        table.add_column(col, justify="left" if col in ("kind", "name") else "right")
    for r in rows:
        table.add_row(r.kind, r.name, f"{r.a_ms:.3f} ms" if r.a_ms is not None else "-",
                      f"{r.b_ms:.3f} ms" if r.b_ms is not None else "-",
                      f"{r.ratio:.2f}x" if r.ratio is not None else "-")
    console().print(table)


# ============================================================================ recommend, fit, law (issue 3)


@app.command("recommend")
def recommend_cmd(
    budget: Annotated[str, typer.Option("--budget", "-b", help="Latency per image batch: '2s', '1500ms', '0.5 s' (flops: cost units, e.g. 3).")],
    profile: Annotated[Optional[str], typer.Option("--profile", "-p", help="Profile id, prefix or file (default: $LDMPICK_PROFILE, then this device's newest).")] = None,
    percentile: Annotated[float, typer.Option("--percentile", help="Plan on this latency percentile (50 = median, 90 = p90).")] = 50.0,
    metric: Annotated[str, typer.Option("--metric", help="fid (lower is better) or clip (higher is better).")] = "fid",
    models: Annotated[Optional[str], typer.Option("--models", "-m", help="Comma-separated models to consider (default: all in the profile).")] = None,
    samplers: Annotated[Optional[str], typer.Option("--samplers", help="Comma-separated samplers, or 'all'.")] = None,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Largest step count considered.")] = 100,
    resolution: Annotated[Optional[int], typer.Option("--resolution", help="Must match the profile's.")] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Must match the profile's.")] = None,
    cfg: Annotated[Optional[bool], typer.Option("--cfg/--no-cfg", help="Must match the profile's.", show_default=False)] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="Execution mode (eager, cudagraph, compile); must match the profile's.")] = None,
    cost_model: Annotated[str, typer.Option("--cost-model", help="measured (the profile's latencies) or flops (the paper's normalized cost; no profile).")] = "measured",
    top: Annotated[int, typer.Option("--top", help="Rows in the top-k table.")] = 5,
    law_file: Annotated[Optional[Path], typer.Option("--law", help="Quality law file (default: your refit, else the shipped one).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Recommend the model, sampler and step count with the best predicted quality within a latency budget."""
    from ldmpick.catalogue import parse_model_list
    from ldmpick.scaling_law import load_law
    from ldmpick.selector import (
        check_settings, choose_profile, cost_rows_flops, cost_rows_measured, parse_budget, sampler_names,
        select_config,
    )

    if cost_model not in ("measured", "flops"):
        from ldmpick.errors import unknown_name

        raise unknown_name("cost model", cost_model, ("measured", "flops"))
    if not 1 <= percentile <= 99:
        raise UsageError(f"--percentile must be between 1 and 99 (got {percentile:g})")
    if top < 1:
        raise UsageError("--top must be at least 1")
    if metric not in ("fid", "clip"):
        from ldmpick.errors import unknown_name

        raise unknown_name("metric", metric, ("fid", "clip"))
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
        if mode is not None and mode not in ("eager", "cudagraph", "compile"):
            from ldmpick.errors import unknown_name

            raise unknown_name("execution mode", mode, ("eager", "cudagraph", "compile"))
        choice = choose_profile(profile, resolution=resolution, batch=batch, cfg=cfg, mode=mode,
                                models=parse_model_list(models) if models else None)
        notice(choice.notice)
        check_settings(choice.profile, resolution, batch, cfg, mode)
        st = choice.profile.settings
        names = model_list or [m.name for m in choice.profile.models]
        on_paper_scale = any(law.scale_of(m, metric) == "the paper's scale" for m in names)
        if metric == "fid" and (st.resolution != 512 or not st.cfg) and on_paper_scale:
            notice(f"note: the latencies are for {st.describe()}, but predicted FIDs are on the paper's scale "
                   "(512 px, guidance 7.5): the law has no resolution or guidance input")
        rows = cost_rows_measured(choice.profile, model_list, sampler_list, percentile, excluded)
        unit = "s"
        source.update(profile=choice.profile.id, profile_path=str(choice.path), profile_choice=choice.how,
                      device=choice.profile.device_name, settings=choice.profile.settings.to_json())
    sel = select_config(rows, law, seconds, metric=metric, max_steps=max_steps, top_k=top, unit=unit,
                        cost_model=cost_model, excluded=excluded)
    if json_out:
        print_json({**sel.to_json(), "source": source, "percentile": percentile})
        return
    _render_selection(sel, source)


def _render_selection(sel: Any, source: dict[str, Any]) -> None:
    from rich.table import Table

    from ldmpick.catalogue import format_params

    lat = (lambda x: f"{x * 1e3:.0f} ms" if x < 1 else f"{x:.2f} s") if sel.unit == "s" else (lambda x: f"{x:.2f}")
    qname = "FID" if sel.metric == "fid" else "CLIP"
    b = sel.best
    out = console()
    head = Table(title=f"Recommended within {lat(sel.budget)}" + (" (paper cost units)" if sel.unit != "s" else ""),
                 show_header=False)
    head.add_column("", style="bold")
    head.add_column("")
    head.add_row("model", f"{b.model} ({format_params(b.unet_params)} UNet params)")
    head.add_row("sampler", b.sampler)
    head.add_row("steps", str(b.steps))
    q = (lambda v: f"{v:.2f}") if sel.metric == "fid" else (lambda v: f"{v:.4f}")
    head.add_row(f"predicted {qname}", f"{q(b.quality)} ± {q(b.sigma)}")
    if sel.unit == "s":
        p = b.parts
        fine = (lambda x: f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.3f} s")  # parts precise enough to add up
        head.add_row("predicted latency", f"{fine(b.latency)} = text encoder {fine(p['text_encoder'])} + "
                     f"{b.steps} steps x {fine(p['denoise'] / b.steps)} + VAE decode {fine(p['vae_decode'])}")
    else:
        head.add_row("sampling cost", f"{b.latency:.2f} (normalized cost x steps)")
    if "profile" in source:
        head.add_row("profile", f"{source['profile']} ({source['device']})")
    out.print(head)
    topt = Table(title=f"Top {len(sel.top)} (best steps per model and sampler)")
    for col in ("#", "model", "sampler", "steps", "latency" if sel.unit == "s" else "cost", qname):
        topt.add_column(col, justify="left" if col in ("model", "sampler") else "right")
    for i, c in enumerate(sel.top, 1):
        topt.add_row(str(i), c.model, c.sampler, str(c.steps), lat(c.latency), f"{q(c.quality)} ± {q(c.sigma)}")
    out.print(topt)
    shown = sel.frontier
    if len(shown) > 15:  # thin a long frontier evenly, always keeping its best end
        idx = sorted(set(range(0, len(shown), max(1, len(shown) // 15))) | {len(shown) - 1})
        shown = [shown[i] for i in idx]
    thinned = f"; {len(shown)} of its {len(sel.frontier)} points shown, --json has all" if len(shown) < len(sel.frontier) else ""
    front = Table(title=f"Pareto frontier within the budget (no configuration is both faster and better{thinned})")
    for col in ("latency" if sel.unit == "s" else "cost", "model", "sampler", "steps", qname):
        front.add_column(col, justify="left" if col in ("model", "sampler") else "right")
    for c in shown:
        front.add_row(lat(c.latency), c.model, c.sampler, str(c.steps), q(c.quality))
    out.print(front)
    out.print(sel.explanation, soft_wrap=True)
    if sel.excluded:
        notice("not considered: " + "; ".join(sel.excluded))


@app.command("fit")
def fit_cmd(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Law file to write (default: your user data folder).")] = None,
    table: Annotated[Optional[list[Path]], typer.Option("--table", help="Extra quality table(s) (CSV) to fit on.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Refit the quality scaling law from the shipped quality table (and yours) and write a versioned law file."""
    import shlex

    from ldmpick.scaling_law import fit_law, load_tables
    from ldmpick.storage import atomic_write_json, file_lock

    tables = load_tables(list(table or []))
    law = fit_law(tables, command="ldmpick " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    from ldmpick.scaling_law import user_law_path

    target = (out or user_law_path()).expanduser()
    if target.is_dir():
        raise UsageError(f"--out '{target}' is a folder; give a file name")
    if out is None:
        target.parent.mkdir(parents=True, exist_ok=True)
    elif not target.parent.is_dir():
        raise UsageError(f"--out: folder '{target.parent}' does not exist")
    with file_lock(target):
        atomic_write_json(target, law.to_json())
    notice(f"law written to '{target}' (size-term residual RMS {law.smooth_rms:.2f} FID)")
    _render_law(law, json_out)


@app.command("law")
def law_cmd(
    law_file: Annotated[Optional[Path], typer.Option("--law", help="Law file (default: your refit, else the shipped one).")] = None,
    steps: Annotated[str, typer.Option("--steps", help="Step counts of the grid, comma-separated.")] = "1,2,4,8,15,25,50,100",
    json_out: JsonOpt = False,
) -> None:
    """Show the fitted quality law: its parameters with uncertainty and a predicted-FID grid per sampler."""
    from ldmpick.scaling_law import load_law

    try:
        grid = [int(s) for s in steps.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--steps '{steps}' must be comma-separated integers") from None
    if not grid or min(grid) < 1 or max(grid) > 10_000:
        raise UsageError("--steps needs integers between 1 and 10000")
    law, path = load_law(law_file)
    notice(f"law: '{path}'")
    _render_law(law, json_out, grid)


def _render_law(law: Any, json_out: bool, grid: list[int] | None = None) -> None:
    import math

    grid = grid or [1, 2, 4, 8, 15, 25, 50, 100]
    if json_out:
        doc = law.to_json()
        doc["grid"] = {s: {m: {str(k): round(law.predict_fid(n, s, k).value, 3) for k in grid}
                           for m, n, _ in law.size_points} for s in law.curves}
        print_json(doc)
        return
    from rich.table import Table

    out = console()
    t = Table(title="Step-deficit curves: FID(N, s) = size(N) + C·s^-p − deficit_ddim(50)")
    for col in ("sampler", "C", "p", "deficit at 4 / 20 steps", "basis"):
        t.add_column(col, justify="left" if col in ("sampler", "basis") else "right")
    for name, c in law.curves.items():
        t.add_row(name, f"{c.C:.1f} ± {math.sqrt(max(c.cov[0][0], 0)):.1f}", f"{c.p:.2f} ± {math.sqrt(max(c.cov[1][1], 0)):.2f}",
                  f"{c.deficit(4):.1f} / {c.deficit(20):.2f}", c.basis)
    out.print(t)
    out.print(f"size(N): Table 1 interpolated in log N; outside 39M-5B: {law.smooth_a:.2f} − {law.smooth_b:.2f}·ln(N/1e8) "
              f"(b ± {math.sqrt(max(law.smooth_cov[1][1], 0)):.2f}, residual RMS {law.smooth_rms:.2f} FID)", soft_wrap=True)
    fit_rows = law.provenance.get("step_curve_fit") or []
    if fit_rows:
        f = Table(title="Step curves vs their published points (fitted = series offset + C·s^-p)")
        for col in ("series", "sampler", "steps", "published FID", "fitted", "miss"):
            f.add_column(col, justify="left" if col in ("series", "sampler") else "right")
        for r in fit_rows:
            f.add_row(r["series"], r["sampler"], str(r["steps"]), f"{r['fid']:.2f}", f"{r['fitted']:.2f}",
                      f"{(r['fitted'] - r['fid']) / r['fid']:+.0%}")
        out.print(f)
    for fam in law.calibrated:
        c = Table(title=f"Calibrated: {fam.metric} on {fam.scale}, {fam.points} points, residual "
                        f"{100 * fam.rms_log:.1f}% — floor_m + k_m·C·s^-p, corrected by measured residuals")
        c.add_column("model")
        c.add_column("floor", justify="right")
        c.add_column("k", justify="right")
        for name, curve in fam.curves.items():
            c.add_column(f"{name} C / p", justify="right")
        for m in fam.floors:
            c.add_row(m, f"{fam.floors[m]:.3g}", f"{fam.scales[m]:.2f}",
                      *[f"{v.C:.3g} / {v.p:.2f}" for v in fam.curves.values()])
        out.print(c)
    for sampler in law.curves:
        g = Table(title=f"Predicted FID — {sampler}")
        g.add_column("model")
        for k in grid:
            g.add_column(f"{k}", justify="right")
        for m, n, _ in law.size_points:
            g.add_row(m, *[f"{law.predict_fid(n, sampler, k).value:.1f}" for k in grid])
        out.print(g)


# ============================================================================ generate (issue 4)

ModelOpt = Annotated[Optional[str], typer.Option("--model", help="Registered name, local diffusers folder or cached hub id (overrides the selector).")]
SamplerOpt = Annotated[Optional[str], typer.Option("--sampler", help="ddim, ddpm, dpmpp-2m, euler, euler-a, unipc, heun or lcm (overrides the selector).")]
StepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Sampling steps (overrides the selector).")]


def _read_prompts(prompt: Optional[str], prompts_file: Optional[Path]) -> list[str]:
    if prompt is not None and prompts_file is not None:
        raise UsageError("give PROMPT or --prompts-file, not both")
    if prompts_file is None:
        if prompt is None or not prompt.strip():
            raise UsageError("no prompt given; pass PROMPT or --prompts-file")
        return [prompt]
    from ldmpick.generation import read_prompts_file

    return read_prompts_file(prompts_file.expanduser())


@app.command("generate")
def generate_cmd(
    prompt: Annotated[Optional[str], typer.Argument(help="The prompt (or use --prompts-file).")] = None,
    budget: Annotated[Optional[str], typer.Option("--budget", help="Latency budget per image batch, e.g. '2s' or '800ms': the selector picks what --model/--sampler/--steps leave open.")] = None,
    model: ModelOpt = None,
    sampler: SamplerOpt = None,
    steps: StepsOpt = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the first image; image k of a prompt uses seed + k (default: random).")] = None,
    n: Annotated[int, typer.Option("--n", help="Images per prompt (one batch).")] = 1,
    prompts_file: Annotated[Optional[Path], typer.Option("--prompts-file", help="UTF-8 text file, one prompt per line.")] = None,
    negative_prompt: Annotated[str, typer.Option("--negative-prompt", help="What the images should not show.")] = "",
    guidance: Annotated[Optional[float], typer.Option("--guidance", help="Classifier-free guidance scale (1 or less: off; default: the scale the chosen model's quality was calibrated at, else 7.5).")] = None,
    resolution: Annotated[Optional[int], typer.Option("--resolution", help="Image side in pixels (default: the model's native size).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created if its parent exists).")] = Path("ldmpick-images"),
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N (default: the GPU if there is one).")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="fp16, bf16 or fp32 (default: fp16 on GPU, fp32 on CPU).")] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="eager, cudagraph or compile (default: the profile's mode; else cudagraph on GPU, eager on CPU).")] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", help="Profile (id, prefix or file) for the selection and the prediction (default: the newest one of this device).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Generate images with the chosen (or selected) model, sampler and steps; compare measured with predicted latency."""
    import secrets
    import shlex
    from datetime import datetime, timezone

    from ldmpick import generation as gen
    from ldmpick.outputs import metadata_text, prepare_out_dir, save_image, sidecar_path, write_sidecar

    prompts = _read_prompts(prompt, prompts_file)
    from ldmpick.selector import parse_budget

    budget_ms = parse_budget(budget) * 1e3 if budget is not None else None
    if device is None:
        device = gen.default_device()
    selection: dict[str, Any] | None = None
    prof = gen.load_profile_for(profile, device)
    if prof is not None:
        from ldmpick.fingerprint import light_fingerprint
        from ldmpick.profile_file import device_key

        if prof.device_key != device_key(light_fingerprint(device)):
            notice(f"warning: profile '{prof.id}' was measured on another device ({prof.device_name}); its "
                   "latencies are not this machine's: run 'ldmpick profile' to measure this one")
    if None in (model, sampler, steps):
        if budget_ms is None:
            raise UsageError("give --budget, or all of --model, --sampler and --steps")
        choice = gen.select_for_generation(prof, budget_ms, model=model, sampler=sampler, steps=steps,
                                           resolution=resolution)
        model, sampler, steps, selection = choice.model, choice.sampler, choice.steps, choice.to_json()
        for line in choice.notes:
            notice(line)
    from ldmpick.scaling_law import load_law

    law = load_law()[0]
    if guidance is None:  # the scale the model's quality was calibrated at, if it was
        fam = law.calibrated_for(model, sampler, "fid")
        guidance = fam.guidance if fam is not None and fam.guidance is not None else 7.5
        if fam is not None and fam.guidance is not None:
            notice(f"guidance {guidance:g}: the scale {model}'s quality was calibrated at (set --guidance to change)")
    assert model is not None and sampler is not None and steps is not None
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
        prediction = gen.predict_latency(prof, [settings.model, spec.source, str(spec.path), spec.path.name],
                                         settings.sampler, settings.steps)
        if prediction is None:
            notice(f"note: profile '{prof.id}' has no measurement of '{settings.model}' with '{settings.sampler}'; "
                   f"no prediction (measure it with 'ldmpick profile --models {spec.source}')")
        else:
            prediction.budget_ms = budget_ms
            prediction.fid = (selection or {}).get("predicted_fid")
            if prediction.fid is None:  # all of --model/--sampler/--steps given: still say what the law predicts
                if not (law.is_distilled_sampler(settings.sampler)
                        or law.uncalibrated_sampler(settings.model, settings.sampler)):
                    try:
                        prediction.fid = round(law.predict_fid(spec.unet_params, settings.sampler, settings.steps,
                                                               model=settings.model).value, 3)
                    except LdmpickError:
                        pass
            diffs = gen.profile_mismatches(prof, settings)
            if diffs:
                notice(f"warning: the profile measured {', '.join(diffs)}; the prediction may be off")
    elif budget_ms is not None:
        notice("note: no profile of this device; the budget cannot be checked before the run "
               "(measure one with 'ldmpick profile')")

    from ldmpick import __version__ as version

    record: dict[str, Any] = {
        "ldmpick_version": version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "ldmpick " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "settings": settings.to_json(),
        "selection": selection,
        "prediction": prediction.to_json() if prediction else None,
        "prompts": [],
        "images": [],
    }
    state: dict[str, Any] = {"sidecar": None}

    def save(pr: Any) -> None:
        files = []
        for k, (image, img_seed) in enumerate(zip(pr.images, pr.seeds)):
            fields = {
                "prompt": pr.prompt, "negative_prompt": settings.negative_prompt, "model": settings.model,
                "model_source": settings.source, "sampler": settings.sampler, "scheduler": state["scheduler"],
                "steps": settings.steps, "guidance": settings.guidance, "seed": img_seed,
                "resolution": f"{settings.resolution}x{settings.resolution}", "batch": settings.n,
                "device": settings.device, "dtype": settings.dtype, "mode": settings.mode,
                "predicted_fid": prediction.fid if prediction else None,
                "predicted_latency_ms": round(prediction.total_ms, 3) if prediction else None,
                "measured_latency_ms": round(pr.times.total_ms, 3), "ldmpick_version": version,
            }
            path = save_image(folder, image, pr.prompt, img_seed, metadata_text(fields))
            files.append(str(path))
            record["images"].append({"file": path.name, "prompt_index": pr.index, "seed": img_seed})
            if state["sidecar"] is None:
                state["sidecar"] = sidecar_path(path)
        record["prompts"].append({"prompt": pr.prompt, "seeds": pr.seeds, "files": [Path(f).name for f in files],
                                  "measured": pr.times.to_json()})
        write_sidecar(state["sidecar"], record)  # rewritten after each prompt: an interrupted run keeps its record

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console(stderr=True), transient=False, disable=json_out) as bar:
        task = bar.add_task(f"loading {settings.model}", total=None)

        def tick(done: int, total: int) -> None:
            per_prompt = total // len(prompts)
            bar.update(task, completed=done, total=total,
                       description=f"prompt {min(done // per_prompt + (done % per_prompt > 0), len(prompts))}/"
                                   f"{len(prompts)}, {settings.n} image(s), {settings.sampler} x {settings.steps}")

        def on_prompt(pr: Any) -> None:
            save(pr)

        state["scheduler"] = gen.scheduler_class_name(settings.sampler)
        result = gen.generate(req, progress=tick, on_prompt=on_prompt)
    record.update(scheduler_class=result.scheduler_class, unet_evals=result.unet_evals, timesteps=result.timesteps,
                  load_ms=round(result.load_ms, 3), setup_ms=round(result.setup_ms, 3), notes=result.notes)
    write_sidecar(state["sidecar"], record)
    for line in result.notes:
        notice(f"note: {line}")
    exceeded = [p for p in result.prompts if budget_ms is not None and p.times.total_ms > budget_ms]
    if json_out:
        print_json({**record, "sidecar": str(state["sidecar"]), "out": str(folder)})
    else:
        _render_generation(result, prediction, record, folder, state["sidecar"])
    if exceeded:
        worst = max(p.times.total_ms for p in exceeded)
        notice(f"warning: budget exceeded: {len(exceeded)} of {len(result.prompts)} prompt batch(es) took longer than "
               f"{budget_ms:.0f} ms (slowest {worst:.0f} ms)")


def _render_generation(result: Any, prediction: Any, record: dict[str, Any], folder: Path, sidecar: Path) -> None:
    from rich.table import Table

    s = result.settings
    n_prompts = len(result.prompts)
    measured = {part: sorted(getattr(p.times, part) for p in result.prompts)[n_prompts // 2]
                for part in ("text_encoder_ms", "denoise_ms", "vae_decode_ms", "total_ms")}
    title = (f"{s.model} — {s.sampler} ({result.scheduler_class}) x {s.steps} steps, {s.resolution}px, "
             f"{s.n} image(s)/prompt, {s.dtype}, {s.mode} on {s.device}")
    table = Table(title=title + ("" if n_prompts == 1 else f"\nmedian over {n_prompts} prompts"))
    for col in ("part", "predicted", "measured", "measured / predicted"):
        table.add_column(col, justify="left" if col == "part" else "right")
    for label, key in (("text encoder", "text_encoder_ms"), ("denoising loop", "denoise_ms"),
                       ("VAE decode", "vae_decode_ms"), ("total", "total_ms")):
        pred = getattr(prediction, key) if prediction else None
        m = measured[key]
        table.add_row(label, f"{pred:.1f} ms" if pred is not None else "-", f"{m:.1f} ms",
                      f"{m / pred:.2f}x" if pred else "-")
    console().print(table)
    console().print(f"{len(record['images'])} image(s) in '{folder}' (settings in '{sidecar.name}'); "
                    f"load {result.load_ms / 1e3:.1f} s, setup {result.setup_ms / 1e3:.1f} s (not in the totals)")




# ============================================================================ demo (issue 5)

demo_app = typer.Typer(cls=_Group, help="The demo model family trained here on a procedural shapes world.",
                       no_args_is_help=True, rich_markup_mode=None)
app.add_typer(demo_app, name="demo")


def _parse_channels(text: str) -> tuple[int, ...]:
    try:
        channels = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"--channels must be comma-separated integers like '8,16,32', got '{text}'") from None
    if not channels:
        raise UsageError("--channels is empty; give base channel counts like '8,16,32'")
    return channels


@demo_app.command("train")
def demo_train_cmd(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where the pipeline folders go (default: the package's demo_models folder).")] = None,
    channels: Annotated[str, typer.Option("--channels", help="Base channel counts of the UNets, comma-separated.")] = "8,12,16,24,32",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the world's samples and of the training.")] = 0,
    images: Annotated[int, typer.Option("--images", help="Number of world samples to train on.")] = 8192,
    vae_steps: Annotated[int, typer.Option("--vae-steps", help="Optimizer steps of the autoencoder.")] = 600,
    unet_steps: Annotated[int, typer.Option("--unet-steps", help="Optimizer steps of each UNet.")] = 2000,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads for torch (1 is steadier on a shared 2-core machine).")] = 1,
) -> None:
    """Train the VAE and one UNet per channel count on the demo world; write diffusers folders with training.json."""
    from ldmpick.catalogue import DEMO_MODELS_DIR
    from ldmpick.demo_train import train_family

    report = train_family(out or DEMO_MODELS_DIR, channels=_parse_channels(channels), seed=seed, n_images=images,
                          vae_steps=vae_steps, unet_steps=unet_steps, threads=threads, progress=notice)
    print_json({name: {k: facts[k] for k in ("unet_params", "steps", "wall_s", "final_loss_mean_last50")}
                for name, facts in report["models"].items()})


@demo_app.command("train-judge")
def demo_train_judge_cmd(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for world_judge.safetensors/.json (default: the package's data folder).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="World seed of the training images (not the UNets' seed).")] = 1,
    images: Annotated[int, typer.Option("--images", help="Number of world samples to train on.")] = 8192,
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps.")] = 1500,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads for torch.")] = 1,
) -> None:
    """Train the world judge: the feature network of the demo FID and the attribute classifier of prompt accuracy."""
    from ldmpick.image_quality import train_judge

    if out is not None and not out.is_dir():
        raise UsageError(f"--out '{out}' is not a folder")
    facts = train_judge(out, seed=seed, n_images=images, steps=steps, threads=threads, progress=notice)
    print_json(facts)


# ============================================================================ calibrate and plot (issue 5)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{option} must be comma-separated integers like '1,2,4,8', got '{text}'") from None
    if not values:
        raise UsageError(f"{option} is empty")
    return values


@app.command("calibrate")
def calibrate_cmd(
    models: Annotated[str, typer.Option("--models", "-m", help="Comma-separated models with weights (default: the demo family).")] = "demo-c8,demo-c12,demo-c16,demo-c24,demo-c32",
    samplers: Annotated[str, typer.Option("--samplers", help="Comma-separated sampler names.")] = "ddim,dpmpp-2m,euler,unipc",
    steps: Annotated[str, typer.Option("--steps", help="Step counts, comma-separated.")] = "1,2,4,8,16,32,50",
    samples: Annotated[int, typer.Option("--samples", help="Images generated (and measured) per configuration (FID depends on it: the shipped demo calibration used 512).")] = 512,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the prompts, the reference set and the initial noise.")] = 0,
    guidance: Annotated[Optional[float], typer.Option("--guidance", help="Classifier-free guidance scale (default: 2 for the demo world, where the demo family's FID is best; 7.5 with --reference).")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Images generated at once.")] = 256,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N (default: the GPU if there is one).")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="fp16, bf16 or fp32 (default: fp16 on GPU, fp32 on CPU).")] = None,
    reference: Annotated[Optional[Path], typer.Option("--reference", help="Folder of real reference images (real models; default: the demo world).")] = None,
    prompts_file: Annotated[Optional[Path], typer.Option("--prompts-file", help="Prompts for real models, one per line (with --reference).")] = None,
    inception_weights: Annotated[Optional[Path], typer.Option("--inception-weights", help="Local safetensors of torchvision's inception_v3 (with --reference).")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="torch CPU threads (default: torch's choice).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted calibration from its partial file.")] = False,
    restart: Annotated[bool, typer.Option("--restart", help="Discard an interrupted calibration of the same grid and start over.")] = False,
    no_fit: Annotated[bool, typer.Option("--no-fit", help="Append the points but do not refit the law.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Measure FID (and prompt accuracy) over a grid of models x samplers x steps; add the points to your quality
    table and refit the law."""
    import shlex

    from ldmpick import calibration as calib
    from ldmpick.catalogue import parse_model_list
    from ldmpick.generation import check_device, default_device
    from ldmpick.samplers import parse_sampler_list
    from ldmpick.scaling_law import user_table_path

    device = device or default_device()
    check_device(device)
    req = calib.CalibrationRequest(
        models=parse_model_list(models), samplers=parse_sampler_list(samplers), steps=_int_list(steps, "--steps"),
        samples=samples, seed=seed, guidance=guidance if guidance is not None else (7.5 if reference else 2.0),
        device=device,
        dtype=dtype or ("fp16" if device.startswith("cuda") else "fp32"), batch=batch,
        reference=reference, prompts_file=prompts_file, inception_weights=inception_weights)
    if req.dtype not in ("fp16", "bf16", "fp32"):
        raise UsageError(f"unknown dtype '{req.dtype}' (valid: bf16, fp16, fp32)")
    calib.validate_request(req)
    partial = calib.partial_path(req)
    resume_from = None
    if resume and restart:
        raise UsageError("give --resume or --restart, not both")
    if resume:
        resume_from = calib.read_partial(partial, req)
        notice(f"resuming from '{partial}' ({len(resume_from)} configuration(s) already measured)")
    elif partial.exists() and not restart:
        raise UsageError(f"an interrupted calibration of this grid is kept in '{partial}'; continue it with --resume, "
                         "or discard it with --restart")
    if threads is not None:
        import torch

        if threads < 1:
            raise UsageError(f"--threads must be at least 1 (got {threads})")
        torch.set_num_threads(threads)
    partial.parent.mkdir(parents=True, exist_ok=True)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console(stderr=True)) as bar:
        task = bar.add_task("calibrating", total=len(req.configs()),
                            completed=len(resume_from or []))

        def tick(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, description=label)

        try:
            cal = calib.run_calibration(req, progress=tick, checkpoint=lambda c: calib.write_partial(c, partial),
                                        resume_from=resume_from)
        except KeyboardInterrupt:
            bar.stop()
            if partial.exists():
                notice(f"interrupted: completed configurations kept in '{partial}'; rerun with --resume")
            raise
    table = user_table_path()
    rows = calib.append_points(calib.points_of(cal), table)
    partial.unlink(missing_ok=True)
    notice(f"{len(cal.results)} configuration(s) measured; quality table '{table}' now has {rows} row(s)")
    law_doc = None
    if not no_fit:
        law, target = _refit_user_law("ldmpick " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
        fams = [f for f in law.calibrated if f.dataset == req.dataset]
        fits = ", ".join(f"{f.metric} residual {100 * f.rms_log:.1f}% over {f.points} points" for f in fams)
        notice(f"law refitted and written to '{target}'" + (f" ({fits})" if fits else
                                                             " (too few points to fit this data set's curves)"))
        law_doc = [f.to_json() for f in fams]
    if json_out:
        print_json({"dataset": req.dataset, "profile": cal.profile_id, "table": str(table),
                    "results": [r.__dict__ for r in cal.results], "law": law_doc})
        return
    from rich.table import Table

    t = Table(title=f"Measured quality on {req.dataset} ({req.samples} images per configuration, seed {req.seed})")
    for col in ("model", "sampler", "steps", "FID", "prompt accuracy", "all attributes", "seconds"):
        t.add_column(col, justify="left" if col in ("model", "sampler") else "right")
    for r in cal.results:
        t.add_row(r.model, r.sampler, str(r.steps), f"{r.fid:.2f}",
                  "-" if r.prompt_acc is None else f"{r.prompt_acc:.3f}",
                  "-" if r.prompt_all is None else f"{r.prompt_all:.3f}", f"{r.seconds:.1f}")
    console().print(t)


def _refit_user_law(command: str) -> tuple[Any, Path]:
    """Read the tables, fit and write the user's law, all under the table's lock: a concurrent calibration's rows
    are either in this fit or in its own later one, never lost."""
    from ldmpick.scaling_law import fit_law, load_tables, user_law_path, user_table_path
    from ldmpick.storage import atomic_write_json, file_lock

    target = user_law_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(user_table_path()), file_lock(target):
        law = fit_law(load_tables([]), command=command)
        atomic_write_json(target, law.to_json())
    return law, target


@app.command("plot")
def plot_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Image file to write: .png or .svg.")] = Path("quality_vs_latency.png"),
    budget: Annotated[Optional[str], typer.Option("--budget", help="Draw the budget line, e.g. '50ms' or '2s'.")] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", help="Profile file or id (default: as recommend chooses).")] = None,
    models: Annotated[Optional[str], typer.Option("--models", help="Only these models (comma-separated).")] = None,
    samplers: Annotated[Optional[str], typer.Option("--samplers", help="Only these samplers (comma-separated).")] = None,
    metric: Annotated[str, typer.Option("--metric", help="fid or clip (prompt accuracy for calibrated demo models).")] = "fid",
    law_file: Annotated[Optional[Path], typer.Option("--law", help="Law file (default: your refit, else the shipped one).")] = None,
    no_law: Annotated[bool, typer.Option("--no-law", help="Draw measured points only, not the law's curves.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Draw quality against measured latency for every model and sampler, with the budget line and the Pareto
    frontier: the paper's key figure, on your hardware."""
    from ldmpick.catalogue import parse_model_list
    from ldmpick.plotting import plot_quality_vs_latency
    from ldmpick.scaling_law import load_law, load_tables
    from ldmpick.selector import choose_profile, parse_budget, sampler_names

    model_list = parse_model_list(models) if models else None
    choice = choose_profile(profile, models=model_list)
    notice(choice.notice)
    law, _ = load_law(law_file)
    import dataclasses

    measured = "prompt_acc" if metric == "clip" else metric  # calibrated rows: prompt accuracy is the CLIP analogue

    def in_its_fit(p: Any) -> bool:  # only the points of the calibration each model is predicted from
        fam = law.calibrated_for(p.model, p.sampler, measured)
        return fam is None or (p.dataset, p.guidance, p.num_samples) == (fam.dataset, fam.guidance, fam.samples)

    points = [dataclasses.replace(p, metric=metric) for pts, _ in load_tables([]) for p in pts
              if p.metric == measured and in_its_fit(p)]
    summary = plot_quality_vs_latency(
        points, choice.profile,
        law=None if no_law else law, budget_ms=parse_budget(budget) * 1e3 if budget else None, out=out,
        metric=metric, samplers=sampler_names(samplers) if samplers else None, models=model_list)
    notice(f"plot written to '{summary.path}'")
    if json_out:
        print_json(summary.to_json())
        return
    from rich.table import Table

    t = Table(title=f"Pareto frontier ({summary.basis}, {summary.points} points)")
    for col in ("latency", "model", "sampler", "steps", metric):
        t.add_column(col, justify="left" if col in ("model", "sampler") else "right")
    for f in summary.frontier:
        t.add_row(f"{f['latency_ms']:.1f} ms", f["model"], f["sampler"], str(f["steps"]), f"{f['value']:.3f}")
    console().print(t)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
