#!/usr/bin/env bash
# Build the Dockerfile's CPU variant here and prove the image serves: the `make image-test` target.
#
# No Docker engine and no registry here, so:
#   1. scripts/make-base-image.sh makes localhost/sam2-base:bookworm with debootstrap (once, ~45 s);
#   2. buildah builds the Dockerfile on it with SAM2_BUILD_CUDA=0 (chroot isolation, host network for
#      PyPI). pip's local wheel stores (/opt/pypi*, /opt/wheels on this machine kind) are mounted
#      into the build when they exist, so torch comes from disk rather than a multi-GB download;
#   3. a random-weight tiny checkpoint is written with tools/random_checkpoint.py;
#   4. the image's own ENTRYPOINT and ENV run the way the chart runs it: uid 1000, read-only root
#      filesystem, a fresh tmpfs on /tmp, the checkpoint read-only under /mnt/models, no network use;
#   5. /health must answer 200 (model loaded and warm), /v2/health/live and /metrics must answer, a
#      12-frame video POSTed to /track must come back as a ZIP of 12 masks, and SIGTERM must end the
#      process with status 0 within the grace period.
# Needs root, buildah, debootstrap, util-linux (unshare), python3 with the project's deps (for step 3).
#
#   bash scripts/image-test.sh                 # IMAGE=localhost/sam2-tracker:cpu-test
#   NO_BUILD=1 bash scripts/image-test.sh      # reuse the built image
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
IMAGE=${IMAGE:-localhost/sam2-tracker:cpu-test}
BASE_IMAGE=${BASE_IMAGE:-localhost/sam2-base:bookworm}
PYTHON=${PYTHON:-$root/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-300}
GRACE=${GRACE:-30}
t0=$(date +%s)
log() { printf '[image-test %4ds] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

for tool in buildah unshare; do
  command -v "$tool" >/dev/null || { echo "image-test: $tool missing (apt-get install -y buildah debootstrap)" >&2; exit 1; }
done

# ---- 1 + 2: base and image
if [ "${NO_BUILD:-0}" != 1 ]; then
  BASE_TAG=$BASE_IMAGE bash scripts/make-base-image.sh
  log "base ready: $BASE_IMAGE"
  build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "BUILD_IMAGE=$BASE_IMAGE" --build-arg SAM2_BUILD_CUDA=0)
  # pip's local package stores on this host, if any: mount them read-only and point pip at them.
  extra_index=() ; find_links=()
  for dir in /opt/pypi /opt/pypi-more; do
    if [ -d "$dir/simple" ]; then build_args+=(--volume "$dir:$dir:ro"); extra_index+=("file://$dir/simple"); fi
  done
  if [ -d /opt/wheels ]; then build_args+=(--volume /opt/wheels:/opt/wheels:ro); find_links+=(/opt/wheels); fi
  # The CA bundle pip trusts here (a TLS-intercepting proxy's CA is not in the image's bundle).
  cert=$("$PYTHON" -m pip config get global.cert 2>/dev/null || true)
  [ -f "$cert" ] || cert=/etc/ssl/certs/ca-certificates.crt
  if [ -f "$cert" ]; then build_args+=(--volume "$cert:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt); fi
  [ ${#extra_index[@]} -eq 0 ] || build_args+=(--build-arg "PIP_EXTRA_INDEX_URL=${extra_index[*]}")
  [ ${#find_links[@]} -eq 0 ] || build_args+=(--build-arg "PIP_FIND_LINKS=${find_links[*]}")
  # The host caps torch at the version its store holds; the image gets the same torch.
  build_args+=(--build-arg "TORCH_SPEC=${TORCH_SPEC:-torch==2.14.1}")
  b0=$(date +%s)
  buildah build --isolation=chroot --network=host --layers "${build_args[@]}" -t "$IMAGE" -f Dockerfile .
  log "built $IMAGE in $(( $(date +%s) - b0 )) s ($(buildah images --format '{{.Size}}' "$IMAGE" | head -n1))"
fi

# ---- 3: a random-weight checkpoint (never committed; ~2 s, 149 MiB)
work=$(mktemp -d)
ctr=""; pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  if [ -n "$ctr" ]; then buildah umount "$ctr" >/dev/null 2>&1 || true; buildah rm "$ctr" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/models"
"$PYTHON" tools/random_checkpoint.py --model_size tiny --out "$work/models/sam2.1_hiera_tiny.pt" >/dev/null
log "random checkpoint written"

# ---- 4: run the image's entrypoint as the chart does
ctr=$(buildah from "$IMAGE")
rootfs=$(buildah mount "$ctr")
buildah inspect --type image "$IMAGE" > "$work/inspect.json"
config() { "$PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1]))["OCIv1"]["config"]; v=c.get(sys.argv[2]) or sys.argv[3:]; print("\n".join(v) if isinstance(v, list) else v)' "$work/inspect.json" "$@"; }
mapfile -t env_vars < <(config Env)
mapfile -t entrypoint < <(config Entrypoint)
user=$(config User 0)
workdir=$(config WorkingDir /)
[ "${entrypoint[*]}" = "python -m model" ] || { echo "image-test: ENTRYPOINT is '${entrypoint[*]}'" >&2; exit 1; }
[ "$user" = "1000:1000" ] || { echo "image-test: USER is '$user', expected 1000:1000" >&2; exit 1; }
if find "$rootfs" -xdev -name '*.pt' -size +1M 2>/dev/null | grep -q .; then
  echo "image-test: the image contains checkpoints" >&2; exit 1
fi

port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
grpc_port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
args=(--model_name sam2 --model_size tiny --model_dir /mnt/models --image_size 256 --device cpu
      --http_port "$port" --grpc_port "$grpc_port" --grace_period "$GRACE")

# A private mount namespace: the image's root read-only, tmpfs /tmp, weights read-only; then the
# entrypoint as uid 1000 with exactly the image's environment (env -i).
# shellcheck disable=SC2016
unshare --mount --propagation private sh -ec '
  rootfs=$1; models=$2; user=$3; workdir=$4; shift 4
  mount --bind "$rootfs" "$rootfs"
  mount -o remount,bind,ro "$rootfs"
  mount -t tmpfs -o size=2g,mode=1777 tmpfs "$rootfs/tmp"
  mount -t proc proc "$rootfs/proc"
  mount --rbind /dev "$rootfs/dev"
  mount --bind "$models" "$rootfs/mnt/models"; mount -o remount,bind,ro "$rootfs/mnt/models"
  exec chroot --userspec="$user" "$rootfs" /usr/bin/env -i --chdir="$workdir" "$@"
' sh "$rootfs" "$work/models" "$user" "$workdir" "${env_vars[@]}" "${entrypoint[@]}" "${args[@]}" \
  >"$work/server.log" 2>&1 &
pid=$!
log "started the entrypoint (pid $pid) on port $port"

status() { "$PYTHON" - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
PY
}

s0=$(date +%s)
code=0
while [ $(( $(date +%s) - s0 )) -lt "$HEALTH_TIMEOUT" ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "image-test: the server exited early:" >&2; tail -n 40 "$work/server.log" >&2; exit 1
  fi
  code=$(status "http://127.0.0.1:$port/health")
  [ "$code" = 200 ] && break
  sleep 2
done
if [ "$code" != 200 ]; then
  echo "image-test: /health answered $code after ${HEALTH_TIMEOUT}s" >&2; tail -n 40 "$work/server.log" >&2; exit 1
fi
log "/health 200 after $(( $(date +%s) - s0 )) s"
for path in /v2/health/live /v2/health/ready /v2/models/sam2/ready /metrics; do
  code=$(status "http://127.0.0.1:$port$path")
  [ "$code" = 200 ] || { echo "image-test: $path answered $code" >&2; tail -n 40 "$work/server.log" >&2; exit 1; }
done
log "/v2/health/live, /v2/health/ready, /v2/models/sam2/ready, /metrics: 200"

# One real request: a 12-frame video, one click; the answer must be a ZIP with a mask per frame.
"$PYTHON" - "$work/video.avi" "http://127.0.0.1:$port/track?frame_idx=0&points=160,120" <<'PY'
import io, sys, urllib.request, zipfile
import cv2, numpy as np
path, url = sys.argv[1], sys.argv[2]
out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 12, (320, 240))
for i in range(12):
    frame = np.full((240, 320, 3), 40, np.uint8)
    cv2.circle(frame, (120 + 6 * i, 120), 40, (30, 200, 240), -1)
    out.write(frame)
out.release()
req = urllib.request.Request(url, data=open(path, "rb").read(), headers={"Content-Type": "application/octet-stream"})
with urllib.request.urlopen(req, timeout=300) as r:
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/zip"), (r.status, r.headers)
    names = zipfile.ZipFile(io.BytesIO(r.read())).namelist()
masks = [n for n in names if n.startswith("masks/") and n.endswith(".png")]
assert len(masks) == 12 and "manifest.json" in names, names
PY
log "/track: 200, a ZIP with 12 masks and manifest.json"

# ---- 5: SIGTERM drains and exits 0
kill -TERM "$pid"
d0=$(date +%s); rc=0
while kill -0 "$pid" 2>/dev/null && [ $(( $(date +%s) - d0 )) -le $(( GRACE + 10 )) ]; do sleep 1; done
if kill -0 "$pid" 2>/dev/null; then
  echo "image-test: still running $(( GRACE + 10 )) s after SIGTERM" >&2; tail -n 20 "$work/server.log" >&2; exit 1
fi
wait "$pid" || rc=$?
pid=""
[ "$rc" = 0 ] || { echo "image-test: exit status $rc after SIGTERM" >&2; tail -n 20 "$work/server.log" >&2; exit 1; }
log "SIGTERM: exited 0 after $(( $(date +%s) - d0 )) s"
log "PASS ($IMAGE)"
