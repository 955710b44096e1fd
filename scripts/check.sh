#!/usr/bin/env bash
# The conventions, checked by tools (settings in pyproject.toml): ruff's lint rules and ruff's
# formatting (`ruff format` fixes it) over the code, tests and benchmarks, then mypy over the
# package. Run by scripts/test.sh before pytest; needs the `dev` extra that scripts/setup.sh installs.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then
  . .venv/bin/activate
fi
status=0
echo "ruff check (lint)..."
ruff check --quiet src tests bench || status=1
echo "ruff format --check (formatting)..."
ruff format --check --quiet src tests bench || { echo "run: ruff format src tests bench" >&2; status=1; }
echo "mypy (types)..."
mypy || status=1
exit "$status"
