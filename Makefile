# One command to run, one to test; both set up what they need first.
#   make demo   sets up .venv and runs mlwatch over the demo data (DuckDB file, local
#               landing folder, outbox instead of Slack)
#   make test   sets up .venv and runs the whole test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

.PHONY: setup browser demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --quiet -r requirements.txt
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	@touch $@
	@echo "ready: $(BIN)/mlwatch"

demo: setup
	$(BIN)/mlwatch demo

# The report test opens the daily report in Debian's headless Chromium.
browser:
	@command -v chromium >/dev/null || { \
		command -v apt-get >/dev/null || { echo "install Chromium (Debian package chromium) for the report test"; exit 2; }; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }; }

test: setup browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) data warehouse reports mlwatch.yml dbt/target dbt/logs
