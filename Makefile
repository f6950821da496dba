# Two commands for a fresh clone: `make compile` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: compile test test-packages validate bench venv bytecode clean-venv

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

# Debian packages the tests run for real: slapd and ldap-utils (an LDAP directory to sign in against,
# and the clients that prove it answers), openssl (its throwaway CA; slim images lack the CLI),
# bubblewrap (a compiled pod's containers run under a pod's constraints), the headers pip
# builds python-ldap from (it has no wheel for Linux), and what `airflow-gitops up` runs besides:
# iproute2 (a network namespace per pod), PostgreSQL 15 and redis-server (the stand-ins for the
# bundled database's and Redis's images).
TEST_PACKAGES := slapd ldap-utils openssl bubblewrap libldap2-dev libsasl2-dev redis-server iproute2 postgresql-15
APT_INSTALL   := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends

# Installs only what is missing, so a prepared machine never waits for apt; that takes root, so
# anyone else is told the exact command and stopped here rather than by a test halfway through.
test-packages:
	@missing=""; \
	for package in $(TEST_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "make test needs the Debian packages:$$missing" >&2; \
	    echo "install them as root: apt-get update && $(APT_INSTALL)$$missing" >&2; \
	    exit 1; \
	  fi; \
	  echo "installing the Debian packages the tests need:$$missing"; \
	  apt-get update && $(APT_INSTALL)$$missing; \
	fi

# The whole suite, then `validate` on the repository itself.
test: test-packages bytecode
	$(BIN)/python -m pytest
	$(BIN)/airflow-gitops validate

# Every check of `airflow-gitops validate`, for every environment (what CI and pre-commit run).
validate: bytecode
	$(BIN)/airflow-gitops validate

# `make bench BENCH_ARGS="--helm-renderer PATH --helm-chart DIR"` adds the official chart's figures.
bench: bytecode
	$(BIN)/python -m airflow_gitops.bench $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)
