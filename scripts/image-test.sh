#!/usr/bin/env bash
# Build the image that ships and prove it serves, run the way the chart runs it: `make image-test`.
#
# No Docker engine, no registry and no GPU here, so:
#   1. scripts/build-image.sh builds the Dockerfile exactly as `make image` does (buildah, Debian base made
#      with debootstrap, torch and the CUDA wheels from the local wheel store, sam2._C compiled with nvcc);
#   2. the image's config: exec-form ENTRYPOINT `python -m model`, USER 1000:1000, a root-owned WORKDIR, no
#      checkpoint inside;
#   3. sam2._C holds SASS for every architecture torch itself ships (read from the extension's fatbin);
#   4. inside the image (uid 1000, read-only root): torch is a CUDA 13 build, cuDNN answers, and every CUDA
#      library torch may load opens; only the driver's libcuda.so.1, which the node's NVIDIA container
#      toolkit mounts, may be missing;
#   5. Triton's launcher build, the step a --compile pod runs at its first compiled call, finds the C compiler
#      and Python.h (triton.runtime.build, the same call and include paths as CudaUtils; without the driver
#      only -lcuda is left out) and writes its module into TRITON_CACHE_DIR under /tmp;
#   6. the server starts as the chart starts it: the container args and env rendered by the chart
#      (`helm template`, CPU values: tiny model, image size 256), uid 1000, read-only root filesystem, a tmpfs
#      /tmp of the chart's sizeLimit, the weights read-only in /mnt/models (a random-weight tiny checkpoint),
#      `env -i` + the image's ENV. /health, the probes' paths and /metrics answer 200; a 12-frame video
#      POSTed to /track comes back as a ZIP with 12 masks; SIGTERM ends it with status 0;
#   7. a compile-mode start (`model.compile=true` args, on this CPU: Inductor compiles C++ with the image's
#      g++ and Python.h) reaches /health 200 (COMPILE_START=0 skips it);
#   8. POST /v2/repository/models/sam2/unload on a fresh start: 404, and /v2/health/ready still 200.
# Needs root, buildah, debootstrap, util-linux (unshare), .tools/bin/helm and the project venv.
#
#   bash scripts/image-test.sh                 # IMAGE=localhost/sam2-tracker:<appVersion>
#   NO_BUILD=1 bash scripts/image-test.sh      # test the image already built
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/sam2-tracker/Chart.yaml)
IMAGE=${IMAGE:-localhost/sam2-tracker:$app_version}
PYTHON=${PYTHON:-$root/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
HELM=${HELM:-$root/.tools/bin/helm}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-300}
COMPILE_START=${COMPILE_START:-1}
COMPILE_TIMEOUT=${COMPILE_TIMEOUT:-900}
GRACE=${GRACE:-30}
t0=$(date +%s)
log() { printf '[image-test %4ds] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
die() { echo "image-test: FAIL: $*" >&2; exit 1; }

for tool in buildah unshare; do
  command -v "$tool" >/dev/null || die "$tool missing (apt-get install -y buildah debootstrap)"
done
[ -x "$HELM" ] || bash scripts/install-k8s-tools.sh

# ---- 1: the image `make image` builds
if [ "${NO_BUILD:-0}" != 1 ]; then
  b0=$(date +%s)
  IMAGE=$IMAGE CONTAINER_TOOL=buildah bash scripts/build-image.sh
  log "built $IMAGE in $(( $(date +%s) - b0 )) s"
fi
log "image $IMAGE: $(buildah images --format '{{.Size}}' "$IMAGE" | head -n1)"

work=$(mktemp -d)
ctr=""; pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  if [ -n "$ctr" ]; then buildah umount "$ctr" >/dev/null 2>&1 || true; buildah rm "$ctr" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# ---- 2: the image's config
ctr=$(buildah from "$IMAGE")
rootfs=$(buildah mount "$ctr")
buildah inspect --type image "$IMAGE" > "$work/inspect.json"
config() { "$PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1]))["OCIv1"]["config"]; v=c.get(sys.argv[2]) or sys.argv[3:]; print("\n".join(v) if isinstance(v, list) else v)' "$work/inspect.json" "$@"; }
mapfile -t env_vars < <(config Env)
mapfile -t entrypoint < <(config Entrypoint)
user=$(config User 0)
workdir=$(config WorkingDir /)
[ "${entrypoint[*]}" = "python -m model" ] || die "ENTRYPOINT is '${entrypoint[*]}'"
[ "$user" = "1000:1000" ] || die "USER is '$user', expected 1000:1000"
[ "$(stat -c %u "$rootfs$workdir")" = 0 ] || die "WORKDIR $workdir is not root-owned"
if find "$rootfs" -xdev \( -name '*.pt' -o -name '*.pth' \) -size +1M 2>/dev/null | grep -q .; then
  die "the image contains checkpoints"
fi
site=$(cd "$rootfs" && ls -d opt/venv/lib/python3*/site-packages)
[ ! -e "$rootfs/$site/nvidia/cu13/bin/nvcc" ] || die "the build-only CUDA compiler is left in the image"
log "config: ENTRYPOINT [python -m model], USER 1000:1000, root-owned WORKDIR $workdir, no weights"

# in_image CMD...: run CMD inside the image the way a pod runs it: a private mount namespace, the image's
# root read-only, a fresh tmpfs /tmp ($tmp_size), the weights read-only under /mnt/models, uid 1000, and
# exactly the image's environment plus $extra_env (env -i). It exec's: call it in a subshell, `( in_image ... )`,
# so that a background one's $! is the server process itself (SIGTERM must reach python, not a shell).
tmp_size=2g
extra_env=()
in_image() {
  # shellcheck disable=SC2016
  exec unshare --mount --propagation private sh -ec '
    rootfs=$1; models=$2; user=$3; workdir=$4; tmp_size=$5; shift 5
    mount --bind "$rootfs" "$rootfs"
    mount -o remount,bind,ro "$rootfs"
    mount -t tmpfs -o size="$tmp_size",mode=1777 tmpfs "$rootfs/tmp"
    mount -t proc proc "$rootfs/proc"
    mount --rbind /dev "$rootfs/dev"
    mount --bind "$models" "$rootfs/mnt/models"; mount -o remount,bind,ro "$rootfs/mnt/models"
    exec chroot --userspec="$user" "$rootfs" /usr/bin/env -i --chdir="$workdir" "$@"
  ' sh "$rootfs" "$work/models" "$user" "$workdir" "$tmp_size" "${env_vars[@]}" "${extra_env[@]}" "$@"
}
mkdir -p "$work/models"

# ---- 3 + 4: the CUDA libraries torch will load, and sam2._C's architectures
( in_image python -c '
import ctypes, glob, os, sys, sysconfig
import torch
site = sysconfig.get_paths()["purelib"]
assert torch.version.cuda and torch.version.cuda.startswith("13."), torch.version.cuda
assert not torch.cuda.is_available()          # no GPU here: must say so, not crash
cudnn = torch.backends.cudnn.version()        # opens libcudnn.so.9
import sam2._C                                # links libcudart.so.13 and torch
# Every library torch and the nvidia-* wheels ship, in as many passes as their own load order needs.
# Left out: NVSHMEM bootstrap/transport plugins and cuFile RDMA, loaded only with MPI/PMIx/UCX/RDMA stacks.
optional = ("nvshmem_bootstrap_", "nvshmem_transport_", "libcufile_rdma")
todo = sorted(p for p in glob.glob(site + "/torch/lib/*.so*") + glob.glob(site + "/nvidia/*/lib/*.so*")
              if not os.path.basename(p).startswith(optional))
loaded, errors = 0, {}
for _ in range(3):
    errors = {}
    for path in todo:
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            loaded += 1
        except OSError as exc:
            errors[path] = str(exc)
    todo = sorted(errors)
driver = sorted(os.path.basename(p) for p, e in errors.items() if "libcuda.so.1" in e)
other = {os.path.basename(p): e for p, e in errors.items() if "libcuda.so.1" not in e}
assert not other, other
print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", cudnn, "libraries opened:", loaded,
      "needing the driver (node-provided libcuda.so.1):", ", ".join(driver) or "none")
print("ARCHES", torch._C._cuda_getArchFlags())
' ) > "$work/cuda.txt" 2>&1 || { cat "$work/cuda.txt" >&2; die "CUDA libraries"; }
grep -v '^ARCHES' "$work/cuda.txt" | sed 's/^/  /'
torch_arches=$(sed -n 's/^ARCHES //p' "$work/cuda.txt")
"$PYTHON" - "$rootfs/$site/sam2/_C.so" "$torch_arches" <<'PY' || die "sam2._C architectures"
import struct, sys
# The .nv_fatbin of a CUDA extension: a header (magic 0xBA55ED50, version, header size, payload size), then
# entries (kind 1 = PTX, 2 = SASS/ELF; header size; payload size; ...; arch at offset 28).
data = open(sys.argv[1], "rb").read()
magic, found = struct.pack("<I", 0xBA55ED50), set()
start = data.find(magic)
while start != -1:
    _, header, size = struct.unpack_from("<HHQ", data, start + 4)
    off, end = start + header, start + header + size
    while off < end:
        kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, off)
        found.add(("sm" if kind == 2 else "compute", struct.unpack_from("<I", data, off + 28)[0]))
        off += entry_header + payload
    start = data.find(magic, end)
torch_sm = {int(a[3:]) for a in sys.argv[2].split() if a.startswith("sm_")}
sass = {arch for kind, arch in found if kind == "sm"}
print("  sam2._C: SASS", " ".join(f"sm_{a}" for a in sorted(sass)), "+ PTX",
      " ".join(f"compute_{a}" for kind, a in sorted(found) if kind == "compute"),
      "| torch:", " ".join(f"sm_{a}" for a in sorted(torch_sm)))
missing = torch_sm - sass
assert torch_sm and not missing, f"sam2._C lacks {missing} that torch runs on"
PY
log "CUDA: torch's libraries load without a GPU; sam2._C covers every architecture torch ships"

# ---- 5: Triton's compiler check (what a --compile pod does at its first compiled call)
( in_image python -c '
import os
from triton.backends.nvidia import driver as nv
from triton.runtime import build
cc = build._find_compiler("c")                 # "Failed to find C compiler" without gcc (pytorch#116696)
so = build.compile_so_from_file(os.path.join(nv.dirname, "driver.c"), "cuda_utils",
                                library_dirs=[nv.libdevice_dir], include_dirs=nv.include_dirs, libraries=[])
assert so.startswith(os.environ["TRITON_CACHE_DIR"]) and os.path.getsize(so) > 0, so
print("  Triton: compiler", cc, "built", os.path.basename(so), "in", os.environ["TRITON_CACHE_DIR"])
' ) || die "Triton cannot build its launcher in the image (C compiler or Python.h missing)"
log "Triton: C compiler and Python.h usable as uid 1000 with a read-only root"

# ---- 6: the server, started with the chart's args and env
"$PYTHON" tools/random_checkpoint.py --model_size tiny --out "$work/models/sam2.1_hiera_tiny.pt" >/dev/null
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); grpc_port=$(free_port)
# chart_container EXTRA...: the kserve-container the chart renders for this machine (CPU, tiny, 256, free
# ports): its args one per line, then "ENV NAME=VALUE" lines, then "TMP <sizeLimit>".
chart_container() {
  "$HELM" template sam2-tracker charts/sam2-tracker -f charts/sam2-tracker/ci/cpu-values.yaml \
    --set model.size=tiny --set model.imageSize=256 --set server.httpPort="$port" \
    --set server.grpcPort="$grpc_port" --set server.gracePeriodSeconds="$GRACE" "$@" \
  | "$PYTHON" -c '
import sys, yaml
isvc = next(d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] == "InferenceService")
predictor = isvc["spec"]["predictor"]
(c,) = predictor["containers"]
print("\n".join(c["args"]))
for e in c.get("env", []):
    print("ENV " + e["name"] + "=" + e["value"])
(tmp,) = [v for v in predictor["volumes"] if v["name"] == "tmp"]
print("TMP", tmp["emptyDir"]["sizeLimit"])
'
}
start_server() {  # start_server LOGFILE CHART-EXTRA...: the entrypoint with the chart's args, in the background
  local logfile=$1; shift
  chart_container "$@" > "$work/container.txt"
  mapfile -t args < <(grep -v '^ENV \|^TMP ' "$work/container.txt")
  mapfile -t extra_env < <(sed -n 's/^ENV //p' "$work/container.txt")
  tmp_size=$(sed -n 's/^TMP //p' "$work/container.txt" | sed 's/Mi$/m/; s/Gi$/g/')
  ( in_image "${entrypoint[@]}" "${args[@]}" ) >"$logfile" 2>&1 &
  pid=$!
}
status() { "$PYTHON" - "$@" <<'PY'
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], method=sys.argv[2] if len(sys.argv) > 2 else "GET")
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
PY
}
took=0
wait_healthy() {  # wait_healthy LOGFILE TIMEOUT: until /health is 200; seconds in $took
  local s0 code=0
  s0=$(date +%s)
  while [ $(( $(date +%s) - s0 )) -lt "$2" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then tail -n 40 "$1" >&2; die "the server exited early"; fi
    code=$(status "http://127.0.0.1:$port/health")
    if [ "$code" = 200 ]; then took=$(( $(date +%s) - s0 )); return 0; fi
    sleep 2
  done
  tail -n 40 "$1" >&2; die "/health answered $code after $2 s"
}
stop_server() {  # stop_server LOGFILE: SIGTERM drains and exits 0; seconds in $took
  local d0 rc=0
  kill -TERM "$pid"
  d0=$(date +%s)
  while kill -0 "$pid" 2>/dev/null && [ $(( $(date +%s) - d0 )) -le $(( GRACE + 10 )) ]; do sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then tail -n 20 "$1" >&2; die "still running $(( GRACE + 10 )) s after SIGTERM"; fi
  wait "$pid" || rc=$?
  pid=""
  [ "$rc" = 0 ] || { tail -n 20 "$1" >&2; die "exit status $rc after SIGTERM"; }
  took=$(( $(date +%s) - d0 ))
}

start_server "$work/server.log"
log "started the entrypoint as the chart does: ${args[*]}"
wait_healthy "$work/server.log" "$HEALTH_TIMEOUT"
log "/health 200 after $took s"
for path in /v2/health/live /v2/health/ready /v2/models/sam2/ready /metrics; do
  code=$(status "http://127.0.0.1:$port$path")
  [ "$code" = 200 ] || { tail -n 40 "$work/server.log" >&2; die "$path answered $code"; }
done
log "/v2/health/live, /v2/health/ready, /v2/models/sam2/ready, /metrics: 200"

# One real request: a 12-frame video, one click; the answer must be a ZIP with a mask per frame.
"$PYTHON" - "$work/video.avi" "http://127.0.0.1:$port/track?frame_idx=0&points=160,120" <<'PY' || die "/track"
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

stop_server "$work/server.log"
log "SIGTERM: exited 0 after $took s"

# ---- 7: a compile-mode start
if [ "$COMPILE_START" = 1 ]; then
  c0=$(date +%s)
  start_server "$work/compile.log" --set model.compile=true
  printf '%s\n' "${args[@]}" | grep -qx -- --compile || die "the chart did not pass --compile"
  wait_healthy "$work/compile.log" "$COMPILE_TIMEOUT"
  log "compile-mode start (--compile): /health 200 after $took s"
  grep -q "compile True" "$work/compile.log" || { tail -n 20 "$work/compile.log" >&2; die "the server did not build the model with torch.compile"; }
  if grep -q "Traceback" "$work/compile.log"; then grep -m1 -A20 "Traceback" "$work/compile.log" >&2; die "a traceback in the compile-mode log"; fi
  stop_server "$work/compile.log"
  log "SIGTERM: exited 0 after $took s (compile-mode run $(( $(date +%s) - c0 )) s)"
fi
# ---- 8: the model repository API must not unload the model (the server answers 404 there; the chart never
# routes it). A fresh start of its own: a 200 here would empty the registry and leave the pod unready for good.
start_server "$work/repository.log"
wait_healthy "$work/repository.log" "$HEALTH_TIMEOUT"
code=$(status "http://127.0.0.1:$port/v2/repository/models/sam2/unload" POST)
ready=$(status "http://127.0.0.1:$port/v2/health/ready")
kill -TERM "$pid"; wait "$pid" || true; pid=""
if [ "$code" = 404 ] && [ "$ready" = 200 ]; then
  log "POST /v2/repository/models/sam2/unload: $code; /v2/health/ready then: $ready"
else
  die "POST /v2/repository/models/sam2/unload answered $code; /v2/health/ready then: $ready"
fi
log "PASS ($IMAGE)"
