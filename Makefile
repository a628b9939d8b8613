# Every target builds its own environment in .venv from pyproject.toml: nothing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# benchmarks/ may be absent in a partial checkout: lint what is there
CODE := $(wildcard starling tests benchmarks examples scripts)

.PHONY: demo test lint typecheck coverage bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[full,standard,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/uvicorn examples.demo:app --host 127.0.0.1 --port 8000

lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)

typecheck: $(STAMP)
	$(BIN)/mypy

coverage: $(STAMP)
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage report

test: lint typecheck coverage

clean:
	rm -rf $(VENV) .coverage .mypy_cache .pytest_cache .ruff_cache
