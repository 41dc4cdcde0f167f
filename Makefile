# The README's two commands: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-faults deps system-deps lab-up lab-down lab-status unit bench bench-fleet lock reference dist

demo: deps            ## the logwatch story: noisy report, deploy, quiet report; audit
	$(BIN)/python -m lab demo

# Lab tests mostly wait (boots, SSH, Postfix, timeouts): pytest-xdist runs them in TEST_WORKERS
# workers, each with its own lab (issue 23; the count measured in bench/RESULTS.md).
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 3

test: deps            ## every test: unit, the real boxes of the lab and a real VM, in parallel
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

test-faults: deps     ## the whole fault suite (issue 14), with the long runs make test leaves out
	$(BIN)/pytest -m 'lab or faults' tests/lab/test_faults_*.py

unit: deps            ## the tiers without a lab: the product (tests/unit) and the harness (tests/harness)
	$(BIN)/pytest tests/unit tests/harness

bench: deps           ## python -m bench: N = 1, 10, 50 boxes, lockdown vs Ansible; appends to bench/RESULTS.md
	$(BIN)/python -m bench

bench-fleet: deps     ## python -m bench --simulated: the controller alone at 100, 500, 1,000 simulated hosts
	$(BIN)/python -m bench --simulated

deps: system-deps $(VENV)/.installed

system-deps:
	@bash lab/install-system-deps.sh

# requirements-test.lock: every package `make test` uses (the runtime's pins of
# requirements.lock included), each with its hashes; pip refuses anything else. The editable
# install then builds with the venv's own locked setuptools: no build environment to fetch.
$(VENV)/.installed: requirements-test.lock requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-test.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --editable .
	touch $@

# Both locks from pyproject.toml (pip-tools, installed on demand): requirements.lock is what a
# user's `pip install` resolves to today (the runtime), requirements-test.lock adds the test
# and build tools at the same runtime pins.
LOCK_FLAGS := --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --disable-pip-version-check pip-tools
	.venv-lock/bin/pip-compile $(LOCK_FLAGS) --upgrade -o requirements.lock pyproject.toml
	.venv-lock/bin/pip-compile $(LOCK_FLAGS) --upgrade --extra test -c requirements.lock -o requirements-test.lock pyproject.toml

dist: deps            ## the release: sdist and its wheel in dist/, built from a clean copy and checked by twine
	$(BIN)/python -m tests.distribution dist

reference: deps       ## docs/reference.md and the README's facts and operations table from the code (a unit test keeps them current)
	$(BIN)/python docs/make_reference.py > docs/reference.md
	$(BIN)/python docs/make_reference.py --readme

lab-up: deps
	$(BIN)/python -m lab up 1

lab-down:
	$(BIN)/python -m lab down

lab-status:
	$(BIN)/python -m lab status
