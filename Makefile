# avatar_mf: the two commands a newcomer needs are `make run` and `make test`.
# Each does all of its own set-up on a fresh Debian/Ubuntu machine: Debian packages (as root or
# through sudo), a virtualenv in .venv, and the Python packages from pyproject.toml.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?=
# Debian packages: what the tests drive (SIPp is Debian's sip-tester; kamailio is the lab's
# SIP proxy, its base package has every module the lab config loads) and what venv needs.
DEB_TEST_PACKAGES := sip-tester kamailio
DEB_BASE_PACKAGES := python3-venv

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint types unit sysdeps rundeps venv bench lab clean

run: $(STAMP) rundeps
	$(VENV)/bin/avatar-mf serve $(if $(CONFIG),--config $(CONFIG),)

test: $(STAMP) sysdeps lint types unit

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports

types: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q

# Every benchmark, one after the other (about 10 minutes); docs/performance.md has the figures.
bench: $(STAMP) sysdeps
	$(PY) bench/dc_setup.py
	$(PY) bench/relay_latency.py
	$(PY) bench/relay_latency.py --senders 1
	$(PY) bench/text_animation.py
	$(PY) bench/sipp_rate.py --rates 100,200 --seconds 20

# The IMS lab on loopback, without Docker: Kamailio on 127.0.0.1:5070 in front of two MF nodes
# (127.0.0.1:5080 and :5081, admin 8080 and 8081) until Ctrl-C. See docs/lab.md.
lab: $(STAMP) sysdeps
	$(PY) -m avatar_mf.testing.lab

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

# Debian packages, installed only when what they provide is missing (as root, or with sudo):
# - to run: libespeak-ng1 (text-driven animation);
# - to test: sip-tester (SIPp), kamailio (the lab proxy; its base package has every module the
#   lab config loads), nodejs and npm (the Khronos glTF validator).
define install_missing
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; } || \
	  { echo "ERROR: could not install:$$missing (need root or sudo and a Debian package mirror)."; \
	    echo "$(1)"; exit 1; }; \
	  case "$$missing" in *kamailio*) if [ -d /run/systemd/system ]; then \
	    echo "disabling the kamailio system service the package started: it takes port 5060" \
	         "(make run's); the tests and make lab run their own kamailio"; \
	    $(SUDO) systemctl disable --now kamailio >/dev/null 2>&1 || true; fi;; esac; \
	fi
endef

rundeps:
	@missing=""; \
	ldconfig -p 2>/dev/null | grep -q 'libespeak-ng\.so' || missing="$$missing libespeak-ng1"; \
	$(call install_missing,Without libespeak-ng1 the MF runs with text-driven animation off.)

sysdeps: rundeps
	@missing=""; \
	command -v sipp >/dev/null 2>&1 || missing="$$missing sip-tester"; \
	command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ] || missing="$$missing kamailio"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	$(call install_missing,The tests that drive SIPp and Kamailio and the glTF validator need them.)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
