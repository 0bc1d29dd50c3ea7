# The two commands a newcomer needs:
#   make dev    start the whole stack locally and show a CronWorkflow running (main job)
#   make test   everything CI runs: install, build the control plane if cold, lint, all tests
#
# Other targets: venv, lint, unit, cluster-bins, host-packages, node-bins, image, cluster-up,
# bench, browser.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: venv lint unit test cluster-bins host-packages node-bins image cluster-up dev bench clean browser

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

# Debian packages for the image and real-node tests: podman, runc, containerd, CNI plugins,
# debootstrap, catatonit, busybox-static (apt-get, only what is missing; silent when all are there).
host-packages:
	devstack/host-packages.sh

# kubelet from the control plane's module pins into its own cache (~35 s after cluster-bins on 2
# cores, as their Go build cache is shared; instant when warm).
node-bins: cluster-bins
	devstack/build-node.sh >/dev/null

# The Dockerfile built with podman on a local debootstrap base (cold ~40 s base + ~20-35 s build;
# instant when the sources are unchanged). Prints the image reference.
image: host-packages
	devstack/image.sh

# Start the same control plane the tests use, by hand; prints the KUBECONFIG to export.
cluster-up: venv cluster-bins
	$(BIN)/python -m qstash_devstack.up

lint: venv
	$(BIN)/ruff check operator webhook qstash-server devstack tests bench
	$(BIN)/ruff format --check operator webhook qstash-server devstack tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: venv
	$(BIN)/pytest -m "not cluster and not image" $(PYTEST_ARGS)

test: venv cluster-bins browser host-packages node-bins lint
	devstack/image.sh >/dev/null
	devstack/image.sh extras >/dev/null
	$(BIN)/pytest $(PYTEST_ARGS)

dev: venv cluster-bins
	$(BIN)/qstash-operator dev

bench: venv cluster-bins browser
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
