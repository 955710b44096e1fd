#!/usr/bin/env bash
# The main job: set up, then run the end-to-end demo on the embedded SmolLM2 model. With
# CHIEF_RECORD_RUN=1 its time is written into docs/BENCHMARKS.md (bench/record_run.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
if [ "${CHIEF_RECORD_RUN:-}" != 1 ]; then
  exec chief demo "$@"
fi
start=$SECONDS
status=0
chief demo "$@" || status=$?
python bench/record_run.py demo --seconds "$((SECONDS - start))" --script-seconds "$SECONDS" --exit-code "$status"
exit "$status"
