# One task runner for developers, CI and the README.
SHELL := bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# The suite runs in 4 processes: most fleet tests wait on Redis and worker processes rather than compute. Work
# stealing keeps the long tests (the docs test, the fuzz sample) from ending the run alone on one process: 4m00 here
# against 4m49 with xdist's default batches.
PYTEST_WORKERS ?= 4

.PHONY: install test lint unit fuzz bench demo clean

install: $(STAMP)

# uv installs the same packages as pip (the machine's pip constraints included, where it has them), compiled to
# bytecode as pip does (else every test process compiles them again), in about 18 s instead of 50; pip does it when
# uv cannot be had.
PIP_CONSTRAINTS := $(wildcard /etc/xdg/pip/constraints.txt)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	{ $(BIN)/python -m pip install --quiet uv && \
	  $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python \
	    $(if $(PIP_CONSTRAINTS),--constraint $(PIP_CONSTRAINTS)) -e '.[dev]'; } || \
	{ $(BIN)/python -m pip install --quiet --upgrade pip && $(BIN)/python -m pip install --quiet -e '.[dev]'; }
	touch $(STAMP)

# mypy cannot follow setuptools' package-dir mapping, so it reads the packages through a tree of links named as they
# install (build/typecheck/simfleet/{shared,worker,producer}); its messages are given back with the repository's paths.
lint: $(STAMP)
	$(BIN)/ruff check .
	mkdir -p build/typecheck/simfleet
	for package in shared worker producer; do ln -sfn ../../../$$package build/typecheck/simfleet/$$package; done
	set -o pipefail; $(BIN)/mypy 2>&1 | sed 's|build/typecheck/simfleet/||'
	$(BIN)/lint-imports --no-cache

# numba's kernels (the lifecycle backend's, and the DES kernel's two loops) are compiled once, into its on-disk cache,
# before the test processes start (they would each compile them at once on a fresh clone); the three compile side by
# side. The cache is the configured one (NUMBA_CACHE_DIR, docs/operations.md), build/numba-cache here.
export NUMBA_CACHE_DIR ?= $(CURDIR)/build/numba-cache
WARM_KERNELS := $(BIN)/python -m simfleet.worker.lifecycle.backends.numba_backend --warm & lifecycle=$$!; \
	$(BIN)/python -m simfleet.worker.des.compiled --warm plain & plain=$$!; \
	$(BIN)/python -m simfleet.worker.des.compiled --warm failures && wait $$lifecycle && wait $$plain
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)
# Where PYTHONDONTWRITEBYTECODE is set (as on the CI machines), no process writes the .pyc of simfleet's own modules
# (installed editable, so uv's bytecode pass does not see them), and each of the suite's hundreds of processes (CLI
# commands, Celery workers, fuzz cases) would compile them again: they are compiled once, before the suite (0.5 s).
BYTECODE := $(BIN)/python -m compileall -q shared worker producer tests > /dev/null
unit: $(STAMP)
	$(BYTECODE)
	$(WARM_KERNELS)
	$(PYTEST)

## make test: lint plus the whole suite (what CI runs); the kernels compile while lint runs
test: $(STAMP)
	$(BYTECODE)
	{ $(WARM_KERNELS); } & warm=$$!; \
	$(MAKE) --no-print-directory lint || { wait $$warm; exit 1; }; \
	wait $$warm
	$(PYTEST)

## make fuzz: the fuzz suite of bad inputs (2,000 cases by default), its outcome table; fails on any crash, hang,
## partial write or bad output (make test runs a sample of it)
FUZZ_CASES ?= 2000
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz --cases $(FUZZ_CASES)

## make bench: every benchmark under benchmarks/, printing our figures beside the peers' and a verdict per target;
## all of them run, and it fails at the end when any target was missed
bench: $(STAMP)
	$(WARM_KERNELS)
	@missed=""; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || missed="$$missed $$b"; done; \
	if [ -n "$$missed" ]; then echo "make bench: targets missed in:$$missed"; exit 1; fi; echo "make bench: every target met"

## make demo: the main jobs end to end; make demo KEEP=1 leaves the local fleet up at the end (Flower, logs), to be
## stopped with .venv/bin/simfleet fleet down
KEEP ?=
demo: $(STAMP)
	$(WARM_KERNELS)
	$(BIN)/python -m simfleet.producer.demo $(if $(filter 1 yes true,$(KEEP)),--keep)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
