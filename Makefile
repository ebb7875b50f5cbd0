PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test test-slow demo bench cuda-check clean gpu-wheels gpu-test gpu-bench

$(BIN)/zkfhe: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q -e '.[ray]' || echo "Ray could not be installed: the Ray executor's tests skip"
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
	$(BIN)/python examples/audit_pipeline.py
	$(BIN)/python examples/torch_loop.py

bench: install
	$(BIN)/pip install -q ezkl onnx || echo "ezkl could not be installed: bench_ezkl.py reports zkfhe only"
	$(BIN)/python benchmarks/run_all.py

# ---- the lent GPU machine (docs/gpu.md, "Running on the GPU machine") ---------------------
# Its image has python3.12, cupy-cuda13x, numba, torch, pytest, hypothesis, click and tqdm; the
# wheels below travel with the working tree in .whl (git-ignored; `make gpu-wheels` here).
GPU_WHEELS := py_arkworks_bls12381==0.5.0 galois==0.4.11 py-ecc==8.0.0 eth-hash==0.8.0 \
	eth-typing==6.0.0 eth-utils==6.0.0 cytoolz==1.2.0 pydantic==2.14.4 pydantic_core==2.50.5 \
	annotated-types==0.8.0 typing-inspection==0.4.5 tenseal==0.3.18 desilofhe-cu130==1.17.0
GPU_SITE := /tmp/zkfhe-site
GPU_PY := PYTHONPATH=$(GPU_SITE):$(CURDIR) python3

gpu-wheels:
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  $(foreach n,17 24 27 28 31 34 35,--platform manylinux_2_$(n)_x86_64) --platform manylinux2014_x86_64 \
	  -d .whl $(GPU_WHEELS)

$(GPU_SITE)/.installed:
	python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $(GPU_SITE) .whl/*.whl
	touch $@

gpu-test: $(GPU_SITE)/.installed
	$(GPU_PY) -m pytest -rs tests/test_gpu.py tests/test_device.py

gpu-bench: $(GPU_SITE)/.installed
	$(GPU_PY) benchmarks/bench_gpu.py
	$(GPU_PY) benchmarks/bench_zkdl.py --device cuda
	$(GPU_PY) benchmarks/bench_einhops.py --device cuda
	if [ -n "$$OUT" ]; then cp docs/benchmarks.md "$$OUT/"; fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
