"""Does a profile still hold? ``generate`` compares each run's measured parts (text encoder, denoising loop, VAE
decode; the median over the run's prompts) with the plan's prediction and keeps the ratios of the last runs per
profile (``<data>/latency-drift/``, schema ``ldmpick.latency-drift/1``). When a part has been more than 15% off in
the same direction in each of the last 3 runs, the profile no longer describes the machine (a driver, a thermal
limit, other work): ``drift_warning`` says so and how to refresh it. One slow run is noise, not drift. No printing.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ldmpick.files.errors import LdmpickError, UsageError

SCHEMA = "ldmpick.latency-drift/1"
DRIFT_LIMIT = 0.15  # a part off by more than this fraction of its prediction has drifted
RUNS_NEEDED = 3  # ... in each of this many latest runs
KEEP_RUNS = 10
PARTS = {"text_encoder_ms": "text encoder", "denoise_ms": "denoising loop", "vae_decode_ms": "VAE decode"}
MAX_FILE_BYTES = 256 * 1024


@dataclass
class Drift:
    parts: dict[str, list[float]]  # part (a key of PARTS) -> measured / predicted in the latest runs, oldest first

    def message(self, profile_id: str, refresh: str) -> str:
        said = []
        for part, ratios in self.parts.items():
            way = "slower" if ratios[-1] > 1 else "faster"
            said.append(f"the {PARTS[part]} ran {way} ({', '.join(f'{r:.2f}x' for r in ratios)})")
        runs = len(next(iter(self.parts.values())))
        return (f"warning: in each of the last {runs} runs {' and '.join(said)} than profile '{profile_id}' predicts; "
                f"the profile may no longer describe this machine: refresh it with '{refresh}'")


def run_ratios(prediction: Any, prompts: list[Any]) -> dict[str, float]:
    """measured / predicted per part, each measured part the median over the run's prompts (``PromptResult``)."""
    ratios = {}
    for part in PARTS:
        predicted = getattr(prediction, part)
        values = sorted(getattr(p.times, part) for p in prompts)
        if predicted > 0 and values:
            ratios[part] = statistics.median(values) / predicted
    return ratios


def drift_of(history: list[dict[str, float]]) -> Drift | None:
    """The parts more than DRIFT_LIMIT off, the same way, in each of the latest RUNS_NEEDED runs (None: none)."""
    latest = history[-RUNS_NEEDED:]
    if len(latest) < RUNS_NEEDED:
        return None
    drifted = {}
    for part in PARTS:
        ratios = [run.get(part) for run in latest]
        if any(r is None for r in ratios):
            continue
        if all(r > 1 + DRIFT_LIMIT for r in ratios) or all(r < 1 - DRIFT_LIMIT for r in ratios):
            drifted[part] = [float(r) for r in ratios]
    return Drift(drifted) if drifted else None


def history_path(profile_id: str) -> Path:
    from ldmpick.files.storage import data_dir

    digest = hashlib.sha256(profile_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return data_dir() / "latency-drift" / f"{digest}.json"


def read_history(profile_id: str) -> list[dict[str, float]]:
    """The ratios kept for ``profile_id``, oldest first; a missing or unreadable file is an empty history."""
    from ldmpick.files.reader import read_json_file

    path = history_path(profile_id)
    if not path.exists():
        return []
    try:
        doc = read_json_file(path, "latency drift history", max_bytes=MAX_FILE_BYTES)
    except UsageError:
        return []
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("profile") != profile_id:
        return []
    runs = []
    for run in doc.get("runs", []) if isinstance(doc.get("runs"), list) else []:
        ratios = run.get("ratios") if isinstance(run, dict) else None
        if isinstance(ratios, dict):
            clean = {k: float(v) for k, v in ratios.items() if k in PARTS and isinstance(v, (int, float))
                     and not isinstance(v, bool) and 0 < v < math.inf}
            runs.append(clean)
    return runs[-KEEP_RUNS:]


def record_run(profile_id: str, ratios: dict[str, float]) -> Drift | None:
    """Add one run's ratios to the profile's history (under a lock) and say whether the profile has drifted."""
    from ldmpick.files.storage import atomic_write_json, file_lock

    path = history_path(profile_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        history = (read_history(profile_id) + [ratios])[-KEEP_RUNS:]
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        atomic_write_json(path, {"schema": SCHEMA, "profile": profile_id, "updated": now,
                                 "runs": [{"ratios": {k: round(v, 4) for k, v in r.items()}} for r in history]})
    return drift_of(history)


def check_run(plan: Any, result: Any) -> str | None:
    """Keep a finished run's measured / predicted parts (a ``planning.GenerationPlan`` and its
    ``generation.GenerationResult``) and return the warning when the profile has drifted over the last runs. Only
    runs with the profile's own settings count: a run that differs from them is expected to miss."""
    if plan.latency is None or plan.mismatches or not result.prompts:
        return None
    try:
        drift = record_run(plan.profile.id, run_ratios(plan.latency, result.prompts))
    except (OSError, LdmpickError) as exc:  # a read-only or full LDMPICK_HOME must not fail a written run
        if isinstance(exc, OSError):  # (atomic writes and locks report theirs as RuntimeFailure)
            why = f"cannot write '{exc.filename or history_path(plan.profile.id).parent}': {exc.strerror or exc}"
        else:
            why = str(exc)
        return f"warning: latency history not kept ({why}); the images and the run record were written"
    if drift is None:
        return None
    import shlex

    s = plan.settings
    refresh = (f"ldmpick profile --models {shlex.quote(s.source)} --resolution {s.resolution} --batch {s.n} "
               f"--device {s.device} --dtype {s.dtype} --mode {s.mode}")
    return drift.message(plan.profile.id, refresh)
