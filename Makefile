# The README's two commands: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-faults deps system-deps lab-up lab-down lab-status unit bench bench-fleet

demo: deps            ## the logwatch story: noisy report, deploy, quiet report; audit
	$(BIN)/python -m lab demo

test: deps            ## every test: unit, then the real boxes of the lab
	$(BIN)/pytest

test-faults: deps     ## the whole fault suite (issue 14), with the long runs make test leaves out
	$(BIN)/pytest -m 'lab or faults' tests/lab/test_faults_*.py

unit: deps
	$(BIN)/pytest tests/unit

bench: deps           ## python -m bench: N = 1, 10, 50 boxes, lockdown vs Ansible; appends to bench/RESULTS.md
	$(BIN)/python -m bench

bench-fleet: deps     ## python -m bench --simulated: the controller alone at 100, 500, 1,000 simulated hosts
	$(BIN)/python -m bench --simulated

deps: system-deps $(VENV)/.installed

system-deps:
	@bash lab/install-system-deps.sh

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --editable .
	touch $@

lab-up: deps
	$(BIN)/python -m lab up 1

lab-down:
	$(BIN)/python -m lab down

lab-status:
	$(BIN)/python -m lab status
