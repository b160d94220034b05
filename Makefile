# The two commands: `make demo` and `make test`. Both set everything up on a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint types contracts pytest micropython demo bench clean browser faketime

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

# The rig the hil-tests run on (docs/hil.md): this machine's simulators by default; a bench
# passes its own file, e.g. `make pytest RIG=hil-tests/bench.yaml`.
RIG ?= hil-tests/sim.yaml

pytest: install browser faketime
	$(BIN)/pytest --rig $(RIG) --durations=40 $(PYTEST_ARGS)

# Debian's Chromium for the dashboard's browser tests (Playwright drives it; it never downloads
# a browser of its own). Without root this only says so: the tests skip, and fail under CI=true.
browser:
	@command -v chromium >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium missing (apt-get install -y chromium): the browser tests will skip"

# libfaketime, the clock of the simulated rig (hil-tests/sim.yaml: clock). Without root this
# only says so: the clock tests skip, and fail under CI=true.
faketime:
	@ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq faketime >/dev/null; } \
	  || echo "libfaketime missing (apt-get install -y faketime): the clock tests will skip"

# The codec vector tests again, on the MicroPython unix port (firmware-style codecs), run by
# micropython-lib's unittest: its PyPI sdist (MicroPython's own format, one unittest.py) is
# fetched once, checked against the pinned hash and unpacked into the port's library path.
MPY_UNITTEST := micropython-unittest-0.4
MPY_UNITTEST_SHA256 := 83b4a65c44b2f6382bc3dd8fbbe002b5679dbfc3744b99eaa59802e6fd14cf67
MPY_UNITTEST_URL := https://files.pythonhosted.org/packages/45/3f/b9e333ed1f402f11bf83f730c72f3131dae203c9d0cb3d536ee022282544/$(MPY_UNITTEST).tar.gz
MPY_LIB := $(VENV)/micropython-lib

$(MPY_LIB)/unittest.py: | install
	mkdir -p $(MPY_LIB)
	$(BIN)/python -c "import hashlib, io, sys, tarfile, urllib.request; \
	  data = urllib.request.urlopen('$(MPY_UNITTEST_URL)', timeout=60).read(); \
	  got = hashlib.sha256(data).hexdigest(); \
	  got == '$(MPY_UNITTEST_SHA256)' or sys.exit('$(MPY_UNITTEST): sha256 ' + got + ' is not the pinned one'); \
	  member = tarfile.open(fileobj=io.BytesIO(data)).extractfile('$(MPY_UNITTEST)/unittest.py'); \
	  open('$@', 'wb').write(member.read())"

micropython: install $(MPY_LIB)/unittest.py
	@set -e; for f in protocols/tests/test_vectors_*.py; do \
	  m=$$(basename $$f .py); echo "== $$m (MicroPython)"; \
	  MICROPYPATH=$(MPY_LIB):. $(BIN)/micropython protocols/tests/mpy_main.py $$m; \
	done

demo: install
	$(BIN)/estran demo $(DEMO_ARGS)

# Every benchmark, each printing JSON with the peer measured in the same run.
bench: install
	$(BIN)/estran bench decode --json
	$(BIN)/estran bench buffer --readings 1000000 --json
	$(BIN)/estran bench sync --readings 1000000 --broker mosquitto --json
	$(BIN)/estran bench edge --json
	$(BIN)/estran bench alerts --json
	$(BIN)/estran bench install --json
	$(BIN)/estran bench rollout --gateways 20 --json
	$(BIN)/estran bench fleet --gateways 1000
	$(BIN)/estran bench territory
	$(BIN)/estran bench soak --duration 3600 --warmup 300
	$(BIN)/estran bench api --json  # first run: generates its data set (about 15 GB, 12 min)

clean:
	rm -rf $(VENV) build *.egg-info
