"""Profiles: the schema of a latency profile (``schema``), its field checks (``fields``), its device block
(``device_block``), where profiles live (``store``), CSV/Markdown export and diff (``export``), the library of
profiles (``library``) and the one policy for which profile a command uses (``choice``). Imports ``models``,
``hardware``, ``demo`` and ``files``."""
