# The two commands a newcomer needs: `make book` and `make test`.
# Both create the virtual environment in .venv/ on first use.

PYTHON ?= python3
# The Python versions the lock (requirements.txt) installs on: every pin has a wheel for
# CPython 3.11.5 or newer, 3.12 and 3.13 (README, "Python versions"; soupsieve needs 3.11.5).
# The check runs before a virtual environment is created, and on an existing .venv.
PYTHON_VERSIONS := 3.11 (3.11.5 or newer), 3.12 or 3.13
check_python = v=$$($(1) -c 'import platform; print("is Python " + platform.python_version())' 2>/dev/null) \
  || v="was not found"; $(1) -c 'import sys; sys.exit(not ((3, 11, 5) <= sys.version_info[:3] < (3, 14)))' 2>/dev/null || { \
  echo "error: $(1) $$v; the pinned environment needs Python $(PYTHON_VERSIONS)." >&2; \
  echo "$(2)" >&2; exit 1; }
PYTHON_HINT := Choose another interpreter, for example: make PYTHON=python3.11 $(or $(MAKECMDGOALS),env)
VENV_HINT    = $(VENV) was created with it: remove $(VENV), then: make PYTHON=python3.11 $(or $(MAKECMDGOALS),env)
# Create .venv with a supported $(PYTHON), or check the one that exists.
make_venv = if [ -x $(PY) ]; then $(call check_python,$(PY),$(VENV_HINT)); \
  else $(call check_python,$(PYTHON),$(PYTHON_HINT)) && $(PYTHON) -m venv $(VENV); fi
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg --nbval-cell-timeout=600
# Notebooks validated at once (pytest-xdist; each notebook is single-threaded).
JOBS   ?= 2
# `make test` validates under a foreign CPU configuration (rnnbook/portability.py), so
# an output that only holds on the CPU that produced it fails here first.
# CPU_CONFIG=rotated (the default): the foreign configuration the commit hash selects
# among those that keep MKL off its slow COMPATIBLE branch (printed; measured cost in
# rnnbook/portability.py); foreign: the first foreign configuration (MKL COMPATIBLE);
# native: this machine's own kernels; or NAME=VALUE,NAME=VALUE.
# `make compare CPU_CONFIG=all` re-executes under every foreign configuration.
CPU_CONFIG ?= rotated
comma  := ,
COMMIT  = $$(git rev-parse HEAD 2>/dev/null || echo 0)
CPU_ENV = $(if $(filter native,$(CPU_CONFIG)),,$(if $(filter rotated,$(CPU_CONFIG)),$$($(PY) -m rnnbook.portability rotated-env $(COMMIT)),$(if $(filter foreign,$(CPU_CONFIG)),$$($(PY) -m rnnbook.portability foreign-env),$(subst $(comma), ,$(CPU_CONFIG)))))
# `make compare NOTEBOOKS="notebooks/04_*.ipynb"` limits a comparison to some chapters.
NOTEBOOKS ?=

.DEFAULT_GOAL := help
.PHONY: help env env-cpu data book browser test execute compare export lab student check-install check-lock clean

help:
	@echo "make book     build the HTML book into _build/html (Sphinx warnings are errors)"
	@echo "make test     strict nbval on every notebook (foreign CPU configuration), unit and hygiene tests, HTML build"
	@echo "make execute  re-execute every notebook in place to refresh its outputs"
	@echo "make compare  execute under the foreign CPU configuration and report what moved (writes only the run times, book/_run_times.json and run_times.md; CPU_CONFIG=all: every one)"
	@echo "make export   regenerate rnnbook/ modules from the cells marked for export"
	@echo "make lab      open JupyterLab on the notebooks"
	@echo "make labs     lab notebooks to fill in, with Otter-Grader's test files, in _build/labs (python3 alone)"
	@echo "make labs-autograder  Otter's autograder zips for the labs; make labs-check proves the checks"
	@echo "make slides   lecture slides, one reveal.js deck per week of book/course.md, in _build/slides (work offline)"
	@echo "make student  student copies in _build/student: no solutions, plain Markdown for Jupyter and Colab (python3 alone)"
	@echo "make env-cpu  the environment with PyTorch's CPU-only build (Linux laptops: no CUDA libraries)"
	@echo "make check-install  a fresh Colab-like venv installs the package as the launch cell does, runs chapter 1"
	@echo "make check-lock     ask pip whether requirements.txt has wheels for Linux, macOS and Windows"
	@echo "make gpu-check      on a machine with CUDA: the GPU equivalence checks and chapter 15's GPU rows (skips without CUDA)"
	@echo "make clean    remove build outputs (keeps .venv and data)"

# The environment: a complete, pinned lock installed without dependency resolution.
$(STAMP): requirements.txt pyproject.toml
	@$(make_venv)
	$(PY) -m pip install --quiet --no-deps -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

env: $(STAMP)

# Linux without an NVIDIA GPU: PyTorch's CPU build (same versions, from PyTorch's CPU
# index) and the rest of the lock without the CUDA libraries, which requirements.txt
# marks `platform_system == "Linux"` (how_to_use.md). Later targets reuse this .venv.
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_PINS = $$(grep -E '^(torch|torchvision)==' requirements.txt)
env-cpu:
	@$(make_venv)
	$(PY) -m pip install --quiet --no-deps --index-url $(TORCH_CPU_INDEX) $(TORCH_PINS)
	grep -v 'platform_system == "Linux"' requirements.txt > $(VENV)/requirements-cpu.txt
	$(PY) -m pip install --quiet --no-deps -r $(VENV)/requirements-cpu.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# The corpus: found in data/, verified by SHA-1, downloaded only when missing.
data: $(STAMP)
	@$(PY) -c "from rnnbook.data import fetch_time_machine as f; print('corpus:', f())"

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

# The browser test (tests/test_browser.py) drives Debian's Chromium; install it where
# missing (CI runs as root). Elsewhere, install Chromium yourself or the test is skipped.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "no Chromium: tests/test_browser.py will be skipped (install the chromium package)"; fi

test: book data browser slides
	env $(CPU_ENV) $(PY) -m pytest tests notebooks $(NBVAL) -n $(JOBS) --dist loadfile --no-loadscope-reorder -q --durations=10

execute: $(STAMP) data
	$(PY) tools/execute_notebooks.py --jobs $(JOBS)

compare: $(STAMP) data
	@if [ "$(CPU_CONFIG)" = all ]; then status=0; \
	  for config in $$($(PY) -m rnnbook.portability all-foreign); do \
	    $(PY) tools/execute_notebooks.py --compare --cpu-config $$config --jobs $(JOBS) $(NOTEBOOKS) || status=1; \
	  done; exit $$status; \
	else $(PY) tools/execute_notebooks.py --compare --cpu-config $(CPU_CONFIG) --jobs $(JOBS) $(NOTEBOOKS); fi

export: $(STAMP)
	$(PY) -m rnnbook.export

lab: $(STAMP) data
	$(VENV)/bin/jupyter lab notebooks

# Lecture slides (tools/slides.py): a reveal.js deck per week of book/course.md, from the
# chapters' headings, equations, figures and summaries, with reveal.js (the npm tarball,
# pinned and checked; `npm pack` fetches it once into _build/cache) and MathJax beside them.
.PHONY: slides
slides: $(STAMP)
	$(PY) tools/slides.py _build/slides

# Standard library only (no .venv): the copies are text edits of the notebooks' JSON.
student:
	rm -rf _build/student
	$(PYTHON) tools/student_notebooks.py _build/student

# Labs (labs/README.md), graded by Otter-Grader. labs: per lab, the student's notebook
# _build/labs/LAB.ipynb (stubs), Otter's test files in _build/labs/tests/LAB/, and
# the reference copy in _build/labs/solutions; standard library only. labs-autograder: Otter's autograder zips
# (otter generate) in _build/labs/autograder. labs-check: every lab's reference scores full
# marks, its stub zero, and each planted mistake fails the check meant to catch it.
.PHONY: labs labs-autograder labs-check
labs:
	$(PYTHON) tools/labs.py build _build/labs

labs-autograder: $(STAMP)
	$(PY) tools/labs.py autograder _build/labs

labs-check: $(STAMP)
	$(PY) tools/labs.py selftest

# Not part of `make test`: it installs PyTorch (several GB) into a fresh venv; see tools/check_install.py.
check-install: $(STAMP) data
	$(PY) tools/check_install.py

check-lock: $(STAMP)
	$(PY) tools/check_lock.py

# Not part of `make test`: the book's CUDA paths (tools/gpu_check.py), in a few minutes on a GPU;
# without CUDA it says so and exits 0.
.PHONY: gpu-check
gpu-check: $(STAMP)
	$(PY) tools/gpu_check.py

clean:
	rm -rf _build
