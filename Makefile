# Two entry points for a fresh machine: `make run` and `make test`.
# Each creates .venv when missing and installs what it needs. torch is pinned here (a CPU
# build pip takes from local disk) and installed first, so nothing pulls a CUDA build.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
INDEX_DIR ?= .articleqa
EXAMPLES  := examples/articles

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: install run index test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

index: install
	$(BIN)/articleqa index $(EXAMPLES) --index-dir $(INDEX_DIR)

run: index
	$(BIN)/articleqa serve --index-dir $(INDEX_DIR)

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) $(INDEX_DIR) .pytest_cache test-artifacts
