# sam2-tracker: SAM2 video tracking as a KServe custom predictor (`python -m model`).
#
# GPU image (the default, `make image`): CUDA 13.0 bases, because PyPI's torch 2.14 Linux wheels are built
# for CUDA 13.0 (they pull cuBLAS/cuDNN/NCCL 13 as nvidia-* wheels). The builder is the CUDA *devel* image so
# sam2's CUDA extension (`sam2._C`, the connected-components kernel behind mask hole-filling) is compiled
# against the same torch and CUDA; the runtime stage is the CUDA *runtime* image, which supplies the
# libcudart.so.13 that the extension links to. Ubuntu 24.04 in both stages: the same python3 (3.12), so the
# virtual environment built in one stage runs in the other.
#
# CPU-only / offline variant (what `make image-test` builds where no registry is reachable):
#   buildah bud --build-arg BASE_IMAGE=localhost/sam2-base:bookworm \
#               --build-arg BUILD_IMAGE=localhost/sam2-base:bookworm --build-arg SAM2_BUILD_CUDA=0 .
# Without the extension the library warns once and skips hole-filling (masks differ only in tiny holes).
#
# No weights inside: KServe's storage initializer puts them in /mnt/models (storageUri), or a PVC is mounted
# there, or `--checkpoint PATH` names a file. Runs as uid 1000 with a read-only root filesystem: every cache
# and temporary file goes under /tmp (an emptyDir in the chart).

ARG BUILD_IMAGE=nvidia/cuda:13.0.2-devel-ubuntu24.04
ARG BASE_IMAGE=nvidia/cuda:13.0.2-runtime-ubuntu24.04

# ---------------------------------------------------------------------------------------------------------
FROM ${BUILD_IMAGE} AS builder

# 1 = compile sam2._C (needs nvcc: a CUDA devel BUILD_IMAGE); 0 = pure-Python sam2 (any BUILD_IMAGE).
ARG SAM2_BUILD_CUDA=1
# GPU architectures for sam2._C (no GPU at build time, so they cannot be detected): A100, A10/RTX 30,
# L4/L40/RTX 40, H100/H200, B200, RTX 50; +PTX lets newer GPUs JIT-compile it.
ARG TORCH_CUDA_ARCH_LIST="8.0;8.6;8.9;9.0;10.0;12.0+PTX"
# The torch requirement, installed before everything else (sam2 compiles against it).
ARG TORCH_SPEC="torch==2.14.1"
# Optional pip sources (pip reads these from the environment), e.g. a local wheel store mounted with
# `buildah bud --volume /opt/pypi:/opt/pypi:ro --build-arg PIP_EXTRA_INDEX_URL=file:///opt/pypi/simple`.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
# A CA bundle for a TLS-intercepting proxy, mounted into the build like the wheel store.
ARG PIP_CERT

ARG DEBIAN_FRONTEND=noninteractive
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/cuda/bin:${PATH}

# python3-dev and g++ only for the CUDA extension; apt runs only when something is missing (a base made by
# scripts/make-base-image.sh already has python3 and python3-venv).
RUN set -eux; \
    pkgs="python3 python3-venv ca-certificates"; \
    if [ "$SAM2_BUILD_CUDA" = 1 ]; then pkgs="$pkgs python3-dev g++"; fi; \
    if ! dpkg -s $pkgs >/dev/null 2>&1; then \
      apt-get update; apt-get install -y --no-install-recommends $pkgs; rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv "$VIRTUAL_ENV"; \
    pip install --upgrade pip setuptools wheel

RUN pip install "$TORCH_SPEC" && pip freeze | grep -i '^torch==' > /opt/torch-constraint.txt

# Dependency layer: only pyproject.toml, so editing the source does not reinstall the world.
# --no-build-isolation: sam2 is an sdist that imports torch to build (else pip installs a second torch into a
# throw-away build env). SAM2_BUILD_ALLOW_ERRORS=0: a failed extension build fails the image instead of
# silently producing a sam2 without _C.
COPY pyproject.toml /src/pyproject.toml
RUN set -eux; \
    python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /opt/requirements.txt; \
    SAM2_BUILD_CUDA="$SAM2_BUILD_CUDA" SAM2_BUILD_ALLOW_ERRORS=0 TORCH_CUDA_ARCH_LIST="$TORCH_CUDA_ARCH_LIST" \
      pip install --no-build-isolation -c /opt/torch-constraint.txt -r /opt/requirements.txt; \
    if [ "$SAM2_BUILD_CUDA" = 1 ]; then python3 -c "import torch, sam2._C"; fi; \
    pip check

# ---------------------------------------------------------------------------------------------------------
# The service itself as a wheel (model/ is the only package; README.md is pyproject.toml's readme). Built in
# its own stage so a source change rebuilds a 50 kB layer, not the multi-GB environment above.
FROM builder AS app
COPY README.md /src/README.md
COPY model /src/model
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels /src

# ---------------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

ARG UID=1000
ARG DEBIAN_FRONTEND=noninteractive

# python3 for the copied venv (same version as the builder's); uid/gid 1000 freed first, since Ubuntu 24.04
# images ship a user `ubuntu` with that id.
RUN set -eux; \
    if ! dpkg -s python3 ca-certificates >/dev/null 2>&1; then \
      apt-get update; apt-get install -y --no-install-recommends python3 ca-certificates; rm -rf /var/lib/apt/lists/*; \
    fi; \
    old=$(getent passwd "$UID" | cut -d: -f1 || true); if [ -n "$old" ]; then userdel "$old"; fi; \
    old=$(getent group "$UID" | cut -d: -f1 || true); if [ -n "$old" ]; then groupdel "$old"; fi; \
    groupadd --gid "$UID" sam2; \
    useradd --uid "$UID" --gid "$UID" --home-dir /tmp --no-create-home --shell /usr/sbin/nologin sam2; \
    mkdir -p /mnt/models

COPY --from=builder /opt/venv /opt/venv
COPY --from=app /wheels /src/dist
RUN PIP_NO_CACHE_DIR=1 /opt/venv/bin/pip install --no-deps --no-index --disable-pip-version-check /src/dist/*.whl \
    && rm -rf /src

# Everything the process writes goes under /tmp (an emptyDir when the root filesystem is read-only):
# uploads and frame spill (TMPDIR, --spool_dir), torch.compile/Triton caches, matplotlib and XDG caches.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    TORCH_HOME=/tmp/torch \
    TRITON_CACHE_DIR=/tmp/triton \
    TORCHINDUCTOR_CACHE_DIR=/tmp/inductor \
    MPLCONFIGDIR=/tmp/matplotlib

# A root-owned, empty working directory: `python -m` puts it first on sys.path, so it must not be writable.
WORKDIR /srv
USER ${UID}:${UID}
# 8080: HTTP (/track, v2 REST, health, /metrics); 8081: v2 gRPC.
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "model"]
