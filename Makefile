# One command per chore; CI runs the same ones (.ci/run -> make test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DATA   ?= ./data

.PHONY: install run test test-all lint bench bench-heal fmt screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools tells every editable install of a flat layout to beware of folders named
	@# like the package; none is (master/ and volume/ are shims), so that notice is muted.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# The npm clients of tests/cluster/test_clients_npm.py, pinned by the committed lockfile; installed
# once (the stamp is newer than the lockfile afterwards), without install scripts or optional
# packages, none of which the clients need. Without npm the step is skipped, and so is the test.
NPM_DIR   := tests/clients/npm
NPM_STAMP := $(NPM_DIR)/node_modules/.installed

$(NPM_STAMP): $(NPM_DIR)/package.json $(NPM_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(NPM_DIR) --omit=optional --ignore-scripts --no-audit --no-fund \
			--loglevel=error && touch $@; \
	else \
		echo "npm not found: skipping $(NPM_DIR) (tests/cluster/test_clients_npm.py will skip)"; \
	fi

install: $(STAMP) $(NPM_STAMP)

run: $(STAMP)
	mkdir -p $(DATA)
	$(BIN)/weedpy server -dir=$(DATA)

test: $(STAMP) $(NPM_STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -p no:cacheprovider

test-all: $(STAMP) $(NPM_STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check seaweed_py tests master volume bench
	$(BIN)/ruff format --check seaweed_py tests master volume bench
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff check --fix seaweed_py tests master volume bench
	$(BIN)/ruff format seaweed_py tests master volume bench

# docs/master-status-page.png and docs/volume-status-page.png, as the Chromium page test takes them.
screenshots: $(STAMP)
	WEEDPY_SCREENSHOTS=docs $(BIN)/python -m pytest -q -p no:cacheprovider tests/cluster/test_status_pages.py

bench: $(STAMP)
	$(BIN)/python -m bench.run

# Re-replication time of 1 GiB after a server loss, and the scrubber's cost (a few minutes).
bench-heal: $(STAMP)
	$(BIN)/python -m bench.heal_bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
