#!/usr/bin/env bash
# Set up, check the conventions (ruff lint + mypy, scripts/check.sh), then run the whole test
# suite. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
. .venv/bin/activate
# Tests build their models into a private cache, never the user's.
export CHIEF_CACHE_DIR="${CHIEF_CACHE_DIR:-$PWD/.venv/chief-cache}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TINKER_TELEMETRY=0
bash scripts/check.sh || { echo "scripts/check.sh failed: fix the lint or type errors above" >&2; exit 1; }
python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests"; exit 0
fi
exit "$status"
