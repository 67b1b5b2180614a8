# Two commands on a fresh machine: `make demo` and `make test`. Each creates (or reuses) .venv and
# installs the project with everything its tests need.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-stamp
# The product's distributions, one per folder (docs/architecture.md, "Layout"), in dependency order.
DISTRIBUTIONS = schemas runtime services/validator services/submitter services/recorder services/amazon_emulator tools
KAFKA_NODES ?= 1

.PHONY: demo test test-fast bench lint install clean kafka kafka-jars

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(DISTRIBUTIONS))
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "catalog-sync needs Python >= 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(addprefix -e ./,$(DISTRIBUTIONS)) .
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/catalog-sync demo

test: $(STAMP)
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest tests/unit

# Real Apache Kafka (KRaft) from its jars, no Docker: Java 17+, and Maven once to fetch the jars.
kafka: $(STAMP)
	$(BIN)/catalog-sync broker --engine apache --nodes $(KAFKA_NODES)

kafka-jars: $(STAMP)
	$(BIN)/catalog-sync broker --engine apache --fetch-only

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench-results.json
