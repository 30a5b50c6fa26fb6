# `make test` and `make demo` install what is missing first; `make install` alone sets up .venv/.
PYTHON ?= python3.11
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
PIP := $(VENV_PYTHON) -m pip
INSTALLED := $(VENV)/.installed

.PHONY: install system-packages test test-slow demo lint bench bench-peers clean mutation

install: system-packages $(INSTALLED)

# Debian packages: espeak-ng speaks the synthetic corpus, fonts-wqy-microhei draws Chinese in plots,
# chromium runs the page in the server's browser test (driven by Playwright; no browser download).
# Checked on every run (instant when present).
SYSTEM_PACKAGES := espeak-ng fonts-wqy-microhei chromium
system-packages:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(SYSTEM_PACKAGES); }

# Order matters: fairseq-fixed builds against the torch, numpy and cython already in the venv. The
# last step builds the ASG operator (C++ always, CUDA when a toolkit is found: see setup.py).
ASG_SOURCES := $(wildcard cif_plugin/ops/asg/csrc/*)
$(INSTALLED): requirements.txt requirements-dev.txt setup.py $(ASG_SOURCES)
	test -x $(VENV_PYTHON) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -c requirements.txt torch torchaudio
	$(PIP) install -c requirements.txt numpy cython setuptools wheel
	$(PIP) install -c requirements.txt --no-build-isolation fairseq-fixed
	$(PIP) install -r requirements.txt -r requirements-dev.txt
	$(PIP) install --no-build-isolation --no-deps -e .
	touch $(INSTALLED)

test: install
	$(VENV_PYTHON) -m pytest tests -q

demo: install
	bash egs/synthetic_zh/run.sh

test-slow: install
	$(VENV_PYTHON) -m pytest tests -q -m slow

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: install
	$(VENV_PYTHON) benchmarks/bench_cif.py
	$(VENV_PYTHON) benchmarks/bench_asg.py

# FunASR's Paraformer for the side-by-side of benchmarks/bench_decode.py, installed apart from our
# pins (--no-deps, into .venv-peers/, which the benchmark appends to sys.path). Not part of `make test`.
PEERS := .venv-peers
bench-peers: install
	$(PIP) install --upgrade --no-deps --target $(PEERS) -r benchmarks/requirements-peers.txt

clean:
	rm -rf $(VENV) $(PEERS) build *.egg-info .pytest_cache cif_plugin/ops/asg/*.so

# Mutation testing of the core modules (hours on 2 cores; not part of `make test`): mutation/.
mutation: install
	$(PIP) install -q -r requirements-mutation.txt
	$(VENV_PYTHON) mutation/run_mutmut.py
