#!/usr/bin/env python3
"""Side-by-side inference: prescreen (tract) against onnxruntime on the same ONNX files, for both
models (open_nsfw and nsfwjs's MobileNetV2), float and int8, 1 and 2 threads.

    models/.venv/bin/python benches/side_by_side.py [--prescreen target/release/prescreen]
                                                    [--models open_nsfw,nsfwjs] [--runs 30]
                                                    [--lib PATH ...]

Every configuration runs in its own process, one after the other, in one invocation (compare rows
of one run: this machine's speed drifts from day to day). Each process loads its file, computes the
first result on the manifest's golden input (the same tensor on both sides: models/prepare.py and
the runtime build it identically), then times `--runs` more runs and reports the median.

Columns:
* median ms, p95 ms: inference alone, batch 1.
* ratio: prescreen's median over onnxruntime's for the same file and thread count (< 1 is faster).
* load ms: from reading the file to the first result (prescreen's includes its sha256 check and
  golden self-test; onnxruntime's its session creation and first run).
* peak RSS / growth MiB: the process's peak resident set (VmHWM), and its growth over the resident
  set just before loading (the Python interpreter and numpy are in onnxruntime's peak, not its growth).
* file MiB: the model file.
* top class: the most probable label on the golden input and its probability, as each engine
  computed it.
* max |d|: on prescreen's rows, the largest difference from onnxruntime's output probabilities on
  the same file and input (the same fidelity on both sides when it is small).

`--lib` adds the size of native libraries (e.g. the stripped mobile library that `make size`
builds) next to onnxruntime's own shared library.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("open_nsfw", "nsfwjs")


def status_kib(field: str) -> int | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def ort_child(model: str, variant: str, threads: int, runs: int) -> None:
    """One onnxruntime configuration; prints the same JSON fields as `prescreen bench-infer`."""
    sys.path.insert(0, str(ROOT / "models"))
    import numpy as np
    from prepare import golden_input

    model_dir = ROOT / "models" / model
    spec = tomllib.loads((model_dir / "model.toml").read_text())
    path = model_dir / next(f["path"] for f in spec["files"] if f["variant"] == variant)
    x = golden_input(spec)
    rss_before = status_kib("VmRSS")
    import onnxruntime as ort

    start = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {spec["input"]["name"]: x}
    first = sess.run(None, feed)[0]
    load = time.perf_counter() - start
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    out = {
        "engine": "onnxruntime",
        "model": model,
        "variant": variant,
        "threads": threads,
        "file_bytes": path.stat().st_size,
        "load_to_first_result_ms": load * 1e3,
        "median_ms": statistics.median(times),
        "p95_ms": times[min(len(times) - 1, int(len(times) * 0.95))],
        "runs": runs,
        "rss_before_load_kib": rss_before,
        "peak_rss_kib": status_kib("VmHWM"),
        "output": [float(v) for v in np.asarray(first).reshape(-1)],
    }
    print(json.dumps(out))


def run_json(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"side_by_side: {' '.join(cmd)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--prescreen", default=str(ROOT / "target/release/prescreen"))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated models/ folders")
    ap.add_argument("--lib", action="append", default=[], help="native library to list by size")
    ap.add_argument("--json", help="also write every row as JSON to this file")
    ap.add_argument(
        "--ort-child", nargs=3, metavar=("MODEL", "VARIANT", "THREADS"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.ort_child:
        model, variant, threads = args.ort_child
        ort_child(model, variant, int(threads), args.runs)
        return
    if not Path(args.prescreen).exists():
        sys.exit(f"side_by_side: {args.prescreen} not found; build it with `cargo build --release`")

    models = [m for m in args.models.split(",") if m]
    for model in models:
        if model not in MODELS:
            sys.exit(f"side_by_side: unknown model {model!r}; known: {', '.join(MODELS)}")
    rows = []
    for model in models:
        model_dir = ROOT / "models" / model
        labels = tomllib.loads((model_dir / "model.toml").read_text())["output"]["labels"]
        for threads in [int(t) for t in args.threads.split(",")]:
            for variant in ("float", "int8"):
                ort = run_json(
                    [
                        sys.executable, __file__, "--runs", str(args.runs), "--ort-child", model,
                        variant, str(threads),
                    ]
                )
                ours = run_json(
                    [
                        args.prescreen, "bench-infer", "--model-dir", str(model_dir), "--variant",
                        variant, "--threads", str(threads), "--runs", str(args.runs),
                    ]
                )
                ours["model"] = model
                ours["ratio"] = ours["median_ms"] / ort["median_ms"]
                ours["max_abs_diff"] = max(
                    abs(a - b) for a, b in zip(ours["output"], ort["output"], strict=True)
                )
                for r in (ours, ort):
                    top = max(range(len(labels)), key=lambda i: r["output"][i])
                    r["top_class"] = f"{labels[top]} {r['output'][top]:.5f}"
                rows += [ours, ort]

    mib = lambda kib: (kib or 0) / 1024  # noqa: E731
    print(f"inference, batch 1, golden input, median of {args.runs} runs; {os.uname().machine}, "
          f"{os.cpu_count()} CPUs")
    print("| model | engine | file | threads | median ms | p95 ms | ratio | load ms | peak RSS MiB "
          "| growth MiB | file MiB | top class | max \\|d\\| |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else ""
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else ""
        print(
            f"| {r['model']} | {r['engine']} | {r['variant']} | {r['threads']} | {r['median_ms']:.2f} "
            f"| {r['p95_ms']:.2f} | {ratio} | {r['load_to_first_result_ms']:.0f} "
            f"| {mib(r['peak_rss_kib']):.1f} | {mib(r['peak_rss_kib']) - mib(r['rss_before_load_kib']):.1f} "
            f"| {r['file_bytes'] / 2**20:.1f} | {r['top_class']} | {diff} |"
        )
    by = {(r["model"], r["engine"], r["variant"], r["threads"]): r["median_ms"] for r in rows}
    for model in models:
        for threads in sorted({r["threads"] for r in rows}):
            for engine in ("prescreen", "onnxruntime"):
                f, q = by[(model, engine, "float", threads)], by[(model, engine, "int8", threads)]
                print(f"{model} {engine} threads={threads}: int8/float = {q / f:.2f}")
        if model != "open_nsfw" and "open_nsfw" in models:
            for threads in sorted({r["threads"] for r in rows}):
                for variant in ("float", "int8"):
                    ours = by[(model, "prescreen", variant, threads)]
                    theirs = by[("open_nsfw", "prescreen", variant, threads)]
                    print(f"prescreen {variant} threads={threads}: {model} / open_nsfw = "
                          f"{ours / theirs:.2f}")

    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    libs = [Path(p) for p in args.lib] + sorted(capi.glob("libonnxruntime.so*"))
    for lib in libs:
        print(f"library {lib.name}: {lib.stat().st_size / 2**20:.2f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
