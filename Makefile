# The two quick-start commands. Each creates .venv and installs fundwatch on first use.
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock requirements-test.lock | cksum | cut -d' ' -f1)

.PHONY: install run test bench

install: $(STAMP)  ## .venv with the locked dependencies and fundwatch (editable)

# the exact versions of the lock files, then fundwatch itself without resolving again
$(STAMP): pyproject.toml requirements.lock requirements-test.lock
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-test.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)  ## the embedded default: 60 simulated days of the simulated bank, one to three minutes
	$(VENV)/bin/fundwatch run --days 60

test: $(STAMP)  ## the whole test suite: rule packs (lint, embedded tests), then pytest
	@# the page tests drive Debian's chromium; the CJK font draws the page's Chinese labels
	command -v chromium >/dev/null && fc-list | grep -qi wenquanyi || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei)
	$(VENV)/bin/fundwatch rules lint rules/
	$(VENV)/bin/fundwatch rules test rules/
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/replay.py
