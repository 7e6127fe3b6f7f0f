# The two set-up commands: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/dpp
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test lint bench install tools

$(STAMP): requirements/base.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py dpp_demo --port $(PORT)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start --port $(PORT) --no-prefix

# ruff, then the layers of docs/design.md §1 (import-linter, contract in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo

# From Debian: promtool (alert rules), docker-compose (compose validation), and Chromium
# with its WebDriver (the browser tests of the admin drive a headless Chromium).
tools:
	@command -v promtool >/dev/null && command -v docker-compose >/dev/null \
	  && command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends \
	    prometheus docker-compose chromium chromium-driver; }

# The suite's own var/ (filesystem broker, scratch files) starts empty on every run.
test: lint tools
	rm -rf var/test
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	DPP_VAR_DIR=$(CURDIR)/var/test \
	$(BIN)/pytest

bench: $(STAMP)
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	$(BIN)/python -m tests.bench.throughput
