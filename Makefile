# Entry points: `make demo`, `make test` and `make test-fast`. Each creates .venv from
# requirements.txt if needed.
#   make test       the full suite, as CI runs it (tests marked slow included; tests marked plink2
#                   are skipped, with the reason, where plink2/plink1.9 are not installed).
#   make test-fast  the suite without the tests marked slow (`pytest -m "not slow"`): under 3 minutes
#                   on 2 cores, for the edit-test loop. Mark a test slow when `pytest --durations`
#                   shows it pushing test-fast over that budget.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The GWAS Catalog's validator (tests of the GWAS-SSF files): its pins conflict with .venv.
GSS_VENV := .venv-gss
GSS_STAMP := $(GSS_VENV)/.installed
CORES ?= all
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test test-fast venv report lint bench clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==24.3.1 || true
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(GSS_STAMP): requirements-gss.txt
	test -x $(GSS_VENV)/bin/python || $(PYTHON) -m venv $(GSS_VENV)
	$(GSS_VENV)/bin/python -m pip install --quiet --no-deps -r requirements-gss.txt
	touch $(GSS_STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

report: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

test: $(STAMP) $(GSS_STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q

test-fast: $(STAMP) $(GSS_STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q -m "not slow" --durations=10

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check workflow/

bench: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python bench/run_all.py

clean:
	rm -rf results logs benchmarks .snakemake
