"""A fresh process's first and second pipeline call: ``python -m ldmpick.measurement.fresh_call`` reads a
``CallRequest`` as JSON on stdin (with the model's name) and writes one JSON line of two ``CallSample``\\ s on stdout.

The first call of a process pays what a warm process has paid already (allocator growth, kernel choice, lazy
set-up in torch, diffusers and the tokenizers): it is what a user who runs ``ldmpick generate`` once per image meets
every time. ``ldmpick.measurement.pipeline_call.measure_pipeline_call`` runs this once per fresh process.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    from ldmpick.measurement.pipeline_call import fresh_first_calls

    child = json.loads(sys.stdin.read())
    print(json.dumps(fresh_first_calls(child)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
