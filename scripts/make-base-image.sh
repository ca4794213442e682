#!/usr/bin/env bash
# Make a local Debian bookworm base image (python3 + venv) for building the Dockerfile without a registry.
#
# Where no image can be pulled (CI here reaches only PyPI / Debian / npm), `debootstrap` writes a minimal
# Debian root straight into a `buildah from scratch` container, which is committed as
# localhost/sam2-base:bookworm. It stands in for the CUDA base in `make image-test`; the Dockerfile's
# stages install what else they need. Idempotent: an existing image is kept (FORCE=1 rebuilds it).
#
#   sudo bash scripts/make-base-image.sh            # needs root, buildah, debootstrap
#   BASE_TAG=localhost/mybase:1 bash scripts/make-base-image.sh
set -euo pipefail

BASE_TAG=${BASE_TAG:-localhost/sam2-base:bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# python3-venv for the image's virtual environment; ca-certificates for pip's TLS.
PACKAGES=${PACKAGES:-python3,python3-venv,ca-certificates}

for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "make-base-image: $tool missing (apt-get install -y buildah debootstrap)" >&2; exit 1; }
done

if [ "${FORCE:-0}" != 1 ] && buildah inspect --type image "$BASE_TAG" >/dev/null 2>&1; then
  echo "make-base-image: $BASE_TAG exists (FORCE=1 to rebuild)"
  exit 0
fi

ctr=$(buildah from scratch)
cleanup() { buildah umount "$ctr" >/dev/null 2>&1 || true; buildah rm "$ctr" >/dev/null 2>&1 || true; }
trap cleanup EXIT
rootfs=$(buildah mount "$ctr")

start=$(date +%s)
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >/dev/null
# Keep the image small: package lists and caches are not needed to run, and apt-get update refills them.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
buildah umount "$ctr" >/dev/null

buildah config --env LANG=C.UTF-8 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --cmd /bin/bash --label org.opencontainers.image.description="debootstrap $SUITE minbase + $PACKAGES" "$ctr"
buildah commit --quiet --rm "$ctr" "$BASE_TAG" >/dev/null
trap - EXIT
echo "make-base-image: $BASE_TAG built in $(( $(date +%s) - start )) s"
