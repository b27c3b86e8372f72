"""Which profile ``generate`` plans on. Everything else ``generate`` settles before it loads a model is in
``ldmpick.planning`` (``plan_generation``)."""

from __future__ import annotations

import os
from typing import Any

from ldmpick.errors import UsageError


def load_profile(ref: str | None, device: str) -> Any | None:
    """``--profile``, else ``$LDMPICK_PROFILE``, else the newest profile of this device that fits generation."""
    from ldmpick import generation as gen

    env = os.environ.get("LDMPICK_PROFILE")
    if ref is None and env:
        try:
            return gen.load_profile_for(env, device)
        except UsageError as exc:  # say where the name came from
            raise UsageError(f"$LDMPICK_PROFILE: {exc}") from None
    return gen.load_profile_for(ref, device)
