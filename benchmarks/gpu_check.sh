#!/bin/sh
# The project's GPU checks in one run (see benchmarks/gpu_check.py): prints one table, writes JSON.
#   benchmarks/gpu_check.sh [--dry-run] [--steps a,b] [--json FILE] [--golden DIR]
# Uses the project's .venv when there is one (make install), else python3 with src/ on the path.
set -eu
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
if [ -x "$root/.venv/bin/python" ]; then py="$root/.venv/bin/python"; else py=python3; fi
cd "$root"
PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" exec "$py" benchmarks/gpu_check.py "$@"
