#!/usr/bin/env python3
"""Compare the converted ONNX file with nsfwjs on TensorFlow.js (reference.mjs), network only.

Run from the repository root, after convert.py and reference.mjs:

    models/.venv/bin/python models/nsfwjs/check.py

For every photograph in models/nsfwjs/.cache/reference.json it feeds onnxruntime (CPU, one thread)
the very tensor that TensorFlow.js's model saw (the .npy that reference.mjs dumped after nsfwjs's
own preprocessing), so the comparison isolates the network. It prints, per photograph, the largest
|difference| of the five probabilities and of the five logits, fails if any probability differs by
more than the tolerance (--tolerance, default 1e-4) or the top class differs, and reports the time
per frame.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from prepare import ort_options  # noqa: E402

CACHE = HERE / ".cache"
MODEL = HERE / "nsfwjs-mobilenetv2.onnx"
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
LOGITS = "dense_3/logits"  # the last Gemm's output (convert.py names it after the Keras layer)


def fail(msg: str) -> None:
    print(f"check: error: {msg}", file=sys.stderr)
    sys.exit(1)


def session(path: Path):
    """An onnxruntime session whose outputs are the probabilities and the logits."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    if LOGITS not in {o for n in model.graph.node for o in n.output}:
        fail(f"{path.name} has no tensor {LOGITS!r}")
    logits = onnx.helper.make_tensor_value_info(LOGITS, onnx.TensorProto.FLOAT, [1, 5])
    model.graph.output.append(logits)
    opts = ort_options()
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max |d| per probability")
    ap.add_argument("--repeat", type=int, default=20, help="timed runs per photograph")
    args = ap.parse_args()

    ref_path = CACHE / "reference.json"
    if not ref_path.exists():
        fail(f"{ref_path} is missing: run `node models/nsfwjs/reference.mjs` first")
    ref = json.loads(ref_path.read_text())
    sess = session(args.model)
    print(
        f"check: {args.model.name} vs nsfwjs {ref['nsfwjs']} on tfjs {ref['tfjs']} "
        f"({ref['backend']}), labels {', '.join(ref['labels'])}"
    )

    worst_p = worst_l = 0.0
    bad = []
    times = []
    print(f"{'photograph':<24} {'max|dp|':>10} {'max|dlogit|':>12}  top (tfjs / onnx)")
    for row in ref["photos"]:
        x = np.load(HERE / row["input_npy"])
        if x.shape != (1, 224, 224, 3) or x.dtype != np.float32:
            fail(f"{row['input_npy']}: {x.shape} {x.dtype}, expected (1, 224, 224, 3) float32")
        probs, logits = sess.run([OUTPUT_NAME, LOGITS], {INPUT_NAME: x})
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            sess.run([OUTPUT_NAME], {INPUT_NAME: x})
            times.append(time.perf_counter() - t0)
        dp = float(np.max(np.abs(probs[0] - np.array(row["probabilities"], np.float32))))
        dl = float(np.max(np.abs(logits[0] - np.array(row["logits"], np.float32))))
        top_ref = ref["labels"][int(np.argmax(row["probabilities"]))]
        top_onnx = ref["labels"][int(np.argmax(probs[0]))]
        worst_p, worst_l = max(worst_p, dp), max(worst_l, dl)
        flag = ""
        if dp > args.tolerance or top_ref != top_onnx:
            bad.append(row["file"])
            flag = "  <-- FAIL"
        print(f"{row['file']:<24} {dp:>10.3g} {dl:>12.3g}  {top_ref} / {top_onnx}{flag}")

    t = np.array(times) * 1e3
    print(
        f"check: {len(ref['photos'])} photographs; max |d| probabilities {worst_p:.3g}, "
        f"logits {worst_l:.3g} (tolerance {args.tolerance:g} on probabilities)"
    )
    print(
        f"check: onnxruntime CPU, 1 thread: {np.median(t):.2f} ms median per frame "
        f"(min {t.min():.2f}, max {t.max():.2f}, {len(t)} runs)"
    )
    if bad:
        fail(f"{len(bad)} photograph(s) out of tolerance: {', '.join(bad)}")
    print("check: OK")


if __name__ == "__main__":
    main()
