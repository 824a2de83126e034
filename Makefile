# vadpack: `make demo` and `make test` do all the setup from a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.vadpack-installed
TINY   := runs/models/tiny

.PHONY: setup demo test bench lint clean

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

test: $(STAMP)
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

clean:
	rm -rf runs .pytest_cache .hypothesis
