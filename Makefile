# seg_perception developer entry points.  `make demo` and `make test` set everything up on first use.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
READY  := $(VENV)/.ready
# Everything that changes what `make setup` installs into the venv.
SETUP_INPUTS := requirements.txt requirements-nodeps.txt setup.py setup.cfg package.xml tools/venv_hook.py $(wildcard launch/* config/* models/* resource/*)
ACTIVATE := source $(VENV)/bin/activate

.PHONY: help setup demo test lint bench freeze colcon clean

help:
	@echo "make demo   - set up on first use, run the node on real frames, write demo_out/"
	@echo "make test   - set up on first use, run the whole test suite"
	@echo "make setup  - build .venv from the package registries (idempotent)"
	@echo "make lint   - ruff + package.xml schema check only"
	@echo "make bench  - run the benchmarks and regenerate docs/PERFORMANCE.md"
	@echo "make colcon - build this package in a colcon workspace under build/colcon_ws"

setup: $(READY)

# The ready marker is written last: a failed step leaves no venv that looks ready,
# and the next `make setup` repeats the install (pip skips what is already there).
$(READY): $(SETUP_INPUTS)
	@rm -f $(READY)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip==26.3
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(VENV)/bin/python tools/venv_hook.py $(VENV)
	@touch $(READY)
	@echo "setup: $(VENV) is ready; 'source $(VENV)/bin/activate' is the one environment step"

demo: $(READY)
	$(ACTIVATE) && python -m seg_perception.cli.demo --out demo_out

test: $(READY)
	$(ACTIVATE) && python -m pytest -ra

lint: $(READY)
	$(ACTIVATE) && python -m pytest -ra test/test_lint.py

bench: $(READY)
	$(ACTIVATE) && python -m bench.run_all --out docs/PERFORMANCE.md $(if $(BASE),--base $(BASE))

freeze: $(READY)
	$(VENV)/bin/python tools/freeze_requirements.py requirements.txt.new
	@echo "review requirements.txt.new and move it over requirements.txt"

colcon: $(READY)
	rm -rf build/colcon_ws && mkdir -p build/colcon_ws/src
	ln -s "$(CURDIR)" build/colcon_ws/src/seg_perception
	$(ACTIVATE) && cd build/colcon_ws && colcon build --packages-select seg_perception
	@echo "now: source build/colcon_ws/install/setup.bash"

clean:
	rm -rf $(VENV) build install log demo_out .pytest_cache *.egg-info
