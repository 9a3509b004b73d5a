"""Builds nothing: `make test-ios` has built the workspace. Generates UniFFI's Python bindings of
the host-built libprescreen_ios into a temporary folder and imports them as `prescreen`."""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# Cargo's build folder: CARGO_TARGET_DIR when set (relative to the repository root, where make runs).
TARGET = ROOT / os.environ.get("CARGO_TARGET_DIR", "target")
LIB = TARGET / "debug" / ("libprescreen_ios.dylib" if platform.system() == "Darwin" else "libprescreen_ios.so")
BINDGEN = TARGET / "debug" / "uniffi-bindgen"


@pytest.fixture(scope="session")
def prescreen(tmp_path_factory):
    for path in (LIB, BINDGEN):
        assert path.is_file(), f"{path} is missing: run `cargo build --workspace --all-targets` (make test-ios does)"
    out = tmp_path_factory.mktemp("bindings")
    subprocess.run(
        [str(BINDGEN), "generate", str(LIB), "--language", "python", "--out-dir", str(out)],
        check=True,
        capture_output=True,
    )
    shutil.copy(LIB, out / LIB.name)
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("prescreen")
    finally:
        sys.path.remove(str(out))


@pytest.fixture(scope="session")
def redness():
    model = ROOT / "models" / "redness"
    assert (model / "redness.onnx").is_file(), "TEST CLASSIFIER NOT BUILT: run `make model` first"
    return model, ROOT / "models" / "policies" / "redness.toml"
