# VitalCheck — the two set-up commands for a fresh machine are `make serve` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
HOST ?= 127.0.0.1
DATA_DIR ?= $(or $(VITALCHECK_DATA_DIR),$(abspath ../shared/datasets))
export VITALCHECK_DATA_DIR := $(DATA_DIR)
# No usage reports to BentoML from a health-data service (the Bento's image sets the same).
export BENTOML_DO_NOT_TRACK ?= True
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# The catalog (vitalcheck/catalog.py) names every artifact: exit status 0 when all are present and current.
ARTIFACTS_PRESENT = $(BIN)/python -c 'import sys; from vitalcheck.cards import stale_artifacts; \
	sys.exit(bool(stale_artifacts("artifacts")))'

.PHONY: help install models artifacts import serve test lint build clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-22s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[train,test]'
	rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) ## create .venv and install VitalCheck with its training and test extras

models: $(STAMP) ## (re)train the seven tabular models and rebuild both reference tables from $(DATA_DIR)
	MPLCONFIGDIR=$(CURDIR)/build/matplotlib $(BIN)/python -m vitalcheck.training train --data-dir $(DATA_DIR)

artifacts: $(STAMP) ## build the artifacts only if some are missing or were built by an older VitalCheck
	@if $(ARTIFACTS_PRESENT); then echo "artifacts present (make models rebuilds them)"; \
	else $(MAKE) --no-print-directory models; fi

import: artifacts ## check the artifacts and register them in the BentoML model store
	$(BIN)/python import_models.py

serve: import ## install, build artifacts if missing, import them, serve on $(HOST):$(PORT) (HOST=0.0.0.0 for all interfaces)
	$(BIN)/bentoml serve service:VitalCheck --host $(HOST) --port $(PORT)

test: artifacts ## install, build artifacts if missing, run the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff check, ruff format --check, mypy, and a check that serving imports no training code
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/check_serving_imports.py

build: import ## bentoml build (the Bento holds all eight models and both tables)
	$(BIN)/bentoml build

.PHONY: image image-test
image: artifacts ## the OCI image without Docker: Bento + buildah (packaging/build_image.sh, docs/SHIPPING.md)
	packaging/build_image.sh

image-test: artifacts ## build or reuse the image, run it with podman, compare every endpoint with in-process
	VITALCHECK_IMAGE_TEST=1 $(BIN)/python -m pytest tests/image -m slow

bench: artifacts ## compare reload-per-request, the original FastAPI design and VitalCheck (BENCH_QUICK=1: ~4 min smoke run); report in benchmarks/results/ (docs/BENCHMARKS.md)
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python -m benchmarks

.PHONY: spark-test spark-bench
spark-test: artifacts ## Spark batch scoring tests (installs the spark extra; needs Java 17+): 100k rows on local[2] vs the service
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[spark]'
	$(BIN)/python -m pytest tests/batch -m slow

spark-bench: artifacts ## rows/s of 1,000,000 rows on Spark local[2] vs in-process on one core (docs/SPARK.md); SPARK_BENCH_ROWS=... to change
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[spark]'
	$(BIN)/python benchmarks/spark_batch.py --rows $${SPARK_BENCH_ROWS:-1000000}

.PHONY: reliability
reliability: import ## fuzzing (1,000 cases per endpoint), refused starts, worker kill, SIGTERM, timeout, 10-min soak (SOAK_MINUTES=1 to try); docs/RELIABILITY.md
	$(BIN)/python -m reliability $(RELIABILITY_STEPS) --soak-minutes $${SOAK_MINUTES:-10}

clean: ## remove the virtualenv and the trained (uncommitted) artifacts
	rm -rf $(VENV) artifacts/*_pipeline.pkl artifacts/*_pipeline.card.json artifacts/MODEL_CARDS.md

.PHONY: docs-check
docs-check: artifacts ## the page at / in headless Chromium (apt-get install chromium): screenshot to build/docs-page.png, no request beyond loopback
	$(BIN)/python -m tests.utils.docs_browser --out build/docs-page.png

# make cluster-test, make deploy-readonly-check (docs/DEPLOY.md)
include deploy/deploy.mk
