#!/usr/bin/env python3
"""Build nsfwjs's int8 variant from the float ONNX file and the committed activation ranges.

Run from the repository root, after convert.py (and, only to recompute the ranges, reference.mjs):

    models/.venv/bin/python models/nsfwjs/quantize.py [--recalibrate] [--update-manifest]

The recipe is the manifest's `[[files]]` int8 entry: onnxruntime's static quantizer, QDQ, u8
activations, s8 per-channel weights, with the operators and nodes it names kept in float. The
activation ranges are onnxruntime's calibration cache, models/nsfwjs/calibration.json (committed):
with it the build needs no calibration data and is byte for byte the same on every run, so the
file's sha256 is pinned in the manifest. `--recalibrate` recomputes the ranges (MinMax over the 20
photographs as nsfwjs's own pipeline feeds them to the network: the tensors reference.mjs dumped).

Then the int8 file's golden output (onnxruntime on the manifest's `ramp-unit-v1` input) is checked
against the manifest, or written into it with --update-manifest. Per photograph, the int8
probabilities are compared with the float file's and the largest difference printed.

Why the first three blocks stay in float: with every convolution quantized, the int8 probabilities
moved by up to 0.17 from float on the photographs (median 0.009), almost all of it in the first,
112x112 and 56x56 layers, where the per-tensor u8 activations of the narrow linear bottlenecks
lose the most (about 24 dB of signal left after the first block, measured with onnxruntime's
qdq_loss_debug). Keeping Conv1 and blocks 0-2 (10 nodes, about a quarter of the multiply-adds)
in float brings the largest difference to 0.023; equalising channel ranges across the ReLU6
pairs did not help.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prepare import atomic_copy, golden_input, quantize_qdq, run_ort, sha256_of  # noqa: E402

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
MANIFEST = HERE / "model.toml"


def fail(msg: str) -> None:
    print(f"quantize: error: {msg}", file=sys.stderr)
    sys.exit(1)


def reference_tensors() -> list[tuple[str, np.ndarray]]:
    """The network inputs of reference.mjs's run: (photograph, [1, 224, 224, 3] f32)."""
    path = CACHE / "reference.json"
    if not path.exists():
        fail(f"{path} is missing: run `node models/nsfwjs/reference.mjs` first")
    ref = json.loads(path.read_text())
    return [(p["file"], np.load(HERE / p["input_npy"])) for p in ref["photos"]]


def build(spec: dict, float_path: Path, int8_path: Path, recalibrate: bool) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader

    entry = next(f for f in spec["files"] if f["variant"] == "int8")
    cache = HERE / entry["calibration"]
    if recalibrate and cache.exists():
        cache.unlink()
    reader = None
    if not cache.exists():
        name = spec["input"]["name"]

        class Photos(CalibrationDataReader):
            def __init__(self):
                self.items = iter(reference_tensors())

            def get_next(self):
                item = next(self.items, None)
                return None if item is None else {name: item[1]}

        reader = Photos()
    model = onnx.load(str(float_path))
    keep = [n.name for n in model.graph.node if n.op_type in entry["keep_float_ops"]]
    missing = set(entry["keep_float_nodes"]) - {n.name for n in model.graph.node}
    if missing:
        fail(f"keep_float_nodes names nodes the float file lacks: {sorted(missing)}")
    keep += entry["keep_float_nodes"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "int8.onnx"
        quantize_qdq(float_path, out, reader, keep, entry["calibration_method"], cache)
        atomic_copy(out, int8_path)


def update_manifest(int8_sha: str, golden: list[float]) -> None:
    text = MANIFEST.read_text()
    text = re.sub(
        r'(variant = "int8"\npath = "[^"]+"\nsha256 = ")[0-9a-f]*(")', rf"\g<1>{int8_sha}\g<2>", text
    )
    vals = ", ".join(f"{v:.9g}" for v in golden)
    text = re.sub(
        r'(\[\[golden\.expect\]\]\nvariant = "int8"\noutput = \[)[^\]]*(\])', rf"\g<1>{vals}\g<2>", text
    )
    MANIFEST.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--recalibrate", action="store_true", help="recompute calibration.json")
    ap.add_argument(
        "--update-manifest",
        action="store_true",
        help="write the int8 sha256 and golden output into model.toml instead of checking them",
    )
    args = ap.parse_args()

    spec = tomllib.loads(MANIFEST.read_text())
    files = {f["variant"]: f for f in spec["files"]}
    float_path = HERE / files["float"]["path"]
    if not float_path.exists() or sha256_of(float_path) != files["float"]["sha256"]:
        fail(f"{float_path.name} is missing or not the pinned file: run models/nsfwjs/convert.py")
    int8_path = HERE / files["int8"]["path"]
    want = files["int8"]["sha256"]
    if args.recalibrate or args.update_manifest or not int8_path.exists() or sha256_of(int8_path) != want:
        build(spec, float_path, int8_path, args.recalibrate)
    int8_sha = sha256_of(int8_path)
    print(f"quantize: {int8_path.name} sha256 {int8_sha}")

    name = spec["input"]["name"]
    golden = run_ort(int8_path, name, golden_input(spec))[0].tolist()
    if args.update_manifest:
        update_manifest(int8_sha, golden)
        print(f"quantize: updated {MANIFEST.relative_to(HERE.parent.parent)}")
    else:
        if int8_sha != want:
            fail(
                f"int8 build has sha256 {int8_sha}, the manifest pins {want}. A different onnxruntime "
                "or onnx version changes the bytes: install models/requirements.txt exactly, or run "
                "with --update-manifest if you meant to change the recipe."
            )
        exp = next(e for e in spec["golden"]["expect"] if e["variant"] == "int8")
        # The runtime's rule (GoldenExpect::distance): each probability, raised to the floor,
        # within `tolerance` in natural log.
        floor = max(exp.get("floor", 0.0), 1e-30)
        d = np.abs(np.log(np.maximum(golden, floor)) - np.log(np.maximum(exp["output"], floor)))
        if d.max() > exp["tolerance"]:
            fail(f"onnxruntime's int8 golden output is {golden}, the manifest says {exp['output']}")
        print("quantize: checksum and golden output match the manifest")

    # int8 against float on the photographs, network only (when reference.mjs has run).
    if (CACHE / "reference.json").exists():
        worst, worst_file = 0.0, ""
        for file, x in reference_tensors():
            f = run_ort(float_path, name, x)[0]
            q = run_ort(int8_path, name, x)[0]
            d = float(np.abs(f - q).max())
            if d > worst:
                worst, worst_file = d, file
        print(f"quantize: int8 vs float (onnxruntime): probability max |d| {worst:.4f} ({worst_file})")


if __name__ == "__main__":
    main()
