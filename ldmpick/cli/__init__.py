"""The command line: one module per command group, each parsing its options, calling the core and rendering.

stdout carries results (rich tables, or JSON with --json); progress, notices and errors go to stderr
(``render``). Options shared by several commands are defined once (``options``). Nothing heavy (torch, diffusers,
scipy, pandas, matplotlib) is imported until a command needs it.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ldmpick import __version__
from ldmpick.cli import calibrate, demo, generate, law, models, plot, profile, profiles, recommend
from ldmpick.cli.render import LdmpickGroup

app = typer.Typer(
    cls=LdmpickGroup,
    help="Pick the latent-diffusion model size, sampler and step count that give the best images in a latency budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# in the order --help lists them: the commands, then the groups
app.command("profile")(profile.profile_cmd)
app.command("recommend")(recommend.recommend_cmd)
app.command("fit")(law.fit_cmd)
app.command("law")(law.law_cmd)
app.command("generate")(generate.generate_cmd)
app.command("calibrate")(calibrate.calibrate_cmd)
app.command("plot")(plot.plot_cmd)
app.add_typer(profiles.app, name="profiles")
app.add_typer(models.app, name="models")
app.add_typer(demo.app, name="demo")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ldmpick {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", envvar="LDMPICK_DEBUG", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    ctx.obj = {"debug": debug}
    if not debug:
        quiet_libraries()


def quiet_libraries() -> None:
    """The one-line stderr promise holds for what the libraries say too: their warnings (numpy, torch,
    transformers), log lines (Ray, diffusers) and progress bars (diffusers' pipelines, the hub) are silenced unless
    --debug asks for everything. Set before they are imported (every heavy import is lazy)."""
    import logging
    import os
    import warnings

    warnings.simplefilter("ignore")
    for var, value in (("TRANSFORMERS_VERBOSITY", "error"), ("DIFFUSERS_VERBOSITY", "error"),
                       ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TQDM_DISABLE", "1"),
                       ("TF_CPP_MIN_LOG_LEVEL", "3")):
        os.environ.setdefault(var, value)
    for name in ("ray", "transformers", "diffusers", "torch", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main() -> None:
    app()


__all__ = ["app", "main"]
