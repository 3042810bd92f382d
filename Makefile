# vmqpy: `make run` starts a node in the foreground, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all run test lint unit test-deps bench bench-peers clean

# `make` prepares .venv/ (bin/ runs from it); the release is `make rel`.
.DEFAULT_GOAL := all

include rel/Makefile.inc

all: $(STAMP)

$(STAMP): setup.py pyproject.toml vmqpy/mqtt/_speedups.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(STAMP)
	bin/vernemq --config etc/vernemq.conf console

test-deps:
	test/install-deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check vmqpy test bench

unit: $(STAMP)
	$(VENV)/bin/pytest -q test/unit

test: $(STAMP) test-deps lint
	$(VENV)/bin/pytest -q -p no:cacheprovider test

bench: $(STAMP)
	bench/build.sh

# Peer brokers for bench/compare --brokers (aedes, from the npm registry); needs node and npm.
bench-peers:
	npm install --prefix bench/peers --no-package-lock --no-audit --no-fund

clean:
	rm -rf $(VENV) _build build dist *.egg-info
