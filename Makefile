# `make train` and `make test` set up .venv on first use, then run. MODEL=fast|cnn|... picks the model.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODEL ?= softmax
STAMP := $(VENV)/.installed

.PHONY: train test lint venv clean browser fuzz audit

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'  # dev brings the train and serve extras: everything
	touch $(STAMP)

venv: $(STAMP)

train: $(STAMP)
	$(BIN)/digitrec train --recipe $(MODEL) --out runs/$(MODEL)-$$(date +%Y%m%d-%H%M%S)

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks docs
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/mypy src/digitrec

# The page's tests drive Debian's Chromium (Playwright's own browser download is not used).
browser:
	test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: lint browser
	$(BIN)/python -m pytest -q

# The property tests with many more examples than `make test` runs (minutes, not seconds).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest -q tests/test_fuzz.py

# Known vulnerabilities in the installed dependencies. Needs PyPI's JSON API or OSV, which the
# project's own machines cannot reach (so CI does not run it); run it where they can.
audit: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-audit
	$(BIN)/pip-audit --skip-editable --strict

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
