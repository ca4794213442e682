#!/usr/bin/env bash
# Create .venv and install the service (and, with --test, what the tests need).
#
# Order matters (NOTES): torch first; then sam2, an sdist that builds against the installed torch
# (--no-build-isolation saves a second multi-GB torch download; SAM2_BUILD_CUDA=0 skips its
# optional CUDA extension, whose build otherwise fails silently without nvcc); then the rest.
# Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
EXTRAS=""
[ "${1:-}" = "--test" ] && EXTRAS="[test]"

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install -q -U pip setuptools wheel
# shellcheck disable=SC2086
"${PIP[@]}" install -q $TORCH_SPEC
if ! .venv/bin/python -c "import sam2" 2>/dev/null; then
  SAM2_BUILD_CUDA=${SAM2_BUILD_CUDA:-0} "${PIP[@]}" install -q --no-build-isolation sam2==1.1.0
fi
"${PIP[@]}" install -q -e ".${EXTRAS}"
"${PIP[@]}" check
