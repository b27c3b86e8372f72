"""``python -m ldmpick.cli ...``: the same as the ``ldmpick`` command."""

from ldmpick.cli import main

main()
