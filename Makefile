# doorpi: `make demo` runs the gate on simulated hardware, `make test` runs the suite.
# Both set up what they need (system packages, the venv, the face models) by themselves.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODELS := models/build
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: demo test lint system-deps venv models bench image-test image image-lock clean reliability

system-deps:
	@./scripts/system-deps.sh

$(STAMP): pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: system-deps $(STAMP)

models: venv
	@if [ -f tools/models/build.py ]; then $(BIN)/python tools/models/build.py --out $(MODELS); fi

demo: venv models
	$(BIN)/doorpi demo

lint: venv
	$(BIN)/ruff check
	$(BIN)/ruff format --check src tests tools

test: venv models lint
	$(BIN)/python -m pytest -q

bench: venv models
	$(BIN)/doorpi bench core --json

# Long forms of tests/reliability (power cuts, restarts, fuzzers, hardware faults, a 10-minute
# soak with the face path running; ~17 min here, root): build/reliability/summary.{json,md}.
# `make test` runs their short forms; DOORPI_RELIABILITY=medium a fifth of the long ones.
reliability: venv models
	$(SUDO) ./scripts/reliability.sh

# Opt-in, slow (minutes): an arm64 root filesystem through qemu-user, with doorpi installed.
image-test: venv models
	@./scripts/system-deps.sh image
	$(SUDO) firmware_image/rootfs-test.sh

# The real Raspberry Pi OS image (needs pi-gen and the Raspberry Pi OS archive).
image: models
	$(SUDO) firmware_image/build.sh

# The image's wheels, pinned to this venv's versions with their aarch64 sha256 (needs PyPI).
image-lock: venv
	$(BIN)/python tools/image/lock.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
