#!/usr/bin/env bash
# On the device machine (Python 3.12, torch 2.11, transformers 5.17, no diffusers, no registry): install what its
# image lacks from the wheels carried with the working tree (bench/gpu_wheels.sh fills that folder here), without
# dependencies, and say what the suite will run on. ldmpick itself runs from the tree (gpu_suite.py sets PYTHONPATH).
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
wheels=(bench/gpu_wheels/*.whl)
if [ ${#wheels[@]} -eq 0 ]; then
    echo "gpu_bootstrap: no wheels in bench/gpu_wheels (run bench/gpu_wheels.sh here, then carry that folder)" >&2
    exit 2
fi
python3 -m pip install --no-deps --no-index --quiet "${wheels[@]}"
python3 - <<'PY'
import diffusers, platformdirs, torch, transformers
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
print(f"gpu_bootstrap: python {__import__('sys').version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"diffusers {diffusers.__version__}, transformers {transformers.__version__}, platformdirs "
      f"{platformdirs.__version__}, GPU {gpu}")
PY
