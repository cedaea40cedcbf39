# gensessions: `make serve` to run it, `make test` to test it. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
GENSESSIONS := $(BIN)/gensessions

.PHONY: serve test wheel demo fuzz lint bench bench-scale bench-jsonserver install dev-install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev-install: $(VENV)/.dev-installed

## serve: set up, initialise SQLite under instance/, make sure a dev key exists, start gunicorn
serve: install
	$(GENSESSIONS) init-db
	@echo
	@echo "Development API key (kept in instance/dev-api-key):"
	@echo "  export GS_KEY=$$($(GENSESSIONS) dev-key)"
	@echo "  curl -s -X POST http://127.0.0.1:8000/v1/products/generation/sessions \\"
	@echo "       -H \"Authorization: Bearer \$$GS_KEY\" -H 'Content-Type: application/json' -d '{}'"
	@echo
	@echo "Calling it from a browser app? Browsers refuse cross-origin answers until the app's"
	@echo "origin is allowed: CORS_ORIGINS=$${CORS_ORIGINS:-http://localhost:3000} make serve"
	@echo "(comma-separated origins; now: $${CORS_ORIGINS:-none})."
	@echo
	$(GENSESSIONS) serve

## demo: a throwaway backend full of realistic sessions that move by themselves, and the viewer
demo: install
	$(GENSESSIONS) demo $(DEMO_ARGS)

## wheel: build the installable package (dist/gensessions-*.whl)
wheel: install
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .

## test: install the dev extras and run the whole suite
test: dev-install
	bash tests/ensure_chromium.sh
	$(BIN)/python -m pytest

## fuzz: schemathesis against the app's own OpenAPI document with a larger budget than
## CI's (FUZZ_EXAMPLES examples per operation and stateful scenarios; CI runs 25)
fuzz: FUZZ_EXAMPLES ?= 500
fuzz: dev-install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py -q

## bench: every endpoint against hello-world Flask under the same gunicorn settings, with wrk
## (installed from Debian's packages when missing); tables, JSON and plots in docs/bench/
bench: dev-install
	$(BIN)/pip install --quiet -e '.[bench]'
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/ceiling_bench.py $(BENCH_ARGS)

## bench-scale: 1,000,000 sessions and a 10,000-event log; paging, counts, worker memory
bench-scale: dev-install
	$(BIN)/pip install --quiet -e '.[bench]'
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/scale_bench.py $(BENCH_ARGS)

## bench-stream: 100, 300 and 1,000 open event streams (SSE) over 30 sessions while 50 events a
## second are appended: delivery latency, gaps, idle CPU, memory, GET beside them; docs/bench/
bench-stream: dev-install
	$(BIN)/pip install --quiet -e '.[bench]'
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/stream_bench.py $(BENCH_ARGS)

## bench-jsonserver: POST create against json-server 0.17's POST on a 100-record store (needs
## node and npm; json-server goes under bench/.jsonserver/); JSON in docs/bench/jsonserver.json
bench-jsonserver: dev-install
	$(BIN)/pip install --quiet -e '.[bench]'
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/jsonserver_bench.py $(BENCH_ARGS)

## lint: flake8, and the OpenAPI document through Redocly CLI (a pinned version from npm)
lint: dev-install
	$(BIN)/flake8 app schemas models tests bench wsgi.py gunicorn.conf.py
	bash tests/lint_openapi.sh

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .coverage
