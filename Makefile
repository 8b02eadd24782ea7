# geo-usm: two commands on a fresh machine (Python 3.11, make, apt): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
CITY   ?= camden

.PHONY: demo test bench lint install clean

$(BIN)/python:
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { echo "python3-venv is missing: apt-get install -y python3-venv"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	@touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/usm build sample_data/$(CITY)/city.toml --out out/$(CITY)
	@echo "Open http://$(HOST):$(PORT)/ (Ctrl+C to stop)"
	$(BIN)/usm serve out/$(CITY) --host $(HOST) --port $(PORT)

test: lint
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check geo_usm api tests benchmarks scripts
	$(BIN)/ruff format --check geo_usm api tests benchmarks scripts
	$(BIN)/mypy

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_build.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_assign.py $(BENCH_ARGS)

clean:
	rm -rf out .pytest_cache .ruff_cache .mypy_cache
