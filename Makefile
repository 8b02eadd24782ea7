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

# MapLibre GL for the dashboard: npm ci from package-lock.json, then copied into api/static/vendor/
# (git-ignored; shipped in the wheel): the page never loads anything from a CDN.
VENDOR := api/static/vendor/maplibre-gl.mjs

$(VENDOR): package.json package-lock.json scripts/vendor_js.sh
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing: apt-get install -y nodejs npm (the dashboard vendors MapLibre GL from npm)"; exit 2; }
	npm ci --no-audit --no-fund --loglevel=error
	scripts/vendor_js.sh

install: $(VENV)/.installed $(VENDOR)

demo: $(VENV)/.installed $(VENDOR)
	$(BIN)/usm build sample_data/$(CITY)/city.toml --out out/$(CITY)
	@echo "Open http://$(HOST):$(PORT)/ (Ctrl+C to stop)"
	$(BIN)/usm serve out/$(CITY) --host $(HOST) --port $(PORT)

test: lint $(VENDOR)
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "########################################################################"; \
	  echo "# WARNING: chromium is not installed: the dashboard's browser tests    #"; \
	  echo "# (tests/browser) will be SKIPPED. Install it: apt-get install -y chromium"; \
	  echo "########################################################################"; }
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check geo_usm api tests benchmarks scripts
	$(BIN)/ruff format --check geo_usm api tests benchmarks scripts
	$(BIN)/mypy

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_build.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_assign.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_hotspots.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_tiles.py $(BENCH_ARGS)

clean:
	rm -rf out .pytest_cache .ruff_cache .mypy_cache
