# circulate: `make demo` shows it working, `make test` checks it.
# Needs only python3 (3.11), pip, make and git: uv is installed with pip when missing.

PYTHON ?= python3
UV := $(PYTHON) -m uv
RUN := $(UV) run --frozen --no-sync
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME := $(CURDIR)/data/prefect

.PHONY: install browser demo test lint typecheck unit format bench clean

.venv/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check 'uv>=0.9'
	# Bytecode is compiled here, once; with compile-bytecode in pyproject.toml every
	# `uv run` that checks the environment would compile ~11,800 files again.
	$(UV) sync --frozen --compile-bytecode
	@touch $@

install: .venv/.installed

# Chromium for the report's browser tests; does nothing when it is already installed.
browser:
	@bash scripts/install-browser.sh

demo: install
	$(RUN) circulate demo

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: install
	$(RUN) mypy

# Two workers (pytest-xdist): each has its own Prefect home and temporary folders; module
# fixtures stay on one worker (--dist loadscope).
unit: install
	$(RUN) pytest -n 2 --dist loadscope

test: browser lint typecheck unit

# Not part of `make test`: generates 1 M and 10 M transaction schemes (cached in bench/cache),
# times every stage, the floor, the tracer and the naive baseline, and writes
# bench/results/<date>.json and .md (about 45 minutes on 2 cores).
bench: install
	$(RUN) python bench/pipeline.py

format: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
