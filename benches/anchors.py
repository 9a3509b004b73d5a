#!/usr/bin/env python3
"""Preprocessing anchor for `make bench`: the same work done by OpenCV.

* Preprocessing: OpenCV's NV12/NV21 -> RGB (cv2.cvtColor) or BGRA -> RGB, then cv2.resize to
  256x256 (INTER_AREA, OpenCV's antialiased shrink), centre crop 224, float32 BGR minus mean;
  720p and 1080p, one thread.

Prints medians in milliseconds, in the same units as criterion's output for benches/preprocess.rs,
so the two can be read side by side. Inference against onnxruntime is benches/side_by_side.py.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import cv2
import numpy as np

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


if __name__ == "__main__":
    main()
