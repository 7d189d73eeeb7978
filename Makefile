# avatar_mf: the two commands a newcomer needs are `make run` and `make test`.
# Each does all of its own set-up on a fresh Debian/Ubuntu machine: Debian packages (as root or
# through sudo), a virtualenv in .venv, and the Python packages.
#
# Python packages, two stamps:
# - `make run` installs the runtime dependencies only, exactly as requirements.lock pins them
#   (pip --require-hashes: every version and file hash checked), then the package itself
#   (--no-deps): $(RUN_STAMP).
# - `make test` (lint, types, unit) adds the dev tools of pyproject.toml's [dev] extra (pytest,
#   mypy, ruff ...) on top: $(DEV_STAMP). The runtime packages stay at their locked versions.
# requirements.lock is written by `make lock` (pip-compile --generate-hashes from
# pyproject.toml's dependencies): run it after changing them, and commit the result.

PYTHON    ?= python3
VENV      ?= .venv
PY        := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
LOCK      := requirements.lock
CONFIG    ?=
# make fuzz: seconds per parser's fuzz target, targets fuzzed at once, which targets (all if empty).
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
FUZZ_TARGETS ?=
# Debian packages: what the tests drive (SIPp is Debian's sip-tester; kamailio is the lab's
# SIP proxy, its base package has every module the lab config loads; chromium runs
# tests/browser) and what venv needs.
DEB_TEST_PACKAGES := sip-tester kamailio chromium
DEB_BASE_PACKAGES := python3-venv

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint types unit fuzz sysdeps rundeps venv devenv lock bench lab clean web webdeps

run: $(RUN_STAMP) rundeps
	$(VENV)/bin/avatar-mf serve $(if $(CONFIG),--config $(CONFIG),)

# unit includes tests/fuzz: every parser's fuzz target for a few seconds (docs/fuzzing.md).
test: $(DEV_STAMP) sysdeps webdeps lint types unit

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check src tests bench fuzz
	$(VENV)/bin/lint-imports

types: $(DEV_STAMP)
	$(VENV)/bin/mypy

unit: $(DEV_STAMP)
	$(PY) -m pytest -q

# Fuzz every parser (SIP, SDP, HTTP over the data channel, metadata, ARF units, transfers,
# ARF containers, GLB) for FUZZ_SECONDS each with atheris; corpora and crash inputs in var/fuzz.
# Exits non-zero when a target crashed. docs/fuzzing.md.
fuzz: $(DEV_STAMP)
	$(PY) -m fuzz.run --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) $(FUZZ_TARGETS)

# Every benchmark, one after the other (about 14 minutes); docs/performance.md has the figures.
bench: $(DEV_STAMP) sysdeps
	$(PY) bench/dc_setup.py
	$(PY) bench/relay_latency.py
	$(PY) bench/relay_latency.py --senders 1
	$(PY) bench/text_animation.py
	$(PY) bench/sipp_rate.py --rates 100,200 --seconds 20
	$(PY) bench/soak.py

# The IMS lab on loopback, without Docker: Kamailio on 127.0.0.1:5070 in front of two MF nodes
# (127.0.0.1:5080 and :5081, admin 8080 and 8081) until Ctrl-C. See docs/lab.md.
lab: $(RUN_STAMP) sysdeps
	$(PY) -m avatar_mf.testing.lab

venv: $(RUN_STAMP)

devenv: $(DEV_STAMP)

# Re-resolve the runtime dependencies and write requirements.lock (needs the package index).
lock: $(RUN_STAMP)
	$(PY) -m pip install -q pip-tools
	$(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url \
	  --no-emit-find-links --output-file=$(LOCK) pyproject.toml

$(DEV_STAMP): $(RUN_STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[dev]'
	touch $(DEV_STAMP)

$(RUN_STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "avatar_mf needs Python >= 3.11; found $$($(PYTHON) --version 2>&1)." \
	         "Install python3.11 (or newer) and run: make PYTHON=python3.11 $(MAKECMDGOALS)"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
	  { echo "python venv support missing: installing $(DEB_BASE_PACKAGES)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(DEB_BASE_PACKAGES) || \
	    { echo "could not install $(DEB_BASE_PACKAGES): install it by hand"; exit 1; }; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	touch $(RUN_STAMP)

# The browser side (web/, docs/browser.md): npm packages pinned by web/package-lock.json,
# installed from the npm registry by `npm ci` (make test: webdeps). `make web` rebuilds the
# bundles shipped in the package (src/avatar_mf/dcapp/app.js, src/avatar_mf/webclient/
# client.js): they are committed, so that the MF runs without node; run it after changing
# web/src and commit the result. tests/browser checks the committed bundles equal a fresh build.
WEB_STAMP := web/node_modules/.installed

webdeps: $(WEB_STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	@command -v npm >/dev/null 2>&1 || $(MAKE) sysdeps
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $(WEB_STAMP)

web: $(WEB_STAMP)
	cd web && node build.mjs

# Debian packages, installed only when what they provide is missing (as root, or with sudo):
# - to run: libespeak-ng1 (text-driven animation), libvo-amrwbenc0 (the AMR-WB encoder; without
#   it the MF does not offer AMR-WB); libegl1, libegl-mesa0 and libgl1-mesa-dri (offscreen
#   OpenGL through EGL on Mesa, llvmpipe without a GPU: the renderer, render/); libgl1 and
#   libglib2.0-0 (OpenCV, which mediapipe's face landmarker imports, links libGL and GLib);
# - to test: sip-tester (SIPp), kamailio (the lab proxy; its base package has every module the
#   lab config loads), nodejs and npm (the Khronos glTF validator, the browser bundles),
#   chromium (tests/browser drive it with Playwright: no browser download).
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
	ldconfig -p 2>/dev/null | grep -q 'libvo-amrwbenc\.so' || missing="$$missing libvo-amrwbenc0"; \
	ldconfig -p 2>/dev/null | grep -q 'libEGL\.so\.1' || missing="$$missing libegl1"; \
	ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa\.so' || missing="$$missing libegl-mesa0"; \
	ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1 || missing="$$missing libgl1-mesa-dri"; \
	ldconfig -p 2>/dev/null | grep -q 'libGL\.so\.1' || missing="$$missing libgl1"; \
	ldconfig -p 2>/dev/null | grep -q 'libglib-2\.0\.so\.0' || missing="$$missing libglib2.0-0"; \
	$(call install_missing,Without libespeak-ng1 the MF runs with text-driven animation off; without libvo-amrwbenc0 it does not offer AMR-WB; without EGL and Mesa it cannot render avatars; without libgl1 and libglib2.0-0 face tracking cannot load.)

sysdeps: rundeps
	@missing=""; \
	command -v sipp >/dev/null 2>&1 || missing="$$missing sip-tester"; \
	command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ] || missing="$$missing kamailio"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	$(call install_missing,The tests that drive SIPp, Kamailio and Chromium and the glTF validator need them.)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var web/node_modules
