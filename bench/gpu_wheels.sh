#!/usr/bin/env bash
# Here, before a device run: fetch the wheels the device image lacks into bench/gpu_wheels/ (ignored by git; the
# device tool carries it: carry=["bench/gpu_wheels"]). The device reaches no registry (bench/GPU.md).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf bench/gpu_wheels && mkdir -p bench/gpu_wheels
python3 -m pip download --quiet --no-deps --only-binary=:all: -d bench/gpu_wheels \
    "diffusers==$(python3 -c 'import diffusers; print(diffusers.__version__)')" \
    "platformdirs==$(python3 -c 'import platformdirs; print(platformdirs.__version__)')"
ls -la bench/gpu_wheels
