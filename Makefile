# Two commands on a fresh machine with Python 3.11 and make:
#   make demo   -- create the virtualenv, install, run the main job (the benchmark, plots in out/bench)
#   make test   -- create the virtualenv, install, run the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv demo test pytest typecheck crosshair bench-kernel bench-kernel-compiled bench-runtime bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "agentrm needs Python >= 3.11, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,plot]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/agentrm bench --plot out/bench

test: pytest typecheck crosshair

pytest: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -q

typecheck: $(STAMP)
	$(BIN)/mypy --strict -p agentrm

crosshair: $(STAMP)
	$(BIN)/python tests/run_crosshair.py

bench-kernel: $(STAMP)
	$(BIN)/python -m agentrm.adapters.bench_kernel

# An experiment, not the shipped build: the same benchmark with the scheduler's two hot
# modules compiled by mypyc (part of mypy; needs a C compiler), in a copy under build/.
COMPILED := build/compiled
bench-kernel-compiled: $(STAMP)
	rm -rf $(COMPILED) && mkdir -p $(COMPILED) && cp -rL src/agentrm $(COMPILED)/agentrm
	cd $(COMPILED) && ../../$(BIN)/mypyc agentrm/kernel/scheduler/transitions.py agentrm/kernel/scheduler/gate.py > mypyc.log
	PYTHONPATH=$(COMPILED) $(BIN)/python -m agentrm.adapters.bench_kernel

bench-runtime: $(STAMP)
	$(BIN)/python -m agentrm.adapters.bench_runtime --durable --repeat 3

bench: $(STAMP)
	$(BIN)/agentrm bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info
