#!/usr/bin/env bash
# Set up, check the conventions (ruff lint + mypy, scripts/check.sh), then run the whole test
# suite in parallel (pytest-xdist). Extra arguments go to pytest. With CHIEF_RECORD_RUN=1 the
# counts and times are written into docs/BENCHMARKS.md (bench/record_run.py), the only place the
# docs quote them from.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
. .venv/bin/activate
# Tests build their models into a private cache, never the user's.
export CHIEF_CACHE_DIR="${CHIEF_CACHE_DIR:-$PWD/.venv/chief-cache}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TINKER_TELEMETRY=0
bash scripts/check.sh || { echo "scripts/check.sh failed: fix the lint or type errors above" >&2; exit 1; }
junit=""
if [ "${CHIEF_RECORD_RUN:-}" = 1 ]; then
  junit="$(mktemp --suffix=.xml)"
fi
# pytest-xdist: one worker per CPU (at least 2: most of a test's time is a subprocess starting or
# an engine answering, not this process computing), each taking a whole test file at a time so
# a file's module-scoped engine starts once. CHIEF_TEST_WORKERS=0 runs in this process, serially.
cpus="$(nproc 2>/dev/null || echo 2)"
workers="${CHIEF_TEST_WORKERS:-$(( cpus > 2 ? cpus : 2 ))}"
python -m pytest -n "$workers" --dist loadfile ${junit:+"--junitxml=$junit"} "$@"
status=$?
if [ -n "$junit" ]; then
  python bench/record_run.py tests --junit "$junit" --seconds "$SECONDS" --args "$*" \
    --workers "$workers" || status=1
  rm -f "$junit"
fi
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests"; exit 0
fi
exit "$status"
