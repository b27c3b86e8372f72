#!/usr/bin/env bash
# The installed wheel works on its own (issue 11 item 16): build it, install it in a fresh virtual environment, and
# run, from outside the checkout and with an empty LDMPICK_HOME, a command that reads each kind of shipped data:
#   calibrate   the world judge's weights and the demo models (demo_models/*/...safetensors)
#   recommend   the reference profiles and the quality law
#   models list the catalogue of released-model configs
# Usage: scripts/check_wheel.sh [PYTHON]   (PYTHON builds the wheel; default python3). In a fresh virtual
# environment this takes a minute or more, most of it installing the dependencies (TORCH_SPEC picks torch; default:
# the CPU build on this machine's disk). WHEEL_VENV=DIR installs the wheel (no dependencies, replacing any ldmpick
# there) into an existing virtual environment instead: seconds; .ci/run does this with its own throwaway one.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${1:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/src" "$WORK/run"
cp -r "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/ldmpick" "$ROOT/profiles" "$WORK/src/"  # no build/ left behind
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
ISOLATION=""
if "$PYTHON" -c "import setuptools" 2>/dev/null; then ISOLATION="--no-build-isolation"; fi  # no index needed
"$PYTHON" -m pip wheel --quiet --no-deps $ISOLATION -w "$WORK/wheel" "$WORK/src"
if [ -n "${WHEEL_VENV:-}" ]; then
  VENV="$WHEEL_VENV"
  "$VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall "$WORK"/wheel/ldmpick-*.whl
else
  VENV="$WORK/venv"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}" "$WORK"/wheel/ldmpick-*.whl
fi
export LDMPICK_HOME="$WORK/home" HF_HUB_OFFLINE=1
cd "$WORK/run"  # not the checkout or the sources: only the installed package can be found
LDMPICK="$VENV/bin/ldmpick"
"$VENV/bin/python" - <<'PY'
import ldmpick, pathlib
where = pathlib.Path(ldmpick.__file__).parent
assert "site-packages" in str(where), where
for f in ("data/world_judge.safetensors", "data/quality_law.json", "data/models/catalogue.json"):
    assert (where / f).is_file(), f
print(f"installed at {where}")
PY
"$LDMPICK" calibrate --models demo-c8 --samplers ddim --steps 1,2 --samples 8 --threads 1 --no-fit --json >"$WORK/cal.json"
"$VENV/bin/python" -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['results']) == 2, d" "$WORK/cal.json"
"$LDMPICK" recommend --budget 2s >/dev/null
"$LDMPICK" models list --json | "$VENV/bin/python" -c "import json,sys; rows=json.load(sys.stdin); assert any(r['kind']=='catalogue' and not r['problem'] for r in rows), rows"
"$LDMPICK" generate "a red circle" --model demo-c8 --steps 2 --seed 0 --threads 1 --out "$WORK/images" >/dev/null
ls "$WORK/images"/0001-*.png >/dev/null
echo "wheel check: ok (calibrate, recommend, models list, generate from the installed wheel)"
