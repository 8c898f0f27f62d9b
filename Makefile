# Two commands do all the set-up on a fresh machine (README, "Quick start"):
#   make demo   installs into .venv, simulates the demo data, trains, samples, scores
#   make test   installs into .venv and runs the whole test suite on all three backends
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench tools

# tmux drives the dashboard's end-to-end test (Debian package; root on these machines).
tools:
	@command -v tmux >/dev/null || (apt-get update -qq && apt-get install -y -qq tmux >/dev/null) \
		|| echo "tmux could not be installed: the dashboard's tmux test will be skipped"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[torch,plot,test,oracle]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nbgan demo

# The quick benchmarks print their figures first (never asserted); then everything
# runs on TensorFlow (the default backend), and tests marked `backends` (models,
# train steps, training loop) run again on JAX and PyTorch.
test: $(STAMP) tools
	$(BIN)/nbgan bench --quick
	$(BIN)/python -m pytest -q tests
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -m backends tests
	KERAS_BACKEND=torch $(BIN)/python -m pytest -q -m backends tests

bench: $(STAMP)
	$(BIN)/nbgan bench
