"""How the CLI shows things: stdout carries results (rich tables, or JSON with --json); notices, progress and errors
go to stderr. Errors are one line, ``error: ...``, and an exit code: 2 for bad input (ldmpick's ``UsageError`` and
typer's own parsing errors), 1 for runtime failures; tracebacks only with ``--debug`` (or ``LDMPICK_DEBUG=1``).

rich is imported only when something is drawn, so that ``recommend`` starts fast.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Callable

import typer
from typer.core import TyperGroup

from ldmpick.files.errors import LdmpickError


class LdmpickGroup(TyperGroup):
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
            fail(f"{exc.format_message()} (see '{ctx.command_path} --help')", int(getattr(exc, "exit_code", 2)))
            raise  # pragma: no cover - fail exits

    def invoke(self, ctx: typer.Context) -> Any:
        argv = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None) or []), *ctx.args]
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as exc:  # option parsing: unknown option, bad value, no such command
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            sub = getattr(getattr(exc, "ctx", None), "command_path", None) or ctx.command_path
            fail(f"{message} (see '{sub} --help')", int(getattr(exc, "exit_code", 2) or 2))
        except LdmpickError as exc:
            if debug_enabled(ctx):
                raise
            fail(from_environment(str(exc), argv), exc.exit_code)
        except KeyboardInterrupt:
            if debug_enabled(ctx):
                raise
            fail("interrupted", 130)
        except BrokenPipeError:
            quiet_broken_pipe()
        except OSError as exc:
            if debug_enabled(ctx):
                raise
            if exc.errno is None:  # an OSError with a message of its own (a library's EnvironmentError): as is
                fail(f"{exc.__class__.__name__}: {exc} (run with --debug for the traceback)", 1)
            # the file system said no: a read-only folder, a name too long, no permission
            fail(os_error_message(exc), 2 if exc.errno in USER_OS_ERRORS else 1)
        except Exception as exc:  # a bug or an unexpected runtime failure
            if debug_enabled(ctx):
                raise
            fail(f"{exc.__class__.__name__}: {exc} (run with --debug for the traceback)", 1)


# file-system refusals that the user's paths or permissions cause (exit 2, like other bad input)
USER_OS_ERRORS = frozenset({errno.ENAMETOOLONG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
                            errno.ENOENT, errno.EEXIST})


def os_error_message(exc: OSError) -> str:
    """'cannot use 'PATH': Read-only file system': what the file system refused, in one line, without Python's
    '[Errno 30]'."""
    what = exc.strerror or exc.__class__.__name__
    if exc.filename is None:
        return f"{what} ({exc.__class__.__name__})"
    name = str(exc.filename)
    shown_name = name if len(name) <= 120 else name[:60] + "..." + name[-40:]
    return f"cannot use '{shown_name}': {what}"


def quiet_broken_pipe() -> None:
    """The reader of stdout went away ('ldmpick ... | head'): exit quietly with 141 (128 + SIGPIPE), as Unix tools
    do, with stdout sent to /dev/null so that the exit's flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(141)


def command_group(help: str) -> typer.Typer:
    """A sub-command group (``ldmpick models ...``) that renders errors like the top level."""
    return typer.Typer(cls=LdmpickGroup, help=help, no_args_is_help=True, rich_markup_mode=None)


def debug_enabled(ctx: typer.Context) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) or os.environ.get("LDMPICK_DEBUG") == "1"


def fail(message: str, code: int) -> None:
    message = " ".join(shown(str(message)).split())  # one line, always
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


# ---------------------------------------------------------------------------------------------- output

# Characters a terminal acts on instead of showing: C0 controls but tab and newline, DEL, C1 controls (U+009B is an
# 8-bit CSI), bidirectional overrides and isolates (U+202E turns the rest of a line around), the line and paragraph
# separators, byte-order marks and lone surrogates (which cannot be encoded at all).
_UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
                         "\ufeff\ud800-\udfff]")


# options whose default comes from a variable: an error about the variable's value names the variable
ENV_OPTIONS = {"LDMPICK_DEVICE": "--device", "LDMPICK_DTYPE": "--dtype", "LDMPICK_MODE": "--mode"}


def from_environment(message: str, argv: list[str]) -> str:
    """``message``, prefixed with the variable it is about when the bad value came from ``$LDMPICK_*`` rather than
    the command line (``error: unknown execution mode 'bogus'`` left the user looking for a --mode never typed)."""
    import os

    for var, flag in ENV_OPTIONS.items():
        value = os.environ.get(var)
        typed = any(a == flag or a.startswith(flag + "=") for a in argv)
        if value and not typed and f"'{value}'" in message:
            return f"${var}: {message}"
    return message


def shown(text: str) -> str:
    """``text`` as it may reach a terminal: every character a terminal would act on is written as its Python escape
    (``\\x9b``, ``\\u202e``). Everything ldmpick prints passes through here, so a profile's device name or a
    folder's name shows as what it is."""
    return _UNSHOWABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def console(stderr: bool = False):  # -> rich.console.Console
    """The console every command prints with. It never interprets rich markup or emoji codes in what it prints
    (``[link=...]`` or ``[/]`` in a device name, ``sd [old]`` as a folder name show as written), and every string it
    renders (table cells and titles included) goes through ``shown``. Style a result with rich objects (``Text``,
    table styles), never with markup in strings."""
    return _safe_console_class()(stderr=stderr, soft_wrap=False, width=None if sys.stdout.isatty() else 140,
                                 markup=False, emoji=False)


_SAFE_CONSOLE: Any = None


def _safe_console_class() -> Any:
    global _SAFE_CONSOLE
    if _SAFE_CONSOLE is None:
        from rich.console import Console

        class SafeConsole(Console):
            def render_str(self, text: str, **kwargs: Any) -> Any:
                kwargs["markup"] = kwargs["emoji"] = False
                return super().render_str(shown(text), **kwargs)

            def on_broken_pipe(self) -> None:  # rich exits 1, which reads as a runtime failure under pipefail
                quiet_broken_pipe()

        _SAFE_CONSOLE = SafeConsole
    return _SAFE_CONSOLE


def notice(message: str) -> None:
    """A one-line notice on stderr."""
    typer.echo(shown(message), err=True)


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, allow_nan=False))


def make_table(title: str, columns: Iterable[str], left: Iterable[str] = ("model", "sampler"), **kwargs: Any):
    """A rich table whose ``left`` columns are left-aligned and the others (numbers) right-aligned."""
    from rich.table import Table

    left = set(left)
    t = Table(title=title, **kwargs)
    for col in columns:
        t.add_column(col, justify="left" if col in left else "right")
    return t


# ---------------------------------------------------------------------------------------------- progress


class Bar:
    """One task of a rich progress bar; ``update`` takes rich's keywords (completed, total, advance, description)."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task

    def update(self, **fields: Any) -> None:
        if "description" in fields:
            fields["description"] = shown(fields["description"])
        self._progress.update(self._task, **fields)


@contextmanager
def progress_bar(description: str, total: int | None = None, *, completed: int = 0, disable: bool = False,
                 on_interrupt: Callable[[], None] | None = None) -> Iterator[Bar]:
    """The progress bar of every long command, on stderr. On Ctrl-C the bar stops, ``on_interrupt`` says what was
    kept, and the interrupt goes on (the CLI turns it into ``error: interrupted``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}", style="progress.description", markup=False), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console(stderr=True), transient=False,
                  disable=disable) as progress:
        task = progress.add_task(shown(description), total=total, completed=completed)
        try:
            yield Bar(progress, task)
        except KeyboardInterrupt:
            progress.stop()
            if on_interrupt is not None:
                on_interrupt()
            raise
