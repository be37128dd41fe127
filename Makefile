# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint format bench bench-rotation clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --editable '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Development server: SQLite under var/, a generated development KEK, the demo organization.
# It prints a ready curl line for the proxy API (a fresh demo token; `make token` makes another).
run: install
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py seed_demo
	@echo "Try the proxy API:"
	@DEBUG=true $(BIN)/python manage.py demo_token
	DEBUG=true $(BIN)/python manage.py runserver 127.0.0.1:8000

# A fresh read-and-secret token for the demo organization, as a curl line against `make run`.
.PHONY: token
token: install
	@DEBUG=true $(BIN)/python manage.py demo_token

# The whole suite; DATABASE_URL picks the database (SQLite by default).
test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

# Proxy API benchmark on PostgreSQL under the production gunicorn command: the retrievals against
# the ceiling endpoint (benchmarks/minimal.py), also beside 200 parked requests; writes
# docs/benchmarks.md. About ten minutes; BENCH_ARGS=--large adds a million keys (one org, and
# over 10 000 orgs). Then the proxy client and event feed benchmark (bench-feed, FEED_ARGS).
bench: install
	command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/pip install --quiet --editable '.[dev,bench]'
	$(BIN)/python -m benchmarks.proxy_api $(BENCH_ARGS)
	$(MAKE) bench-feed

# The proxy client's resolve in process, propagation of changes to 50 clients, and retrieval
# with 200 parked long polls; writes its section of docs/benchmarks.md.
.PHONY: bench-feed
bench-feed: install
	command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/pip install --quiet --editable '.[dev,bench]' --editable clients/python
	$(BIN)/python -m benchmarks.event_feed $(FEED_ARGS)

# KEK rotation throughput on PostgreSQL; writes its section of docs/benchmarks.md.
bench-rotation: install
	$(BIN)/python -m benchmarks.kek_rotation $(BENCH_ARGS)

# PNGs of the main pages for the README, taken by the browser tests in Debian's chromium.
.PHONY: screenshots
screenshots: install
	KEYVAULT_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/e2e -q

# The proxy client (clients/python): installed into the project's virtualenv, then its tests,
# against a fake Keyvault inside the test process and against this checkout's server under
# gunicorn (SQLite, or PostgreSQL when DATABASE_URL names it).
.PHONY: test-client
test-client: install
	$(BIN)/pip install --quiet --editable clients/python
	$(BIN)/pytest clients/python/tests

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var staticfiles
