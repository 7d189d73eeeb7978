# avatar_mf: the two commands a newcomer needs are `make run` and `make test`.
# Each does all of its own set-up on a fresh Debian/Ubuntu machine: Debian packages (as root or
# through sudo), a virtualenv in .venv, and the Python packages from pyproject.toml.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?=
# Debian packages: what the tests drive (SIPp is Debian's sip-tester) and what venv needs.
DEB_TEST_PACKAGES := sip-tester
DEB_BASE_PACKAGES := python3-venv

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint types unit sysdeps venv bench clean

run: $(STAMP)
	$(VENV)/bin/avatar-mf serve $(if $(CONFIG),--config $(CONFIG),)

test: $(STAMP) sysdeps lint types unit

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

types: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP) sysdeps
	$(PY) bench/run_all.py

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "avatar_mf needs Python >= 3.11; found $$($(PYTHON) --version 2>&1)." \
	         "Install python3.11 (or newer) and run: make PYTHON=python3.11 $(MAKECMDGOALS)"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
	  { echo "python venv support missing: installing $(DEB_BASE_PACKAGES)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(DEB_BASE_PACKAGES) || \
	    { echo "could not install $(DEB_BASE_PACKAGES): install it by hand"; exit 1; }; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Installs the Debian packages the tests use when a command they provide is missing.
sysdeps:
	@missing=""; \
	command -v sipp >/dev/null 2>&1 || missing="$$missing sip-tester"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; } || \
	  { echo "ERROR: could not install:$$missing (need root or sudo and a Debian package mirror)." \
	         "Tests that drive SIPp will fail without it."; exit 1; }; \
	fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
