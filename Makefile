# One command to run, one to test; both set up what they need first.
#   make demo   sets up .venv and runs mlwatch over the demo data (DuckDB file, local
#               landing folder, outbox instead of Slack)
#   make test   sets up .venv (and Chromium and Java for the report and Spark tests) and
#               runs the whole test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

.PHONY: setup browser java demo test clean

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

# pyspark (the Spark parity test, tests/test_spark_parity.py) needs a Java 17+ runtime:
# Debian's openjdk-17-jre-headless. (Slim images lack the man folder its install links into.)
java:
	@java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])' || { \
		command -v apt-get >/dev/null || { echo "install a Java 17+ runtime (Debian package openjdk-17-jre-headless) for the Spark test"; exit 2; }; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO mkdir -p /usr/share/man/man1; \
		$$SUDO apt-get install -y -q openjdk-17-jre-headless >/dev/null 2>&1 || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q openjdk-17-jre-headless; }; }

# Two workers, one per core: each takes whole test files (module fixtures build once), the
# longest first (tests/conftest.py). TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
test: setup browser java
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) data warehouse reports mlwatch.yml dbt/target dbt/logs
