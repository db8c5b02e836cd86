# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A virtual display for the preview window's tests, where Xvfb is installed.
XVFB := $(if $(DISPLAY),,$(if $(shell command -v xvfb-run),xvfb-run -a,))

.PHONY: demo test lint format clean builtin-model

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,onnx,ray,plot]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ianet-stream run configs/demo.yaml

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(XVFB) $(BIN)/python -m pytest -q

# The built-in model from scratch (configs/builtin-model.yaml): data, training, export to
# ianet/weights/ianet-lite-synthetic.pth. About 1.5 hours on one CPU thread; resumes.
builtin-model: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/builtin_model.py train

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf out .pytest_cache
