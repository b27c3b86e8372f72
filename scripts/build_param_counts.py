"""Build ldmpick/data/param_counts.json: the parameter counts of every built-in model's modules (denoiser, text
encoders, VAE), so that 'ldmpick models list' need not build them. Counts are made on torch's meta device from the
shipped configs; tests/test_model_catalogue_data.py recounts every entry.

    python scripts/build_param_counts.py
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path


def main() -> int:
    from ldmpick.models.catalogue import is_builtin, known_names
    from ldmpick.models.catalogue import builtin_param_counts
    from ldmpick.models.families.base import ParamCountCache

    counts = builtin_param_counts()
    doc = {"schema": "ldmpick.param-counts/1",
           "provenance": {"command": "python scripts/build_param_counts.py",
                          "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                          "source": "the built-in models' shipped configs, built on torch's meta device",
                          "models": sorted(n for n in known_names() if is_builtin(n))},
           "counts": dict(sorted(counts.items()))}
    path = ParamCountCache.shipped_path()
    Path(path).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"{len(counts)} counts written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
