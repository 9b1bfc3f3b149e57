# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# One resolution for every platform and every Python from 3.11 on, with each file's hashes.
COMPILE := $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock" $(LOCK_ARGS)

.PHONY: run test test-fast lint migrate token bench lock package-smoke clean

# Exactly the tested set, hash-checked, from the dev lock file; then this project, editable.
$(STAMP): pyproject.toml requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/taskql serve

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Everything but the tests marked slow (own servers and processes, browsers, generated searches),
# on two processes: each test waits on PostgreSQL for a third of its time, which the other fills.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

migrate: $(STAMP)
	$(BIN)/taskql migrate

# Prints the token alone, so that `TOKEN=$$(make -s token USER_ID=alice)` works.
token: $(STAMP)
	@$(BIN)/taskql token $(USER_ID)

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Resolves both lock files again after pyproject.toml changed, keeping every pin that still
# fits; `make lock LOCK_ARGS=--upgrade` moves all to their newest releases,
# `LOCK_ARGS="--upgrade-package starlette"` one. The runtime file is constrained by the dev
# file, so a deploy gets the very versions the tests ran with.
lock: $(STAMP)
	$(COMPILE) --extra dev --output-file requirements-dev.lock
	$(COMPILE) --constraint requirements-dev.lock --output-file requirements.lock

# Builds the wheel and runs it as an operator would (CI runs it too).
package-smoke: $(STAMP)
	$(BIN)/python .ci/package_smoke.py $(SMOKE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
