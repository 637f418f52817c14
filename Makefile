# The front door. `make demo` and `make test` do all set-up themselves.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
LAB     ?= keepalive-502
VARIANT ?=
PYTEST_ARGS ?=

.PHONY: help setup demo test test-fast lab up down status lint clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/lab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/lab  ## create .venv, install the project and nginx
	@sh scripts/ensure-system-deps.sh

demo: setup  ## run the demo labs and print a summary table
	$(BIN)/lab demo

test: setup  ## the whole test suite, lab checks included
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: setup  ## unit and service tests only (the inner loop)
	$(BIN)/pytest -m "not lab and not compose" $(PYTEST_ARGS)

lab: setup  ## run one lab: make lab LAB=keepalive-502
	$(BIN)/lab run $(LAB)

up: setup  ## bring a variant up by hand: make up LAB=keepalive-502 VARIANT=broken
	$(BIN)/lab up $(LAB) $(if $(VARIANT),--variant $(VARIANT))

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
