# Two commands do everything on a fresh machine (Python 3.11 with venv):
#   make lab    set up .venv and open the course in JupyterLab
#   make test   set up .venv and run the whole test suite
# Set-up is skipped when pyproject.toml has not changed since the last install.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pgcourse-installed

.PHONY: setup lab test bench exercises clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: this is the CPU wheel; an unpinned torch pulls GBs of CUDA packages.
	$(BIN)/python -m pip install "torch==2.13.0"
	$(BIN)/python -m pip install -e ".[course,dev,bench]"
	touch $(STAMP)

lab: setup
	SDL_VIDEODRIVER=dummy $(BIN)/jupyter lab notebooks/

test: setup
	SDL_VIDEODRIVER=dummy $(BIN)/python -m pytest

bench: setup
	$(BIN)/pgcourse bench

clean-venv:
	rm -rf $(VENV)
