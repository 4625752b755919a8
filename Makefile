# The two commands of the README: `make serve` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The official Node SDKs that tests/e2e/test_node_sdks.py drives (only `make test` needs them),
# exactly as package-lock.json records them; none of them needs an install script to work.
NODE_DIR := tests/e2e/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed-stamp

.PHONY: serve test check lint typecheck bench openapi

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("convhub needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server,dev]'
	touch $(STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "make test needs Node.js 20+ and npm (for $(NODE_DIR))" >&2; exit 1; }
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --ignore-scripts
	touch $(NODE_STAMP)

serve: $(STAMP)
	$(VENV)/bin/convhub serve

test: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

bench: $(STAMP)
	$(PY) -m benchmarks.run

# docs/openapi/*.json, regenerated from the declarations (a test fails when they differ).
openapi: $(STAMP)
	$(PY) -m convhub.openapi docs/openapi
