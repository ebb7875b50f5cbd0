PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test test-slow demo bench cuda-check clean

$(BIN)/zkfhe: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/zkfhe

install: $(BIN)/zkfhe

test: install cuda-check
	$(BIN)/python -m pytest

cuda-check: install
	$(BIN)/python -m gpu.check_kernels

test-slow: install
	$(BIN)/python -m pytest -m slow

demo: install
	$(BIN)/python examples/demo.py

bench: install
	$(BIN)/pip install -q ezkl onnx || echo "ezkl could not be installed: bench_ezkl.py reports zkfhe only"
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
