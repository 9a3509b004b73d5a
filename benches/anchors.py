#!/usr/bin/env python3
"""Side-by-side anchors for `make bench`: the same work done by the reference implementations.

* Preprocessing: OpenCV's NV12/NV21 -> RGB (cv2.cvtColor) or BGRA -> RGB, then cv2.resize to
  256x256 (INTER_AREA, OpenCV's antialiased shrink), centre crop 224, float32 BGR minus mean;
  720p and 1080p, one thread.
* Inference: onnxruntime on the float and int8 files, one intra-op thread, batch 1.

Prints medians in milliseconds, in the same units as criterion's output for benches/preprocess.rs
and benches/inference.rs, so the two can be read side by side.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
MEAN = np.array([104, 117, 123], dtype=np.float32)


def median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def picture(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    t = (x * 7 + y * 13) % 31
    return np.stack([(x * 255 // w) ^ t, y * 255 // h, (x + y) % 256], axis=-1).astype(np.uint8)


def main() -> None:
    cv2.setNumThreads(1)
    print("anchor: OpenCV preprocessing (median ms, one thread)")
    for (w, h, label) in [(1280, 720, "720p"), (1920, 1080, "1080p")]:
        rgb = picture(w, h)
        i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        y, u, v = i420[:h], i420[h : h + h // 4].reshape(-1), i420[h + h // 4 :].reshape(-1)
        nv12 = np.concatenate([y.reshape(-1), np.stack([u, v], -1).reshape(-1)]).reshape(h * 3 // 2, w)
        nv21 = np.concatenate([y.reshape(-1), np.stack([v, u], -1).reshape(-1)]).reshape(h * 3 // 2, w)
        bgra = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
        cases = {
            "nv21": (nv21, cv2.COLOR_YUV2BGR_NV21),
            "nv12": (nv12, cv2.COLOR_YUV2BGR_NV12),
            "bgra8": (bgra, cv2.COLOR_BGRA2BGR),
        }
        for name, (src, code) in cases.items():
            def run():
                bgr = cv2.cvtColor(src, code)
                small = cv2.resize(bgr, (256, 256), interpolation=cv2.INTER_AREA)
                return np.ascontiguousarray(small[16:240, 16:240].astype(np.float32) - MEAN)

            print(f"  preprocess_cpu/{name}/{label:<6} {median_ms(run, 50):8.3f} ms")
    print("anchor: onnxruntime inference (median ms, batch 1)")
    x = np.random.default_rng(0).uniform(-120, 130, (1, 224, 224, 3)).astype(np.float32)
    for threads in (1, 2):
        for variant, name in (("float", "open-nsfw.onnx"), ("int8", "open-nsfw.int8.onnx")):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            sess = ort.InferenceSession(str(ROOT / "models/open_nsfw" / name), opts, providers=["CPUExecutionProvider"])
            ms = median_ms(lambda: sess.run(None, {"input:0": x}), 30)
            print(f"  infer_ort/{variant:<5} threads={threads}  {ms:8.3f} ms")


if __name__ == "__main__":
    main()
