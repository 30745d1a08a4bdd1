# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# CPU build by default; e.g. `make TORCH_SPEC="torch>=2.3" run` for a CUDA build.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
RECIPE ?= runs/mnist-fcn4-cdni.toml

.PHONY: setup run test lint data clean gpu-check

$(BIN)/dnilab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	@touch $@

setup: $(BIN)/dnilab

$(VENV)/.ray: $(BIN)/dnilab
	$(BIN)/pip install -q -e ".[ray,test]"
	@touch $@

data: setup
	$(BIN)/dnilab data mnist

run: setup data
	$(BIN)/dnilab run $(RECIPE)

test: setup $(VENV)/.ray
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# On a GPU machine, with a CUDA build of torch (e.g. `make TORCH_SPEC="torch>=2.3" gpu-check`): agents place
# themselves on CUDA (tests that skip without a GPU), then the compute and fused benchmarks on cuda beside the
# same on this machine's CPU cores, and the multiscale bench on both. Rows as JSON in $(GPU_OUT).
GPU_OUT ?= out/gpu-check
gpu-check: setup data
	$(BIN)/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: torch ' + torch.__version__ + ' sees no CUDA device')"
	@mkdir -p $(GPU_OUT)
	$(BIN)/python -m pytest -rs tests/agents/test_devices.py
	$(BIN)/dnilab bench compute --device cuda --json $(GPU_OUT)/compute-cuda.json
	$(BIN)/dnilab bench compute --device cpu --json $(GPU_OUT)/compute-cpu.json
	$(BIN)/dnilab bench fused --device cuda --json $(GPU_OUT)/fused-cuda.json
	$(BIN)/dnilab bench multiscale --set levels.slow.hidden=440 --set run.device=cpu --json $(GPU_OUT)/multiscale-cpu.json
	$(BIN)/dnilab bench multiscale --set levels.slow.hidden=440 --set run.device=cuda --json $(GPU_OUT)/multiscale-cuda.json

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out
