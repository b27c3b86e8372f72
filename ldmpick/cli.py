"""The command line: parse, call the core, render with rich. No logic lives here.

stdout carries results (rich tables, or JSON with --json); progress, notices and errors go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from typer.core import TyperGroup

from ldmpick import __version__
from ldmpick.errors import LdmpickError, UsageError


class _Group(TyperGroup):
    """Turns ldmpick's exceptions into one line on stderr and an exit code; tracebacks only with --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
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


def _debug_enabled(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) or os.environ.get("LDMPICK_DEBUG") == "1"


def _fail(message: str, code: int) -> None:
    message = " ".join(str(message).split())  # one line, always
    click.echo(f"error: {message}", err=True)
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
    click.echo(message, err=True)


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, allow_nan=False))


JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]

# ============================================================================ models (issue 2; add/remove: issue 4)

# ============================================================================ profile (issue 2)

# ============================================================================ profiles (issue 2)

# ============================================================================ recommend, fit, law (issue 3)

# ============================================================================ generate (issue 4)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
