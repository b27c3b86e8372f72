#!/usr/bin/env bash
# Ship a retrained demo family (issue 13): every step that turns the folders written by
#   ldmpick demo train --out RUN            (RUN/demo-c<c>/ for each c of demo_train.DEMO_CHANNELS)
# into what the package ships, in the order the data depend on each other:
#   1. the model folders and family_training.json  -> ldmpick/demo_models/ (retired demo-c* folders removed)
#   2. the demo latency profile of this machine    -> profiles/cpu-amd-epyc-2core-demo-32px-fp32-eager.json
#      (needs a quiet machine: nothing else running; the load average is recorded in the file)
#   3. the calibration (FID and prompt accuracy, 256 images per configuration, steps 1-32, 4 samplers) into a
#      throwaway LDMPICK_HOME, one process per sampler pair (each one thread); CAL_MODELS=a,b calibrates only those
#      models (the others' tables already under $CAL/<name>/data/, e.g. calibrated while a bigger model trained)
#   4. the calibrated rows into ldmpick/data/quality_points.csv (scripts/ship_demo_calibration.py, naming the new
#      profile), the law refitted (ldmpick/data/quality_law.json), parameter counts, the CLI reference
# Then rerun the proof and the colour check by hand (docs/demo.md says how) and update the docs' numbers.
# Usage: scripts/ship_demo_family.sh RUN NOTE_FILE [STEP]   (STEP: start at step 1-4; default 1)
#   NOTE_FILE: the text of the quality table's closing "Demo family" comment (what was measured, where, when).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUN="$(cd "$1" && pwd)"
NOTE="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
FROM="${3:-1}"
cd "$ROOT"
MODELS="$(python -c 'from ldmpick.models.catalogue import DEMO_MODELS; print(",".join(DEMO_MODELS))')"
PROFILE=profiles/cpu-amd-epyc-2core-demo-32px-fp32-eager.json
CAL="${CAL_HOME:-$RUN/_calibration}"

if [ "$FROM" -le 1 ]; then
  for m in ${MODELS//,/ }; do
    [ -f "$RUN/$m/training.json" ] || { echo "error: $RUN/$m is not a finished model folder" >&2; exit 2; }
  done
  python -c "import json,sys; m=json.load(open(sys.argv[1]))['models']; miss=set(sys.argv[2].split(','))-set(m); \
sys.exit(f'error: {sys.argv[1]} lacks {sorted(miss)}' if miss else 0)" "$RUN/family_training.json" "$MODELS"
  for old in ldmpick/demo_models/demo-c*/; do
    git rm -rqf --ignore-unmatch "$old"; rm -rf "$old"
  done
  for m in ${MODELS//,/ }; do cp -r "$RUN/$m" ldmpick/demo_models/; done
  cp "$RUN/family_training.json" ldmpick/demo_models/
  # diffusers records where a component was loaded from (the run's folder): not a fact of the shipped model
  python - ldmpick/demo_models/demo-c*/*/config.json <<'PY'
import json, sys
for path in sys.argv[1:]:
    cfg = json.load(open(path))
    if cfg.pop("_name_or_path", None) is not None:
        open(path, "w").write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
PY
  git add ldmpick/demo_models
  du -sb ldmpick/demo_models
fi
if [ "$FROM" -le 2 ]; then
  uptime
  ldmpick profile --models "$MODELS" --device cpu --resolution 32 --repeats 60 --rounds 6 --warmup 5 \
    --max-seconds 20 --out "$PROFILE"
fi
if [ "$FROM" -le 3 ]; then
  mkdir -p "$CAL/a" "$CAL/b"
  common=(calibrate --models "${CAL_MODELS:-$MODELS}" --steps 1,2,4,8,16,32 --samples 256 --no-fit --threads 1)
  LDMPICK_HOME="$CAL/a" ldmpick "${common[@]}" --samplers ddim,dpmpp-2m > "$CAL/a.log" 2>&1 &
  a=$!
  LDMPICK_HOME="$CAL/b" ldmpick "${common[@]}" --samplers euler,unipc > "$CAL/b.log" 2>&1 &
  b=$!
  trap 'kill "$a" "$b" 2>/dev/null' EXIT
  wait "$a" || { echo "error: calibration a failed: $CAL/a.log" >&2; exit 1; }
  wait "$b" || { echo "error: calibration b failed: $CAL/b.log" >&2; exit 1; }
  trap - EXIT
fi
if [ "$FROM" -le 4 ]; then
  PID="$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['id'])" "$PROFILE")"
  shopt -s nullglob
  tables=("$CAL"/*/data/quality_points.csv)
  [ "${#tables[@]}" -gt 0 ] || { echo "error: no calibration tables under $CAL" >&2; exit 1; }
  python scripts/ship_demo_calibration.py --table "${tables[@]}" \
    --profile-id "$PID" --note "$NOTE"
  # in an empty LDMPICK_HOME: the shipped law is fitted on the shipped table only, never on this user's own rows
  LDMPICK_HOME="$(mktemp -d)" ldmpick fit --out ldmpick/data/quality_law.json
  python scripts/build_param_counts.py
  python scripts/gen_cli_reference.py
fi
