# The front door. `make demo` and `make test` do all set-up themselves.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
LAB     ?= keepalive-502
VARIANT ?=
PYTEST_ARGS ?=
TOPOLOGY ?=
# Compose topology: Debian's client has BuildKit; a newer one earlier on PATH may not.
DOCKER  ?= $(if $(wildcard /usr/bin/docker),/usr/bin/docker,docker)
BASE_IMAGE ?=
NGINX_BASE_IMAGE ?= $(BASE_IMAGE)
WITH_HOST_CA ?= auto

.PHONY: help setup demo test test-fast lab up down status lint clean bench stability
.PHONY: docker-setup images images-offline test-compose

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/lab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/lab  ## create .venv, install the project, nginx, redis-server and dnsmasq
	@sh scripts/ensure-system-deps.sh redis-server dnsmasq

demo: setup  ## one lab end to end (~40 s), a summary, what to try next
	$(BIN)/lab demo

test: setup  ## the whole test suite, lab checks included
	@sh scripts/ensure-system-deps.sh chromium && $(BIN)/pytest $(PYTEST_ARGS)

test-fast: setup  ## unit and service tests only (the inner loop)
	$(BIN)/pytest -m "not lab and not compose" $(PYTEST_ARGS)

lab: setup  ## run one lab: make lab LAB=keepalive-502
	$(BIN)/lab run $(LAB) $(if $(TOPOLOGY),--topology $(TOPOLOGY))

up: setup  ## bring a variant up by hand: make up LAB=keepalive-502 VARIANT=broken [TOPOLOGY=compose]
	$(BIN)/lab up $(LAB) $(if $(VARIANT),--variant $(VARIANT)) $(if $(TOPOLOGY),--topology $(TOPOLOGY))

status: setup  ## what `make up` has running
	$(BIN)/lab status

down: setup  ## stop what `make up` started
	$(BIN)/lab down

lint: setup  ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean: ## remove the venv, results and state
	-[ -x $(BIN)/lab ] && $(BIN)/lab down
	rm -rf $(VENV) results .lab .pytest_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

bench: setup  ## load ceiling, proxy reference, policy overhead, time to first result -> bench/results.md
	@command -v wrk >/dev/null || sh scripts/ensure-system-deps.sh wrk
	$(BIN)/python -m bench.run

stability: setup  ## every lab check N times [MODES="quiet busy compose"], resumable -> bench/stability.md
	$(BIN)/python -m bench.stability --repeat $(or $(N),10) $(if $(LABS),--labs $(LABS)) $(if $(MODES),--modes $(MODES))

docker-setup:  ## compose topology: install docker.io + Compose, start dockerd (root)
	@bash scripts/docker-setup.sh

SOURCE_DIGEST = --label lab.source-digest=$$($(BIN)/python -m labs.engine.topology.images $(1))

images: $(BIN)/lab  ## compose images from public base images: make images [BASE_IMAGE=...]
	DOCKER_BUILDKIT=1 $(DOCKER) build -q -f compose/services.Dockerfile -t lab-services:latest \
		$(call SOURCE_DIGEST,services) $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) .
	DOCKER_BUILDKIT=1 $(DOCKER) build -q -f compose/nginx.Dockerfile -t lab-nginx:latest \
		$(call SOURCE_DIGEST,nginx) $(if $(NGINX_BASE_IMAGE),--build-arg BASE_IMAGE=$(NGINX_BASE_IMAGE)) .
	DOCKER_BUILDKIT=1 $(DOCKER) build -q -f compose/locust.Dockerfile -t lab-locust:latest \
		$(call SOURCE_DIGEST,locust) \
		--build-arg LOCUST_VERSION=$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("locust"))' 2>/dev/null) \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) .

images-offline:  ## no registry: a Debian base image (debootstrap), then the compose images on it
	WITH_HOST_CA=$(WITH_HOST_CA) bash scripts/build-base-image.sh
	$(MAKE) --no-print-directory images BASE_IMAGE=lab-base:bookworm

test-compose: setup  ## the compose-topology tests (a Docker engine and the images)
	$(BIN)/pytest -m compose $(PYTEST_ARGS)
