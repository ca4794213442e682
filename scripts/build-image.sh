#!/usr/bin/env bash
# Build the service image from the Dockerfile: `make image`, and step 1 of `make image-test`, so the image
# the test runs is the image that is pushed.
#
#   bash scripts/build-image.sh                          # IMAGE=localhost/sam2-tracker:<appVersion>
#   IMAGE=registry.example.com/sam2-tracker:0.1.0 bash scripts/build-image.sh && buildah push "$IMAGE"
#   CONTAINER_TOOL=docker BASE_IMAGE=docker.io/library/debian:bookworm-slim bash scripts/build-image.sh
#
# buildah (the default where it exists; no Docker engine is needed): the base is Debian bookworm made with
# debootstrap (scripts/make-base-image.sh), because no registry may be reachable. pip's local package stores
# (/opt/pypi*, /opt/wheels on this machine kind) are mounted into the build when they exist, so torch comes
# from disk rather than a multi-GB download, and the host's pip CA bundle is passed along.
# Extra flags for the builder: BUILD_ARGS="--build-arg TORCH_CUDA_ARCH_LIST=9.0".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/sam2-tracker/Chart.yaml)
IMAGE=${IMAGE:-localhost/sam2-tracker:$app_version}
PYTHON=${PYTHON:-$root/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
if [ -z "${CONTAINER_TOOL:-}" ]; then
  if command -v buildah >/dev/null; then CONTAINER_TOOL=buildah
  elif docker info >/dev/null 2>&1; then CONTAINER_TOOL=docker
  elif command -v podman >/dev/null; then CONTAINER_TOOL=podman
  else echo "build-image: no buildah, docker or podman (apt-get install -y buildah debootstrap)" >&2; exit 1; fi
fi
# The Debian 12 base: made here with debootstrap for buildah, pulled from Docker Hub by docker/podman.
if [ "$CONTAINER_TOOL" = buildah ]; then BASE_IMAGE=${BASE_IMAGE:-localhost/sam2-base:bookworm}
else BASE_IMAGE=${BASE_IMAGE:-docker.io/library/debian:bookworm-slim}; fi

args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
if [ "$CONTAINER_TOOL" = buildah ]; then
  # The local Debian base: made once (~45 s); BASE_IMAGE=docker.io/library/debian:bookworm-slim where a
  # registry is reachable gives the same release.
  case "$BASE_IMAGE" in localhost/*) BASE_TAG=$BASE_IMAGE bash scripts/make-base-image.sh ;; esac
  args+=(--isolation=chroot --network=host --layers)
  # pip's local package stores on this host, if any: mounted read-only, pip pointed at them.
  extra_index=() ; find_links=()
  for dir in /opt/pypi /opt/pypi-more; do
    if [ -d "$dir/simple" ]; then args+=(--volume "$dir:$dir:ro"); extra_index+=("file://$dir/simple"); fi
  done
  if [ -d /opt/wheels ]; then args+=(--volume /opt/wheels:/opt/wheels:ro); find_links+=(/opt/wheels); fi
  [ ${#extra_index[@]} -eq 0 ] || args+=(--build-arg "PIP_EXTRA_INDEX_URL=${extra_index[*]}")
  [ ${#find_links[@]} -eq 0 ] || args+=(--build-arg "PIP_FIND_LINKS=${find_links[*]}")
  # The CA bundle pip trusts here (a TLS-intercepting proxy's CA is not in the image's bundle).
  cert=$("$PYTHON" -m pip config get global.cert 2>/dev/null || true)
  [ -f "$cert" ] || cert=/etc/ssl/certs/ca-certificates.crt
  if [ -f "$cert" ]; then args+=(--volume "$cert:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt); fi
fi

t0=$(date +%s)
# shellcheck disable=SC2086
"$CONTAINER_TOOL" build "${args[@]}" ${BUILD_ARGS:-} -t "$IMAGE" -f Dockerfile .
echo "build-image: built $IMAGE in $(( $(date +%s) - t0 )) s"
