# The two quick-start commands. Each creates .venv and installs fundwatch on first use.
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test bench

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)  ## the embedded default: 60 simulated days of the simulated bank, about a minute
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
