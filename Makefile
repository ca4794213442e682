# Deployment targets. The test suite runs from .ci/run (pytest); these build images and chart outputs.
#
#   make image         build the GPU image with docker, podman or buildah
#   make image-test    build the CPU variant here (buildah, no registry) and check that it serves
#   make manifests     re-render manifests/ from the chart (tests fail when it drifts)
#   make helm          install helm/kubectl into .tools/bin, lint every chart variant, refresh the chart README

IMAGE ?= sam2-tracker
TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/sam2-tracker/Chart.yaml)
# The first container builder that works (a docker CLI without a daemon does not); buildah needs chroot
# isolation and host networking where it runs inside a container or VM without a network bridge.
CONTAINER_TOOL ?= $(shell if docker info >/dev/null 2>&1; then echo docker; \
  elif command -v podman >/dev/null; then echo podman; elif command -v buildah >/dev/null; then echo buildah; \
  else echo docker; fi)
BUILD_FLAGS ?= $(if $(findstring buildah,$(CONTAINER_TOOL)),--isolation=chroot --network=host --layers,)
# Extra --build-arg flags, e.g. BUILD_ARGS="--build-arg TORCH_CUDA_ARCH_LIST=9.0".
BUILD_ARGS ?=
HELM ?= .tools/bin/helm
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)

.PHONY: image image-test manifests helm

image:
	$(CONTAINER_TOOL) build $(BUILD_FLAGS) $(BUILD_ARGS) -t $(IMAGE):$(TAG) -f Dockerfile .

image-test:
	bash scripts/image-test.sh

$(HELM):
	bash scripts/install-k8s-tools.sh

manifests: $(HELM)
	HELM=$(HELM) bash scripts/render-manifests.sh

helm: $(HELM)
	$(HELM) lint --strict charts/sam2-tracker
	for values in charts/sam2-tracker/ci/*-values.yaml; do \
	  $(HELM) lint --strict charts/sam2-tracker -f $$values || exit 1; \
	done
	$(PYTHON) scripts/chart-docs.py
