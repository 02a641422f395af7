# The README's two set-up commands. Both create or reuse .venv in this folder.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends

.PHONY: run test lock python-venv test-tools

run: python-venv $(VENV)/.installed-run
	$(BIN)/python -m service

test: python-venv test-tools $(VENV)/.installed-test
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# Minimal Debian images ship python3 without venv support.
python-venv:
	@$(PYTHON) -c "import ensurepip" 2>/dev/null || { $(APT_INSTALL) python3-venv; }

# The tests synthesise their audio with espeak-ng.
test-tools:
	@command -v espeak-ng >/dev/null || { $(APT_INSTALL) espeak-ng; }

$(VENV)/.installed-run: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e ".[train,test]"
	touch $@ $(VENV)/.installed-run

# Re-pin every package after a change to pyproject.toml's dependencies.
lock: $(VENV)/.installed-test
	{ echo "# Exact versions of every package, direct and transitive; the Makefile installs with -c requirements.lock."; \
	  echo "# Regenerate with: make lock"; $(BIN)/pip freeze --exclude-editable; } > requirements.lock
