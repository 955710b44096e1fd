#!/usr/bin/env bash
# The conventions, checked by tools (settings in pyproject.toml): ruff's lint rules over the
# code, tests and benchmarks, then mypy over the package. Run by scripts/test.sh before pytest;
# needs the `dev` extra that scripts/setup.sh installs. Formatting (`ruff format`) is not checked yet.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then
  . .venv/bin/activate
fi
status=0
echo "ruff check (lint)..."
ruff check --quiet src tests bench || status=1
echo "mypy (types)..."
mypy || status=1
exit "$status"
