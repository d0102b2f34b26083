# The two commands of README.md. Each one sets up everything it needs first, and is
# safe to run again: a venv with the Python dependencies, Debian's chromium, and for the tests
# Debian's postgresql and redis-server (the fixtures start private instances of them).
VENV      ?= .venv
PYTHON    ?= python3
CHROMIUM  ?= $(or $(HARVEST_CHROMIUM),/usr/bin/chromium)
SUDO      := $(if $(filter 0,$(shell id -u)),,sudo)
STAMP     := $(VENV)/.installed

.PHONY: demo test setup chromium services lint

demo: setup  ## start the sandbox systems and harvest every demo robot for every demo account
	$(VENV)/bin/harvest demo

test: setup services  ## lint, then the whole test suite (real Chromium against the sandbox)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest $(PYTEST_ARGS)

setup: $(STAMP) chromium

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "gridharvest needs Python 3.11 or newer as $(PYTHON); set PYTHON=python3.12 or similar"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,postgresql,distributed]'
	touch $@

# Playwright's own browser download cannot work here: we drive Debian's chromium, and
# install CJK fonts so that screenshots of Chinese pages are legible.
chromium:
	@if [ ! -x "$(CHROMIUM)" ] || ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
	  echo "Installing Debian's chromium and CJK fonts (none at $(CHROMIUM))"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi
	@test -x "$(CHROMIUM)" || { echo "Chromium is still missing at $(CHROMIUM): set HARVEST_CHROMIUM"; exit 1; }

# The tests start their own PostgreSQL and Redis on free ports (tests/services.py): only the binaries
# are needed here; no system-wide server is started or configured.
services:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v redis-server >/dev/null; then \
	  echo "Installing Debian's postgresql and redis-server for the tests"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql redis-server >/dev/null; \
	fi

lint: setup
	$(VENV)/bin/ruff check .
