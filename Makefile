# slopeshift: `make demo` sets everything up and fits the bundled example; `make test` runs the tests.
# Python 3.12 comes from .python-version (pyenv reads it); everything else is installed into .venv.
SHELL := /bin/bash
PYTHON ?= $(shell pyenv which python 2>/dev/null || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: demo test test-fast lint bench docs install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "slopeshift needs Python >= 3.12; found " + sys.version.split()[0] + " (install it with pyenv: pyenv install 3.12)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q -e '.[dev,dask]' > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $@

demo: $(STAMP)
	@$(BIN)/slopeshift demo

# two workers: the suite is mostly PyTensor rewriting gradient graphs, on one core each
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

test: $(STAMP)
	@$(PYTEST)

test-fast: $(STAMP)
	@$(PYTEST) -m "not slow"

lint: $(STAMP)
	@$(BIN)/ruff check src tests benchmarks tools examples

$(DOCS_STAMP): $(STAMP) pyproject.toml
	@$(BIN)/python -m pip install -q -e '.[dev,docs]' > $(VENV)/install-docs.log 2>&1 || { cat $(VENV)/install-docs.log; exit 1; }
	@touch $@

# the documentation site, warnings as errors (docs/_generate.py refreshes its figures)
docs: $(DOCS_STAMP)
	@NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# speed and memory beside plain pm.sample (docs/performance.md); not part of CI
bench: $(STAMP)
	@$(BIN)/python benchmarks/bench_speed.py --sizes 200 2000

clean:
	rm -rf $(VENV) slopeshift-demo site build dist src/*.egg-info
