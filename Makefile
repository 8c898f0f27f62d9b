# Two commands do all the set-up on a fresh machine (README, "Quick start"):
#   make demo   installs the package (+ matplotlib) into .venv, simulates the demo data, trains, samples, scores
#   make test   installs what the tests need into .venv and runs the whole test suite on all three backends
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# One stamp per install set, so that `make demo` and `make test` never undo or repeat
# each other's work: the test set is a superset of the demo set, installed into the same .venv.
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
DEMO_EXTRAS := plot
TEST_EXTRAS := torch,plot,test,oracle,cluster

.PHONY: install install-test demo test bench tools

# tmux drives the dashboard's end-to-end test (Debian package; root on these machines).
tools:
	@command -v tmux >/dev/null || (apt-get update -qq && apt-get install -y -qq tmux >/dev/null) \
		|| echo "tmux could not be installed: the dashboard's tmux test will be skipped"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The demo trains on TensorFlow and draws statistics.png with matplotlib: torch, pytest and
# Pylians (a 3-minute compile) would only slow down a first `make demo`.
# After `make test` the test set already holds everything the demo needs.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	if [ -f $(TEST_STAMP) ] && [ $(TEST_STAMP) -nt pyproject.toml ]; then :; \
	else $(BIN)/python -m pip install -q -e '.[$(DEMO_EXTRAS)]'; fi
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[$(TEST_EXTRAS)]'
	touch $@

install: $(DEMO_STAMP)

install-test: $(TEST_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/nbgan demo

# The quick benchmarks print their figures first (never asserted); then everything
# runs on TensorFlow (the default backend), and tests marked `backends` (models,
# train steps, training loop) run again on JAX and PyTorch.
test: $(TEST_STAMP) tools
	$(BIN)/nbgan bench --quick
	$(BIN)/python -m pytest -q tests
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -m backends tests
	KERAS_BACKEND=torch $(BIN)/python -m pytest -q -m backends tests

# The benchmarks compare against Pylians (oracle extra) and time PyTorch's train step.
bench: $(TEST_STAMP)
	$(BIN)/nbgan bench
