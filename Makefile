# Every target creates or reuses .venv and installs what it needs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SITE ?= park-a

.PHONY: demo test bench lint models venv mosquitto clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[sim,train,bench,dev]'
	@touch $(STAMP)

venv: $(STAMP)

mosquitto:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || \
	  { echo "installing Debian's mosquitto"; \
	    (apt-get install -y -q mosquitto >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q mosquitto >/dev/null)); }
	@# The broker is started by the tests on a free port, never as a system service.
	@systemctl disable --now mosquitto >/dev/null 2>&1 || true

demo: $(STAMP)
	$(BIN)/python -m parksim.demo --site $(SITE)

test: $(STAMP) mosquitto
	$(BIN)/python -m pytest -q

bench: $(STAMP) mosquitto
	$(BIN)/parkedge bench

lint: $(STAMP)
	$(BIN)/ruff check edge drivers
	$(BIN)/mypy --strict edge drivers

models: $(STAMP)
	$(BIN)/python -m models.train --all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
