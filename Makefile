# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in .venv; the demo installs the package
# alone, the tests add what they use (the dev, onnx, ray and plot extras).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
# A virtual display for the preview window's tests, where Xvfb is installed.
XVFB := $(if $(DISPLAY),,$(if $(shell command -v xvfb-run),xvfb-run -a,))

.PHONY: demo test lint format clean builtin-model

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,onnx,ray,plot]'
	touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/ianet-stream run configs/demo.yaml

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(XVFB) $(BIN)/python -m pytest -q

# The built-in model from scratch (configs/builtin-model.yaml): data, training, export to
# ianet/weights/ianet-lite-synthetic.pth. About 1.5 hours on one CPU thread; resumes.
builtin-model: $(TEST_STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/builtin_model.py train

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(TEST_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf out .pytest_cache
