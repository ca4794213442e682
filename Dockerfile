# sam2-tracker: SAM2 video tracking as a KServe custom predictor (`python -m model`). The image that ships:
# `make image` builds it, `make image-test` builds the same Dockerfile and runs it the way the chart does.
#
# GPU image without a CUDA base image. PyPI's torch 2.14.1 Linux wheels are CUDA 13.0 builds that bring the
# whole CUDA runtime as wheels (cudart, cuBLAS, cuDNN, NCCL, nvrtc, nvJitLink, ... under
# site-packages/nvidia/), and the node's NVIDIA container toolkit mounts the driver (libcuda.so.1; driver 580
# or later for CUDA 13.0). So the base is plain Debian 12 (bookworm: python3.11, glibc 2.36):
#   - here, where no registry is reachable, scripts/make-base-image.sh makes it with debootstrap
#     (localhost/sam2-base:bookworm, the default below);
#   - elsewhere `--build-arg BASE_IMAGE=docker.io/library/debian:bookworm-slim` is the same release; every
#     package this file installs comes from Debian's archive either way.
# The nvidia/cuda images are not needed: their runtime libraries duplicate the wheels' (1.5-2.5 GB).
#
# sam2's CUDA extension (`sam2._C`, connected components for the mask hole-filling step) is compiled in the
# builder with nvcc from NVIDIA's PyPI wheels (nvidia-cuda-nvcc/-crt/nvvm/-cccl 13.0, the versions torch's
# cuda-toolkit pins), which are removed again before the venv is copied into the runtime stage.
#
# The runtime stage keeps gcc, g++ and the Python headers: torch.compile (`--compile`, `model.compile` in the
# chart) generates Triton kernels, and Triton builds its launcher module with the system C compiler against
# Python.h at the first compiled call (triton/runtime/build.py: "Failed to find C compiler"; pytorch#116696).
# Without them a --compile pod crash-loops. Inductor's CPU kernels need g++.
#
# No weights inside: KServe's storage initializer puts them in /mnt/models (storageUri), or a PVC is mounted
# there, or `--checkpoint PATH` names a file. Runs as uid 1000 with a read-only root filesystem: every cache
# and temporary file goes under /tmp (an emptyDir in the chart).

ARG BASE_IMAGE=localhost/sam2-base:bookworm

# ---------------------------------------------------------------------------------------------------------
# What both stages share: Python 3.11 from Debian and the service user.
FROM ${BASE_IMAGE} AS base
ARG UID=1000
ARG DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    if ! dpkg -s python3 python3-venv ca-certificates >/dev/null 2>&1; then \
      apt-get update; apt-get install -y --no-install-recommends python3 python3-venv ca-certificates; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    old=$(getent passwd "$UID" | cut -d: -f1 || true); if [ -n "$old" ]; then userdel "$old"; fi; \
    old=$(getent group "$UID" | cut -d: -f1 || true); if [ -n "$old" ]; then groupdel "$old"; fi; \
    groupadd --gid "$UID" sam2; \
    useradd --uid "$UID" --gid "$UID" --home-dir /tmp --no-create-home --shell /usr/sbin/nologin sam2

# ---------------------------------------------------------------------------------------------------------
FROM base AS builder

# 1 = compile sam2._C (the shipped image); 0 = pure-Python sam2 (the library then skips hole-filling).
ARG SAM2_BUILD_CUDA=1
# GPU architectures for sam2._C: exactly the SASS targets torch 2.14.1+cu130 ships
# (torch._C._cuda_getArchFlags(): sm_75 sm_80 sm_86 sm_90 sm_100 sm_120), so the extension runs wherever
# torch does: T4 (7.5), A100 (8.0), A10/L4/L40 (8.6 runs on 8.9), H100/H200 (9.0), B200 (10.0), RTX 50 (12.0);
# +PTX lets newer GPUs JIT it. No GPU at build time, so nothing can be detected.
ARG TORCH_CUDA_ARCH_LIST="7.5;8.0;8.6;9.0;10.0;12.0+PTX"
# torch first: sam2 compiles against it. torchvision pinned beside it (sam2 declares it; an unpinned one
# could pull another torch).
ARG TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
# nvcc and the headers it needs, matching torch's CUDA 13.0 (cuda-toolkit 13.0.3's pins); build-only.
ARG CUDA_BUILD_SPEC="nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85 ninja"
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
    PATH=/opt/venv/bin:${PATH}

# g++ and the Python headers compile sam2._C's host code.
RUN set -eux; \
    apt-get update; apt-get install -y --no-install-recommends g++ python3-dev; rm -rf /var/lib/apt/lists/*; \
    python3 -m venv "$VIRTUAL_ENV"; \
    pip install pip==26.2.1 setuptools==84.0.0 wheel==0.48.0

RUN pip install $TORCH_SPEC && pip freeze | grep -iE '^(torch|torchvision)==' > /opt/torch-constraint.txt

# Dependency layer: only pyproject.toml, so editing the source does not reinstall the world.
# --no-build-isolation: sam2 is an sdist that imports torch to build (else pip installs a second torch into a
# throw-away build env). SAM2_BUILD_ALLOW_ERRORS=0: a failed extension build fails the image instead of
# silently producing a sam2 without _C. CUDA_HOME is the wheels' nvidia/cu13 tree, where torch's own CUDA
# headers (cuBLAS, cuSPARSE, ...) already are; torch's extension builder links -lcudart from lib64.
COPY pyproject.toml /src/pyproject.toml
RUN set -eux; \
    python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /opt/requirements.txt; \
    cu="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13"; \
    if [ "$SAM2_BUILD_CUDA" = 1 ]; then \
      pip install -c /opt/torch-constraint.txt $CUDA_BUILD_SPEC; \
      ln -s libcudart.so.13 "$cu/lib/libcudart.so"; ln -s lib "$cu/lib64"; \
    fi; \
    CUDA_HOME="$cu" PATH="$cu/bin:$PATH" MAX_JOBS="$(nproc)" \
    SAM2_BUILD_CUDA="$SAM2_BUILD_CUDA" SAM2_BUILD_ALLOW_ERRORS=0 TORCH_CUDA_ARCH_LIST="$TORCH_CUDA_ARCH_LIST" \
      pip install --no-build-isolation -c /opt/torch-constraint.txt -r /opt/requirements.txt; \
    if [ "$SAM2_BUILD_CUDA" = 1 ]; then \
      python3 -c "import torch, sam2._C"; \
      pip uninstall -y $(echo "$CUDA_BUILD_SPEC" | sed 's/==[^ ]*//g'); \
      rm "$cu/lib/libcudart.so" "$cu/lib64"; \
      test ! -e "$cu/bin/nvcc"; \
    fi; \
    pip check

# ---------------------------------------------------------------------------------------------------------
# The service itself as a wheel (model/ is the only package; README.md is pyproject.toml's readme). Built in
# its own stage so a source change rebuilds a 50 kB layer, not the multi-GB environment above.
FROM builder AS app
COPY README.md /src/README.md
COPY model /src/model
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels /src

# ---------------------------------------------------------------------------------------------------------
FROM base AS runtime
ARG UID=1000
ARG DEBIAN_FRONTEND=noninteractive

# gcc/g++ + libpython3.11-dev: what torch.compile's Triton launcher build and Inductor's C++ kernels need at
# run time (about 200 MB). /mnt/models: the mount point KServe's storage initializer and the PVC use.
RUN set -eux; \
    apt-get update; apt-get install -y --no-install-recommends gcc g++ libc6-dev libpython3.11-dev; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir -p /mnt/models

COPY --from=builder /opt/venv /opt/venv
COPY --from=app /wheels /src/dist
RUN PIP_NO_CACHE_DIR=1 /opt/venv/bin/pip install --no-deps --no-index --disable-pip-version-check /src/dist/*.whl \
    && rm -rf /src \
    && /opt/venv/bin/python -c "import model, sam2, torch"

# Everything the process writes goes under /tmp (an emptyDir when the root filesystem is read-only):
# uploads (TMPDIR, --spool_dir), torch.compile/Triton caches, CUDA's JIT cache (~/.nv), matplotlib and XDG.
# NVIDIA_DRIVER_CAPABILITIES: what the NVIDIA container toolkit mounts (the device plugin sets the devices).
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
    MPLCONFIGDIR=/tmp/matplotlib \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# A root-owned, empty working directory: `python -m` puts it first on sys.path, so it must not be writable.
WORKDIR /srv
USER ${UID}:${UID}
# 8080: HTTP (/track, v2 REST, health, /metrics); 8081: v2 gRPC.
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "model"]
