#!/usr/bin/env python3
"""Builds prescreen's test classifier: a tiny ONNX model that scores how red a picture is.

Input `pixels` NHWC float32 1x32x32x3 (RGB, 0..1); output `scores` = softmax([0, K*(redness - T)])
for labels (other, red), where redness = mean(R) - (mean(G) + mean(B)) / 2. A red frame scores ~1,
a grey or natural one ~0. It lets tests run the real engine, real tract and a real ONNX file on
streams whose flagged intervals are known exactly.

Writes models/redness/redness.onnx (git-ignored), checks its sha256 and onnxruntime's golden output
against models/redness/model.toml; `--update-manifest` writes them instead.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from prepare import atomic_copy, fail, golden_input, run_ort, sha256_of  # noqa: E402

K, T = 20.0, 0.25


def build() -> onnx.ModelProto:
    pixels = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 32, 32, 3])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2])
    w = numpy_helper.from_array(np.array([[0, K], [0, -K / 2], [0, -K / 2]], np.float32), "w")
    b = numpy_helper.from_array(np.array([0, -K * T], np.float32), "b")
    nodes = [
        helper.make_node("ReduceMean", ["pixels"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["mean", "w"], ["linear"]),
        helper.make_node("Add", ["linear", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
    ]
    graph = helper.make_graph(nodes, "redness", [pixels], [scores], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="prescreen")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--update-manifest", action="store_true")
    args = ap.parse_args()
    manifest = HERE / "redness" / "model.toml"
    spec = tomllib.loads(manifest.read_text())
    target = HERE / "redness" / spec["files"][0]["path"]
    tmp = target.with_suffix(".tmp")
    onnx.save(build(), str(tmp))
    atomic_copy(tmp, target)
    tmp.unlink()
    sha = sha256_of(target)
    out = run_ort(target, spec["input"]["name"], golden_input(spec))[0].tolist()
    if args.update_manifest:
        text = manifest.read_text()
        text = re.sub(r'sha256 = "[0-9a-f]*"', f'sha256 = "{sha}"', text)
        text = re.sub(r"output = \[[^\]]*\]", "output = [" + ", ".join(f"{v:.9g}" for v in out) + "]", text)
        manifest.write_text(text)
        print(f"test classifier: updated {manifest.relative_to(HERE.parent)}")
        return
    if sha != spec["files"][0]["sha256"]:
        fail(f"redness.onnx has sha256 {sha}, manifest pins {spec['files'][0]['sha256']} (onnx version?)")
    exp = spec["golden"]["expect"][0]
    if np.max(np.abs(np.array(out) - np.array(exp["output"]))) > 1e-5:
        fail(f"onnxruntime golden output {out} differs from the manifest's {exp['output']}")
    print(f"test classifier: {target.relative_to(HERE.parent)} sha256 {sha}")


if __name__ == "__main__":
    main()
