# vadpack: `make demo`, `make test` and `make test-all` do all the setup from a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.vadpack-installed
TINY   := runs/models/tiny

.PHONY: setup demo test test-all bench lint typecheck clean

setup: $(STAMP)

# Rebuilt only when pyproject.toml changes, so a second `make setup` is instant.
# The venv takes about 6.5 GB (torch's CUDA build runs on the CPU too); say so before pip fails half-way.
$(STAMP): pyproject.toml
	@free_gb=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	  if [ "$$free_gb" -lt 7 ] && ! [ -x $(PY) ]; then \
	    echo "make: warning: $$free_gb GB free under $$(pwd); the install needs about 7 GB (free some space first)" >&2; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --progress-bar off --upgrade pip
	$(PY) -m pip install --quiet --progress-bar off -e '.[dev]'
	touch $(STAMP)

# Order-only: a reinstall (pyproject.toml changed) keeps the model; --force mends a folder left half-written.
$(TINY)/model.pt: | $(STAMP)
	$(VENV)/bin/vadpack tiny-model --force $(TINY)

demo: $(STAMP) $(TINY)/model.pt
	$(VENV)/bin/vadpack run configs/demo.yaml --no-progress
	@echo "tables: runs/demo/output/{documents,segments,tokens,words,turns,speakers,failures}.parquet"

# Two lanes (tests/conftest.py says which tests are where): `make test` is the fast one, the unit
# tests and a few whole-pipeline runs (under 4 minutes on 2 cores); `make test-all` runs every test
# (what CI runs), the tests marked slow included.
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/vad.py
	$(PY) bench/pack.py
	$(PY) bench/stitch.py
	$(PY) bench/asr.py
	$(PY) bench/e2e.py
	$(PY) bench/ray_scaling.py
	$(PY) bench/incremental.py
	$(PY) bench/speakers.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# mypy cannot follow setuptools' editable finder (pyproject's package-dir maps vadpack.core to core/,
# ...), so it reads a tree of symbolic links laid out as the installed package: build/typecheck/vadpack.
TYPED := build/typecheck/vadpack
typecheck: $(STAMP)
	rm -rf $(TYPED) && mkdir -p $(TYPED)
	ln -s ../../../vadpack/__init__.py ../../../vadpack/__main__.py ../../../vadpack/py.typed $(TYPED)/
	for d in core scan vad packer asr speakers stitcher pipeline; do ln -s ../../../$$d $(TYPED)/$$d; done
	$(VENV)/bin/mypy --strict -m vadpack -m vadpack.pipeline.api

clean:
	rm -rf runs build .pytest_cache .hypothesis
