#!/usr/bin/env bash
# The main job: set up, then run the end-to-end demo on the embedded SmolLM2 model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec chief demo "$@"
