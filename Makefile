# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# CPU build by default; e.g. `make TORCH_SPEC="torch>=2.3" run` for a CUDA build.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
RECIPE ?= runs/mnist-fcn4-cdni.toml

.PHONY: setup run test lint data clean gpu-check speedup-cpu speedup-gpu

$(BIN)/dnilab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[marl,test]"
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
# same on this machine's CPU cores, the multiscale bench on both, the per-step floor and a short speed-at-equal-
# accuracy check (one seed, the MLP, N = 2, 4, 8 agents on one GPU). Rows as JSON in $(GPU_OUT).
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
	$(BIN)/dnilab bench floor --json $(GPU_OUT)/floor.json
	$(BIN)/dnilab bench speedup $(SPEEDUP_GPU_MLP) --steps 600 --modes torch,backprop,cdni --budget 1.5 --seeds 0 --agents 2,4,8 \
		--out $(GPU_OUT)/speedup --json $(GPU_OUT)/speedup-cuda.json

# Speed at equal accuracy (docs/RESULTS-bench.md, "Speed at equal accuracy"): seeds 0, 1, 2 fixed in advance.
# speedup-cpu: N = 2 on a quiet 2-core machine (on a 16-core one, add AGENTS=2,4,8); speedup-gpu: N = 2, 4, 8
# agents sharing one GPU, each pinned to its own share of the host's cores, stages wide enough for the GPU.
SPEEDUP_OUT ?= out/speedup
AGENTS ?= 2
SPEEDUP_SEEDS ?= 0,1,2
SPEEDUP_MLP ?= --models mlp --steps 1500 --eval-every 100 --budget 2
SPEEDUP_CNN ?= --models cnn --steps 1500 --eval-every 100 --budget 2
SPEEDUP_GPU_MLP ?= --models mlp --width 4096 --batch 1024 --steps 1500 --eval-every 100 --device cuda
SPEEDUP_GPU_CNN ?= --models cnn --channels 64 --batch 256 --steps 1500 --eval-every 100 --device cuda
speedup-cpu: setup data
	$(BIN)/dnilab bench floor --out $(SPEEDUP_OUT)/floor --json $(SPEEDUP_OUT)/floor.json
	$(BIN)/dnilab bench speedup $(SPEEDUP_MLP) --device cpu --agents $(AGENTS) --seeds $(SPEEDUP_SEEDS) \
		--out $(SPEEDUP_OUT)/mlp --json $(SPEEDUP_OUT)/mlp.json
	$(BIN)/dnilab bench speedup $(SPEEDUP_CNN) --device cpu --agents $(AGENTS) --seeds $(SPEEDUP_SEEDS) \
		--out $(SPEEDUP_OUT)/cnn --json $(SPEEDUP_OUT)/cnn.json
speedup-gpu: setup data
	$(BIN)/dnilab bench floor --out $(SPEEDUP_OUT)/floor --json $(SPEEDUP_OUT)/floor-gpu-host.json
	$(BIN)/dnilab bench speedup $(SPEEDUP_GPU_MLP) --agents 2,4,8 --seeds $(SPEEDUP_SEEDS) \
		--out $(SPEEDUP_OUT)/mlp-cuda --json $(SPEEDUP_OUT)/mlp-cuda.json
	$(BIN)/dnilab bench speedup $(SPEEDUP_GPU_CNN) --agents 2,4,8 --seeds $(SPEEDUP_SEEDS) \
		--out $(SPEEDUP_OUT)/cnn-cuda --json $(SPEEDUP_OUT)/cnn-cuda.json

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out
