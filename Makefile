# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# CPU build by default; e.g. `make TORCH_SPEC="torch>=2.3" run` for a CUDA build.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
RECIPE ?= runs/mnist-fcn4-cdni.toml

.PHONY: setup run test lint data clean

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

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out
