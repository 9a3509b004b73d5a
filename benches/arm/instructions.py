#!/usr/bin/env python3
"""Guest instructions per inference on aarch64, under qemu-user, for prescreen's float and int8
files at three emulated CPUs.

    python3 benches/arm/instructions.py [--prescreen target/arm/aarch64-unknown-linux-gnu/release/prescreen]
                                        [--models models/open_nsfw models/nsfwjs]
                                        [--cpus max,sve=off cortex-a76 cortex-a72] [--runs 3]
                                        [--onnxruntime-lib LIB [--ort-bench BIN]]

No ARM hardware is reachable here, and time under emulation says nothing about a phone. What
emulation does give exactly is the number of guest instructions a program executes: the TCG
plugin in benches/arm/insn_count.c (built here with the host C compiler) counts them, and the
count repeats run to run. Instructions are not cycles (a load that misses the cache counts as
one), but for the same work on the same core they rank kernels honestly.

Each model folder (`--models`, both shipped models by default) and configuration runs
`prescreen bench-infer` twice, with 1 and with 1 + `--runs` timed runs;
the difference divided by `--runs` is the cost of one inference, so loading, checksum and golden
self-test cancel out. What is left over is reported as the load cost.

CPUs (qemu `-cpu` values, one argument each): `max,sve=off` has every extension qemu 7.2 emulates
but SVE (dotprod and i8mm included; nothing here uses SVE, and with it glibc's string functions
take SVE versions, which count differently and emulate ten times slower), `cortex-a76` has dotprod
and not i8mm (the most common phone core today), `cortex-a72` has neither.

With `--onnxruntime-lib` (onnxruntime's own aarch64 library; `make bench-arm` fetches it and builds
`ort-bench`), every configuration also runs benches/arm/ort-bench, which runs that library on the
same file and golden input the way bench-infer runs prescreen (and fails unless its output is the
manifest's golden one), counted the same way; the last table gives prescreen / onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PLUGIN_SRC = ROOT / "benches/arm/insn_count.c"


def build_plugin(out: Path) -> Path:
    plugin = out / "insn_count.so"
    cc = os.environ.get("CC", "cc")
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(plugin), str(PLUGIN_SRC)],
        check=True,
    )
    return plugin


def count(plugin: Path, cpu: str, argv: list[str], tmp: Path) -> tuple[int, dict]:
    """Runs argv under qemu at `cpu`; returns (guest instructions, the JSON it printed)."""
    outfile = tmp / "count"
    proc = subprocess.run(
        ["qemu-aarch64", "-cpu", cpu, "-plugin", f"{plugin},outfile={outfile}", *argv],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(outfile.read_text().strip()), result


def measure(plugin: Path, cpu: str, argv: list[str], runs: int, tmp: Path) -> dict:
    """Instructions of one inference and of loading for a bench-infer-like command (its argv ends
    with `--runs`): two runs, with 1 and with 1 + `runs` timed inferences after the first result."""
    one, result = count(plugin, cpu, argv + ["1"], tmp)
    more, _ = count(plugin, cpu, argv + [str(1 + runs)], tmp)
    per = (more - one) / runs
    # The first result, then --runs more: 2 inferences in `one`.
    load = one - 2 * per
    return {
        "kernel": result.get("integer_kernel"),
        "integer_convolutions": result.get("integer_convolutions"),
        "float_depthwise_convolutions": result.get("float_depthwise_convolutions"),
        "instructions_per_inference": round(per),
        "load_instructions": round(load),
        "output": result["output"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--prescreen",
        default=str(ROOT / "target/arm/aarch64-unknown-linux-gnu/release/prescreen"),
        help="the aarch64 harness binary",
    )
    ap.add_argument(
        "--models",
        nargs="+",
        default=["models/open_nsfw", "models/nsfwjs"],
        help="model folders (model.toml and the prepared files), relative to the repository",
    )
    ap.add_argument("--cpus", nargs="+", default=["max,sve=off", "cortex-a76", "cortex-a72"])
    ap.add_argument("--runs", type=int, default=3, help="extra inferences in the second run")
    ap.add_argument(
        "--tract-depthwise",
        action="store_true",
        help="the f32 depthwise convolutions on tract's kernel (prescreen bench-infer --tract-depthwise)",
    )
    ap.add_argument("--onnxruntime-lib", help="onnxruntime's aarch64 libonnxruntime.so: also count onnxruntime")
    ap.add_argument(
        "--ort-bench",
        default=str(ROOT / "target/ort-bench/aarch64-unknown-linux-gnu/release/ort-bench"),
        help="the aarch64 build of benches/arm/ort-bench",
    )
    ap.add_argument("--json", help="also write the table as JSON here")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        plugin = build_plugin(tmp)
        for model in args.models:
            name = Path(model).name
            for cpu in args.cpus:
                for variant in ("float", "int8"):
                    base = [args.prescreen, "bench-infer", "--model-dir", model, "--variant", variant]
                    base += ["--tract-depthwise"] * args.tract_depthwise + ["--runs"]
                    engines = [("prescreen", base)]
                    if args.onnxruntime_lib:
                        lib = str(Path(args.onnxruntime_lib).resolve())
                        ort = [args.ort_bench, "--lib", lib, "--model-dir", model, "--variant", variant]
                        engines.append(("onnxruntime", ort + ["--runs"]))
                    for engine, argv in engines:
                        key = {"engine": engine, "model": name, "cpu": cpu, "variant": variant}
                        rows.append(key | measure(plugin, cpu, argv, args.runs, tmp))
                        r = rows[-1]
                        output = r["output"]
                        top = max(range(len(output)), key=output.__getitem__)
                        where = (
                            f"kernel {r['kernel'] or 'tract f32'} ({r['integer_convolutions']} convolutions,"
                            f" {r['float_depthwise_convolutions']} f32 depthwise)"
                            if engine == "prescreen"
                            else "onnxruntime"
                        )
                        print(
                            f"{name:<10} {cpu:<12} {variant:<6}"
                            f" {r['instructions_per_inference'] / 1e6:9.1f} M per inference"
                            f"  {r['load_instructions'] / 1e6:9.1f} M load"
                            f"  {where}  top class {top} {output[top]:.5f}",
                            flush=True,
                        )
    print()
    print(f"{'model':<10} {'cpu':<12} {'int8 / float':>12}")
    for model in args.models:
        name = Path(model).name
        for cpu in args.cpus:
            f, q = (
                next(
                    r
                    for r in rows
                    if r["engine"] == "prescreen" and r["model"] == name and r["cpu"] == cpu and r["variant"] == v
                )
                for v in ("float", "int8")
            )
            ratio = q["instructions_per_inference"] / f["instructions_per_inference"]
            print(f"{name:<10} {cpu:<12} {ratio:>12.3f}")
    if len(args.models) > 1:
        # The models side by side: which one a phone runs for less (README, "Both models").
        names = [Path(m).name for m in args.models]
        print()
        print(f"{'cpu':<12} {'variant':<7}" + "".join(f" {n:>12}" for n in names) + "   (M per inference)")
        for cpu in args.cpus:
            for variant in ("float", "int8"):
                cells = (
                    next(
                        r
                        for r in rows
                        if r["engine"] == "prescreen" and r["model"] == n and r["cpu"] == cpu and r["variant"] == variant
                    )
                    for n in names
                )
                print(
                    f"{cpu:<12} {variant:<7}"
                    + "".join(f" {r['instructions_per_inference'] / 1e6:>12.1f}" for r in cells)
                )
    if args.onnxruntime_lib:
        # The two engines on the same file at the same CPU (issue 18's targets).
        print()
        print(f"{'model':<10} {'cpu':<12} {'variant':<7} {'prescreen M':>12} {'onnxruntime M':>14} {'ratio':>7}")
        for model in args.models:
            name = Path(model).name
            for cpu in args.cpus:
                for variant in ("float", "int8"):
                    p, o = (
                        next(
                            r
                            for r in rows
                            if r["engine"] == e and r["model"] == name and r["cpu"] == cpu and r["variant"] == variant
                        )
                        for e in ("prescreen", "onnxruntime")
                    )
                    a, b = p["instructions_per_inference"], o["instructions_per_inference"]
                    print(f"{name:<10} {cpu:<12} {variant:<7} {a / 1e6:>12.1f} {b / 1e6:>14.1f} {a / b:>7.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
