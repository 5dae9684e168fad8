# The two commands a newcomer needs: `make book` and `make test`.
# Both create the virtual environment in .venv/ on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg --nbval-cell-timeout=600
# Notebooks validated at once (pytest-xdist; each notebook is single-threaded).
JOBS   ?= 2
# `make test` validates under a foreign CPU configuration (rnnbook/portability.py), so
# an output that only holds on the CPU that produced it fails here first.
# `make test CPU_CONFIG=native` validates with this machine's own kernels instead.
CPU_CONFIG ?= foreign
CPU_ENV = $(if $(filter native,$(CPU_CONFIG)),,$$($(PY) -m rnnbook.portability foreign-env))

.DEFAULT_GOAL := help
.PHONY: help env data book test execute compare export lab student clean

help:
	@echo "make book     build the HTML book into _build/html (Sphinx warnings are errors)"
	@echo "make test     strict nbval on every notebook (foreign CPU configuration), unit and hygiene tests, HTML build"
	@echo "make execute  re-execute every notebook in place to refresh its outputs"
	@echo "make compare  execute under the foreign CPU configuration and report what moved (writes nothing)"
	@echo "make export   regenerate rnnbook/ modules from the cells marked for export"
	@echo "make lab      open JupyterLab on the notebooks"
	@echo "make student  notebooks without exercise solutions, in _build/student"
	@echo "make clean    remove build outputs (keeps .venv and data)"

# The environment: a complete, pinned lock installed without dependency resolution.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

env: $(STAMP)

# The corpus: found in data/, verified by SHA-1, downloaded only when missing.
data: $(STAMP)
	@$(PY) -c "from rnnbook.data import fetch_time_machine as f; print('corpus:', f())"

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

test: book data
	env $(CPU_ENV) $(PY) -m pytest tests notebooks $(NBVAL) -n $(JOBS) --dist loadfile -q

execute: $(STAMP) data
	$(PY) tools/execute_notebooks.py --jobs $(JOBS)

compare: $(STAMP) data
	$(PY) tools/execute_notebooks.py --compare --cpu-config $(CPU_CONFIG) --jobs $(JOBS)

export: $(STAMP)
	$(PY) -m rnnbook.export

lab: $(STAMP) data
	$(VENV)/bin/jupyter lab notebooks

student: $(STAMP)
	$(PY) tools/student_notebooks.py _build/student

clean:
	rm -rf _build
