# The two commands: `make demo` and `make test`. Both set everything up on a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint types contracts pytest micropython demo bench clean browser

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
	cd playbooks && ANSIBLE_HOME=$(CURDIR)/$(VENV)/ansible ../$(BIN)/ansible-lint --offline --profile production -q

types: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

pytest: install browser
	$(BIN)/pytest $(PYTEST_ARGS)

# Debian's Chromium for the dashboard's browser tests (Playwright drives it; it never downloads
# a browser of its own). Without root this only says so: the tests skip, and fail under CI=true.
browser:
	@command -v chromium >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium missing (apt-get install -y chromium): the browser tests will skip"

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
	$(BIN)/estran bench alerts --json
	$(BIN)/estran bench api --json  # first run: generates its data set (about 15 GB, 12 min)

clean:
	rm -rf $(VENV) build *.egg-info
