# The two commands a newcomer needs:
#   make dev    start the whole stack locally and show a CronWorkflow running (main job)
#   make test   everything CI runs: install, build the control plane if cold, lint, all tests
#
# Other targets: venv, lint, unit, cluster-bins, cluster-up, bench, browser.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: venv lint unit test cluster-bins cluster-up dev bench clean browser

$(VENV)/.installed: pyproject.toml devstack/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e ./devstack
	@touch $@

venv: $(VENV)/.installed

# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, helm and kwok
# from Go modules into a version-keyed cache (about 6 minutes cold on 2 cores, instant when warm).
cluster-bins:
	devstack/build.sh >/dev/null

# Debian's chromium for the console's browser tests (skipped when installed).
browser:
	devstack/install-chromium.sh

# Start the same control plane the tests use, by hand; prints the KUBECONFIG to export.
cluster-up: venv cluster-bins
	$(BIN)/python -m qstash_devstack.up

lint: venv
	$(BIN)/ruff check operator webhook qstash-server devstack tests bench
	$(BIN)/ruff format --check operator webhook qstash-server devstack tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: venv
	$(BIN)/pytest -m "not cluster" $(PYTEST_ARGS)

test: venv cluster-bins browser lint
	$(BIN)/pytest $(PYTEST_ARGS)

dev: venv cluster-bins
	$(BIN)/qstash-operator dev

bench: venv cluster-bins browser
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
