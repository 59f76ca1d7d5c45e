# BackCalm: `make run` starts the bot, `make test` runs every test. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
COVERAGE_FLOOR := 85

.PHONY: run demo test lint format bench content-check db-upgrade clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "BackCalm needs Python 3.11 or newer; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot

demo: $(STAMP)
	$(BIN)/python -m bot demo

test: $(STAMP)
	$(BIN)/python -m bot content check
	@# pytest exits 5 when it collected no tests; that is a failure here, like any other.
	$(BIN)/python -m pytest --cov=bot --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR); \
	status=$$?; if [ $$status -eq 5 ]; then echo "no tests ran: failing" >&2; fi; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks

content-check: $(STAMP)
	$(BIN)/python -m bot content check

db-upgrade: $(STAMP)
	$(BIN)/python -m bot db upgrade

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
