# Two commands on a fresh machine with Python 3.11, make and a C compiler:
#   make demo   -- create the virtualenv, install, run the main job (the benchmark, plots in out/bench)
#   make test   -- create the virtualenvs, install, run the whole suite (pure and compiled builds)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PYTHONDONTWRITEBYTECODE := 1

# The compiled build: a second virtualenv with agentrm installed (not editable) with the
# scheduler's hot modules compiled by mypyc (setup.py, AGENTRM_MYPYC=1).
CVENV  := .venv-mypyc
CBIN   := $(CVENV)/bin
CSTAMP := $(CVENV)/.installed-stamp
SOURCES := $(shell find kernel adapters specs -name '*.py' -not -path '*/__pycache__/*') setup.py pyproject.toml

.PHONY: venv venv-compiled demo test pytest pytest-compiled typecheck crosshair bench-kernel bench-runtime bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "agentrm needs Python >= 3.11, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	AGENTRM_MYPYC=0 $(BIN)/python -m pip install --quiet -e '.[dev,plot]'
	touch $(STAMP)

venv: $(STAMP)

$(CSTAMP): $(SOURCES)
	rm -rf $(CVENV)
	$(PYTHON) -m venv $(CVENV)
	$(CBIN)/python -m pip install --quiet --upgrade pip 'setuptools>=77' 'mypy>=1.10'
	AGENTRM_MYPYC=0 $(CBIN)/python -m pip install --quiet '.[dev,plot]'
	AGENTRM_MYPYC=1 $(CBIN)/python -m pip install --quiet --no-build-isolation --no-deps --force-reinstall .
	touch $(CSTAMP)

venv-compiled: $(CSTAMP)

demo: $(STAMP)
	$(BIN)/agentrm bench --plot out/bench

test: pytest typecheck crosshair pytest-compiled

pytest: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -q

# The same suite against the compiled build (tests/test_compiled.py checks that it is compiled).
pytest-compiled: $(CSTAMP)
	AGENTRM_EXPECT_COMPILED=1 HYPOTHESIS_PROFILE=ci $(CBIN)/python -m pytest -q

typecheck: $(STAMP)
	$(BIN)/mypy --strict -p agentrm

crosshair: $(STAMP)
	$(BIN)/python tests/run_crosshair.py

bench-kernel: $(STAMP) $(CSTAMP)
	@echo "== pure Python (the default install)"
	$(BIN)/python -m agentrm.adapters.bench_kernel
	@echo "== compiled build (AGENTRM_MYPYC=1)"
	$(CBIN)/python -m agentrm.adapters.bench_kernel

bench-runtime: $(STAMP) $(CSTAMP)
	$(BIN)/python -m agentrm.adapters.bench_runtime --durable --repeat 3
	$(CBIN)/python -m agentrm.adapters.bench_runtime --durable --repeat 3

bench: $(STAMP)
	$(BIN)/agentrm bench

clean:
	rm -rf $(VENV) $(CVENV) build dist src/*.egg-info
