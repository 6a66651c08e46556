# PISA Pulse: `make run` runs the whole system, `make test` tests it.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test test-fast test-slow lint format bench soak docs clean install

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PY) >/dev/null || { echo "need $(PY) on PATH"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/pulse up

test: $(STAMP) lint
	$(BIN)/pytest -q

# Unit tests only (no PostgreSQL, no browser, no services started): seconds, for editing.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m 'not slow and not integration and not browser'

# The long HOMEPOS calibration-recovery test (minutes); not in every CI run.
test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/pulse bench all

soak: $(STAMP)
	$(BIN)/pulse bench soak --minutes 30 --rate 100

docs: $(STAMP)
	$(BIN)/pulse dbt docs generate

clean:
	rm -rf target logs .pulse
