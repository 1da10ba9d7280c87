# Every target bootstraps .venv itself, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test test-deep mpy-check clean help

help:
	@echo "make test       run the whole suite (CI profile)"
	@echo "make test-deep  run the property tests with many more examples"
	@echo "make mpy-check  compile the firmware with mpy-cross for armv6m and xtensawin"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -q

test-deep: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -q

mpy-check: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q tests/test_micropython.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
