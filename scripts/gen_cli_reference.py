"""Write docs/cli.md from the CLI's own --help output (tests check that it is up to date).

    python scripts/gen_cli_reference.py          # rewrite docs/cli.md
    python scripts/gen_cli_reference.py --check  # exit 1 if docs/cli.md is stale
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def command_paths(group, prefix: list[str]) -> list[list[str]]:
    """Every command path of a typer/click group, depth first, in the order they were declared."""
    import typer

    paths = [prefix]
    cmd = typer.main.get_command(group) if isinstance(group, typer.Typer) else group
    for name, sub in getattr(cmd, "commands", {}).items():
        if getattr(sub, "hidden", False):
            continue
        paths += command_paths(sub, prefix + [name])
    return paths


def render() -> str:
    from typer.testing import CliRunner

    from ldmpick.cli import app

    os.environ["COLUMNS"] = "100"
    runner = CliRunner()
    parts = ["# ldmpick command reference", "",
             "Generated from `--help` by `python scripts/gen_cli_reference.py`; do not edit by hand.", ""]
    for path in command_paths(app, []):
        result = runner.invoke(app, path + ["--help"], env={"COLUMNS": "100", "TERM": "dumb"}, terminal_width=100, prog_name="ldmpick")
        title = " ".join(["ldmpick"] + path)
        parts += [f"## `{title}`", "", "```text", result.stdout.rstrip(), "```", ""]
    return "\n".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not DOC.exists() or DOC.read_text() != text:
            print("docs/cli.md is stale: run python scripts/gen_cli_reference.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
