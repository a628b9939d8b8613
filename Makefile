# Every target builds its own environment in .venv from pyproject.toml: nothing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# benchmarks/ may be absent in a partial checkout: lint what is there
CODE := $(wildcard starling tests benchmarks examples scripts fuzz)

.PHONY: demo test lint typecheck coverage bench clean fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[full,standard,compress,redis,crypto,dev]'
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
	rm -rf $(VENV) .coverage .mypy_cache .pytest_cache .ruff_cache .fuzz

# Coverage-guided fuzzing (atheris) of every parser, FUZZ_SECONDS each (docs/security.md):
# `make fuzz FUZZ_SECONDS=3600 FUZZ_TARGETS="multipart cookies"` runs longer, on chosen targets.
FUZZ_SECONDS ?= 20
fuzz: $(STAMP)
	$(BIN)/python -m fuzz.run --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Benchmarks run in their own environment: Starlette is never a dependency of starling or its tests.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . 'starlette==1.10.0' python-multipart 'uvicorn[standard]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m benchmarks.inprocess $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.forms $(BENCH_FORMS_ARGS)
	@if command -v wrk >/dev/null; then \
		$(BENCH_VENV)/bin/python -m benchmarks.endtoend $(BENCH_E2E_ARGS); \
	else \
		echo "wrk not found: skipping the end-to-end benchmark (install it: apt-get install -y wrk)"; \
	fi
