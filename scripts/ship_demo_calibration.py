"""Put a calibration of the demo family into the shipped quality table (ldmpick/data/quality_points.csv).

Drops the shipped rows of every demo model (also of demo models no longer shipped), appends the demo rows of each
``--table`` (quality tables written by ``ldmpick calibrate``, e.g. ``$LDMPICK_HOME/quality_points.csv``; several when
the models were calibrated in parallel), naming ``--profile-id`` as their source (the
latency profile shipped with them), and replaces the table's closing "Demo family" comment paragraph with the text
of ``--note``. Refit the shipped law afterwards: ``ldmpick fit --out ldmpick/data/quality_law.json``.

    python scripts/ship_demo_calibration.py --table /work/calib_home/quality_points.csv \\
        --profile-id 20261128...-amd-epyc-32px-b1-cfg-fp32-eager --note demo_note.txt
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import replace
from pathlib import Path

from ldmpick.models.catalogue import DEMO_MODELS, resolve_model
from ldmpick.quality.table import read_table, shipped_table_path, table_text
from ldmpick.files.storage import atomic_write_text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True, type=Path, nargs="+")
    ap.add_argument("--profile-id", required=True)
    ap.add_argument("--note", required=True, type=Path, help="text of the new 'Demo family' comment paragraph")
    args = ap.parse_args()
    shipped_path = shipped_table_path()
    text = shipped_path.read_text(encoding="utf-8")
    comment = [ln[2:] if ln.startswith("# ") else ln[1:] for ln in text.splitlines()
               if ln.startswith("#") and not ln.startswith("# schema:")]
    cut = next((i for i, ln in enumerate(comment) if ln.startswith("Demo family")), len(comment))
    note = args.note.read_text(encoding="utf-8").strip().splitlines()
    kept = [p for p in read_table(text, "shipped") if not p.model.startswith("demo-")]
    new = [replace(p, source=f"calibrated:{args.profile_id}") for table in args.table
           for p in read_table(table.read_text(encoding="utf-8"), str(table)) if p.model in DEMO_MODELS]
    missing = sorted(set(DEMO_MODELS) - {p.model for p in new})
    if missing:
        raise SystemExit(f"{', '.join(map(str, args.table))}: no rows of {', '.join(missing)}")
    keys = Counter((p.model, p.sampler, p.steps, p.metric, p.guidance) for p in new)
    twice = sorted(k for k, n in keys.items() if n > 1)
    if twice:
        raise SystemExit(f"the tables measure {len(twice)} configurations twice, e.g. {twice[0]}: give each once")
    if len({p.num_samples for p in new}) > 1:
        raise SystemExit(f"the tables mix sample counts {sorted({p.num_samples for p in new})}: one protocol only")
    for name in DEMO_MODELS:
        ours = resolve_model(name).denoiser_params
        theirs = {p.unet_params for p in new if p.model == name}
        if theirs != {ours}:
            raise SystemExit(f"rows of {name} have {sorted(theirs)} parameters, the installed model {ours}: "
                             "calibrate the installed models")
    atomic_write_text(shipped_path, table_text(kept + new, "\n".join(comment[:cut] + note)))
    print(f"{shipped_path}: {len(kept)} other rows kept, {len(new)} demo rows written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
