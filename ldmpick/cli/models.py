"""``ldmpick models list / add / remove``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ldmpick.cli.options import ForceOpt, JsonOpt
from ldmpick.cli.render import command_group, console, make_table, notice, print_json

app = command_group("Known models: the paper's family, released models (configs), registered checkpoints.")


@app.command("list")
def models_list(json_out: JsonOpt = False) -> None:
    """List known models: the paper's family, the demo family, the catalogue of released models (configs only) and
    registered checkpoints, with their family and denoiser parameter counts."""
    from ldmpick.models.catalogue import format_params
    from ldmpick.models.registry import model_rows

    rows = model_rows()
    if json_out:
        print_json(rows)
        return
    table = make_table("Known models", ("name", "kind", "family", "denoiser params", "weights", "source"),
                       left=("name", "kind", "family", "weights", "source"))
    for r in rows:
        table.add_row(
            r["name"], r["kind"], r["family"] or "?",
            format_params(r["denoiser_params"]) if r["denoiser_params"] is not None else "?",
            "yes" if r["weights"] else "no (config only)" if r["problem"] is None else "no", r["problem"] or r["source"],
        )
    console().print(table)


@app.command("add")
def models_add(
    name: Annotated[str, typer.Argument(help="The name to use with --model / --models.")],
    source: Annotated[str, typer.Argument(help="A local diffusers pipeline folder, or a hub id in the local cache.")],
    force: ForceOpt = False,
    guidance: Annotated[Optional[float], typer.Option("--guidance", help="The guidance scale this checkpoint runs at by default, which its configs cannot say: 0 for one distilled to run without classifier-free guidance (SDXL-Lightning, Hyper-SD); at most 1 also profiles it without the CFG batch.")] = None,
) -> None:
    """Register a real checkpoint (local folder or cached hub id) under a short name."""
    from ldmpick.models.catalogue import format_params
    from ldmpick.models.registry import register

    reg = register(name, source, force=force, guidance=guidance)
    if reg.note is not None:
        notice(f"note: {reg.note}")
    n = reg.unet_params
    count = format_params(n) if n >= 1_000_000 else f"{n:,}"  # (a tiny test model read '0.0M')
    runs = "" if guidance is None else f"; runs at guidance {guidance:g} by default" + (
        " (no classifier-free guidance)" if guidance <= 1 else "")
    notice(f"registered '{reg.name}' -> '{reg.value}' (denoiser {count} parameters, {reg.weights}){runs}")


@app.command("remove")
def models_remove(name: Annotated[str, typer.Argument(help="A registered name.")]) -> None:
    """Forget a registered name (the checkpoint's files are not touched)."""
    from ldmpick.models.registry import unregister

    source = unregister(name)
    notice(f"removed '{name}' (was '{source}'; its files are untouched)")
