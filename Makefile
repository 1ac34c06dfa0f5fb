# ntoslab: `make demo` sets everything up and runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
SHARED ?= ../shared
CONFORMANCE ?= $(SHARED)/conformance/tests

.PHONY: setup demo test test-full lint conformance build lab bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23"
	$(PY) -m pip install --quiet -e '.[test]'
	@# notebooks are stored without outputs: git strips what a run in JupyterLab leaves
	@if [ -d .git ] || [ -f .git ]; then $(VENV)/bin/nbstripout --install >/dev/null 2>&1 || true; fi
	@touch $(STAMP)

build: setup
	$(VENV)/bin/ntoslab build

demo: build
	$(PY) -m ntoslab.demo

conformance: setup
	$(PY) -m ntoslab.conformance $(CONFORMANCE)

lint: setup
	$(VENV)/bin/ruff check ntoslab tests benchmarks
	$(VENV)/bin/mypy

test: build lint
	$(PY) -m pytest -q -m "not slow"

test-full: build
	$(PY) -m pytest -q

bench: build
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/maps.py
	$(PY) benchmarks/replay.py
	$(PY) benchmarks/lifetime.py
	$(PY) benchmarks/capture.py --per-spawner 500 --spawners 1,2,4
	$(PY) benchmarks/trace.py
	$(PY) benchmarks/fleet.py --events 2000000 --hosts 40

lab: build
	$(VENV)/bin/jupyter lab notebooks/

clean:
	find bpf -name '*.o' -delete
	rm -rf .pytest_cache .hypothesis
