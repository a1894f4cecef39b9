# mdmportal: `make run` sets up and starts the embedded default; `make test` sets up and tests.
PYTHON ?= python3
PORT ?= 8000
APPLESIM_PORT ?= 8001
MAIL_PORT ?= 1025
IDPSIM_PORT ?= 8002
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run idpsim-if-possible test test-fast fuzz lint types format bench clean

# applesim is a package of its own (applesim/pyproject.toml); the portal's tests and demo use it.
$(STAMP): pyproject.toml applesim/pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("mdmportal needs Python 3.11 or newer" if sys.version_info < (3, 11) else 0)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./applesim -e '.[dev]'
	touch $(STAMP)

# The Demo IdP (idpsim/): Node's oidc-provider at the version package-lock.json pins.
IDPSIM := idpsim/node_modules/.installed
$(IDPSIM): idpsim/package.json idpsim/package-lock.json
	.ci/test-machine node
	cd idpsim && npm ci --no-audit --no-fund --loglevel=error
	touch $(IDPSIM)

# make run needs only Python: without Node.js (and not root to install it) the demo starts
# without its Demo IdP, and says so.
idpsim-if-possible:
	@if .ci/test-machine node >/dev/null 2>&1; then $(MAKE) --no-print-directory $(IDPSIM); fi

# make run PORT=8080 APPLESIM_PORT=8081 IDPSIM_PORT=8082 MAIL_PORT=1026 when the default
# ports are taken.
# The embedded default is a development setup: DEBUG on, development secrets under var/.
run: $(STAMP) idpsim-if-possible
	@DEBUG=true $(BIN)/python manage.py run_embedded --port $(PORT) --applesim-port $(APPLESIM_PORT) \
		--idpsim-port $(IDPSIM_PORT) --mail-port $(MAIL_PORT)

# Everything, browser and production topology included: .ci/test-machine installs Chromium
# and starts PostgreSQL and Redis first (or says which one command to run).
test: $(STAMP) $(IDPSIM)
	.ci/test-machine
	$(BIN)/python -m pytest

# The inner loop: no browser, no PostgreSQL or Redis.
test-fast: $(STAMP) $(IDPSIM)
	$(BIN)/python -m pytest -m "not browser and not production"

# The fuzz suite's long profile (tests/fuzzing.py): thousands of examples per property, with the
# count of each printed; `make test` runs the same properties with a hundred each.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest -q -p no:cacheprovider --hypothesis-show-statistics \
		tests/test_fuzz_token.py tests/test_fuzz_dep_client.py tests/test_fuzz_api.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	DEBUG=true $(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var
