# The two commands: `make demo` and `make test`. Both set everything up on a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint types contracts pytest micropython demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: install lint types contracts pytest micropython

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check protocols edge fleet hub estran hil-tests

types: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

pytest: install
	$(BIN)/pytest $(PYTEST_ARGS)

# The codec vector tests again, on the MicroPython unix port (firmware-style codecs).
micropython: install
	$(BIN)/micropython protocols/tests/mpy_run.py

demo: install
	$(BIN)/estran demo $(DEMO_ARGS)

# Every benchmark, each printing JSON with the peer measured in the same run.
bench: install
	$(BIN)/estran bench decode --json
	$(BIN)/estran bench buffer --readings 1000000 --json
	$(BIN)/estran bench sync --readings 1000000 --broker mosquitto --json
	$(BIN)/estran bench edge --json

clean:
	rm -rf $(VENV) build *.egg-info
