# Deployment targets. The test suite runs from .ci/run (pytest); these build images and chart outputs.
#
#   make image         build the image that ships (scripts/build-image.sh: buildah where it exists, else docker
#                      or podman with BASE_IMAGE=docker.io/library/debian:bookworm-slim)
#   make image-test    build that same image and run it as the chart does (scripts/image-test.sh; ~16 min cold
#                      here, ~6 min warm; not part of CI)
#   make manifests     re-render manifests/ from the chart (tests fail when it drifts)
#   make helm          install helm/kubectl into .tools/bin, lint every chart variant, refresh the chart README

IMAGE ?= localhost/sam2-tracker
TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/sam2-tracker/Chart.yaml)
# Extra flags for the builder, e.g. BUILD_ARGS="--build-arg TORCH_CUDA_ARCH_LIST=9.0".
BUILD_ARGS ?=
HELM ?= .tools/bin/helm
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)

.PHONY: image image-test manifests helm

image:
	IMAGE=$(IMAGE):$(TAG) BUILD_ARGS="$(BUILD_ARGS)" bash scripts/build-image.sh

image-test:
	IMAGE=$(IMAGE):$(TAG) BUILD_ARGS="$(BUILD_ARGS)" bash scripts/image-test.sh

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
