# Two commands for a fresh clone: `make compile` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: compile test validate bench venv clean-venv

# Re-installs only when the pinned dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==24.3.1"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	@touch $@

venv: $(STAMP)

# Same as a plain `kapitan compile`, with a bad inventory reported in one clear line.
compile: $(STAMP)
	$(BIN)/airflow-gitops compile

# The whole suite, then `validate` on the repository itself.
test: $(STAMP)
	$(BIN)/python -m pytest
	$(BIN)/airflow-gitops validate

# Every check of `airflow-gitops validate`, for every environment (what CI and pre-commit run).
validate: $(STAMP)
	$(BIN)/airflow-gitops validate

bench: $(STAMP)
	$(BIN)/python -m airflow_gitops.bench

clean-venv:
	rm -rf $(VENV)
