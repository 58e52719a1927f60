# The two Quickstart commands are `make quickstart` and `make test`; `.ci/run` runs `make test`.
# Everything installs into a local virtual environment ($(VENV)); torch is pinned to the 2.13.0
# CPU wheel that this workplace has on disk (bring your own CUDA build with `pip install torch`).
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0

.PHONY: install quickstart test lint slurm browser

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Main job: the offline quickstart sweep on the local launcher and the local MLflow store, then
# the leaderboard (printed and written to results/) and its figures.
quickstart: install
	$(PY) -m harness.run -m experiment=quickstart
	$(PY) -m harness.report --plots
	@echo "note: the quickstart's budget (4 epochs, 1 seed) is a smoke test of the pipeline, not a result; results: results/studies/ (python -m harness.study <name>)"

# A one-node SLURM cluster on this machine (Debian packages, daemons on loopback); idempotent.
slurm:
	bash .ci/slurm/setup.sh

# Debian's chromium for the headless-browser test of the leaderboard page; idempotent.
browser:
	bash .ci/browser/setup.sh

# lint-imports: the layering contracts of pyproject.toml ([tool.importlinter], docs/DESIGN.md).
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

test: install slurm browser lint
	$(PY) -m pytest
