# Two commands for a fresh clone: `make compile` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: compile test validate bench venv bytecode clean-venv

# Re-installs only when the pinned dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==24.3.1"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	@touch $@

venv: $(STAMP)

# The CLI's byte-code, written ahead: an editable install never compiles it, and where
# PYTHONDONTWRITEBYTECODE is set (CI images) Python would re-compile it on every command,
# about 15 ms of sync-dags' edit loop. Up to date, this only compares timestamps.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q scripts/airflow_gitops

# What a plain `kapitan compile` leaves in compiled/, faster (only changed files are written; see
# the README's Speed section), with a bad inventory reported in one clear line.
compile: bytecode
	$(BIN)/airflow-gitops compile

# The whole suite, then `validate` on the repository itself.
test: bytecode
	$(BIN)/python -m pytest
	$(BIN)/airflow-gitops validate

# Every check of `airflow-gitops validate`, for every environment (what CI and pre-commit run).
validate: bytecode
	$(BIN)/airflow-gitops validate

bench: bytecode
	$(BIN)/python -m airflow_gitops.bench

clean-venv:
	rm -rf $(VENV)
