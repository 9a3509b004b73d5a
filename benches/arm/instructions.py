#!/usr/bin/env python3
"""Guest instructions per inference on aarch64, under qemu-user, for prescreen's float and int8
files at three emulated CPUs.

    python3 benches/arm/instructions.py [--prescreen target/arm/aarch64-unknown-linux-gnu/release/prescreen]
                                        [--models models/open_nsfw models/nsfwjs]
                                        [--cpus max,sve=off cortex-a76 cortex-a72] [--runs 3]
                                        [--onnxruntime-lib LIB [--ort-bench BIN]]
                                        [--stream FILE.y4m | --no-stream] [--mobile-lib LIB]

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

Then the figure that decides battery life: the live engine's instructions per second of stream.
The sample stream (1080p NV12-class I420 at 30 fps, `prescreen make-stream`, written here under
qemu unless `--stream` names one) goes through `prescreen screen --policy` with the default model
and its policy (sampling, quality and scene gates, preprocessing on the CPU, segments), each frame
handled before the next is offered, so the count does not depend on emulation speed. A second run
stops after the first frame; the difference over the length of the other frames is the cost per
second of stream, without loading. It includes reading the file's frames, which a camera would
hand over instead. Six stream runs take several minutes under qemu; `--no-stream` skips them.

`--mobile-lib` reports the size of the aarch64 library built with the `mobile` profile (what an
app ships; `make size-arm`) and checks that it is stripped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def run_counted(plugin: Path, cpu: str, argv: list[str], tmp: Path) -> tuple[int, subprocess.CompletedProcess]:
    """Runs argv under qemu at `cpu`; returns (guest instructions, the finished process)."""
    outfile = tmp / "count"
    proc = subprocess.run(
        ["qemu-aarch64", "-cpu", cpu, "-plugin", f"{plugin},outfile={outfile}", *argv],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return int(outfile.read_text().strip()), proc


def count(plugin: Path, cpu: str, argv: list[str], tmp: Path) -> tuple[int, dict]:
    """Runs argv under qemu at `cpu`; returns (guest instructions, the JSON it printed)."""
    n, proc = run_counted(plugin, cpu, argv, tmp)
    return n, json.loads(proc.stdout.strip().splitlines()[-1])


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


def make_stream(prescreen: str, out: Path) -> float:
    """Writes the sample stream (1080p, 30 fps, I420) to `out` with the aarch64 harness under qemu,
    uncounted; returns its frame rate."""
    subprocess.run(
        ["qemu-aarch64", "-cpu", "max,sve=off", prescreen, "make-stream", str(out)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return stream_fps(out)


def stream_fps(path: Path) -> float:
    """The frame rate in a .y4m file's header (`F30:1`)."""
    with open(path, "rb") as f:
        header = f.readline().decode("ascii", "replace").split()
    rate = next((w[1:] for w in header if w.startswith("F")), None)
    if header[:1] != ["YUV4MPEG2"] or rate is None:
        sys.exit(f"{path} is not a .y4m file with a frame rate")
    num, _, den = rate.partition(":")
    return int(num) / int(den or 1)


def stream_cost(plugin: Path, cpu: str, argv: list[str], fps: float, tmp: Path) -> dict:
    """Instructions of the live engine per second of stream, for a `prescreen screen STREAM.y4m
    --policy ...` command: the whole stream, less a run that stops after its first frame (loading,
    self-test and that frame), over the length of the frames between."""
    one, _ = run_counted(plugin, cpu, argv + ["--limit", "1"], tmp)
    full, proc = run_counted(plugin, cpu, argv, tmp)
    m = re.search(r"frames: (\d+) seen = (\d+) scored", proc.stderr)
    if m is None:
        sys.exit(f"no frame accounting in the output of {' '.join(argv)}:\n{proc.stderr}")
    seen, scored = int(m[1]), int(m[2])
    seconds = (seen - 1) / fps
    return {
        "frames": seen,
        "scored": scored,
        "stream_seconds": seconds,
        "instructions_per_stream_second": round((full - one) / seconds),
        "first_frame_instructions": one,
    }


def elf_sections(path: Path) -> list[str]:
    """The section names of a 64-bit little-endian ELF file (enough to tell a stripped library)."""
    data = path.read_bytes()
    if data[:6] != b"\x7fELF\x02\x01":
        sys.exit(f"{path} is not a 64-bit little-endian ELF file")
    shoff = int.from_bytes(data[0x28:0x30], "little")
    shentsize, shnum, shstrndx = (int.from_bytes(data[o : o + 2], "little") for o in (0x3A, 0x3C, 0x3E))
    headers = [data[shoff + i * shentsize : shoff + (i + 1) * shentsize] for i in range(shnum)]
    strtab = headers[shstrndx]
    str_off = int.from_bytes(strtab[0x18:0x20], "little")
    names = []
    for h in headers:
        start = str_off + int.from_bytes(h[0:4], "little")
        names.append(data[start : data.index(b"\0", start)].decode("ascii", "replace"))
    return names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--prescreen",
        default=str(ROOT / "target/arm/aarch64-unknown-linux-gnu/release/prescreen"),
        help="the aarch64 harness binary",
    )
    ap.add_argument(
        "--models",
        nargs="*",
        default=["models/open_nsfw", "models/nsfwjs"],
        help="model folders (model.toml and the prepared files), relative to the repository;"
        " none: only the stream and the library",
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
    ap.add_argument(
        "--stream-model",
        default="models/nsfwjs",
        help="the model the live engine runs on the sample stream (the default, nsfwjs)",
    )
    ap.add_argument(
        "--stream-policy",
        default="models/policies/nsfwjs.toml",
        help="the policy it screens under (the default model's)",
    )
    ap.add_argument(
        "--stream",
        help="the sample stream as .y4m (prescreen make-stream); default: made here under qemu",
    )
    ap.add_argument("--no-stream", action="store_true", help="skip the engine's cost per second of stream")
    ap.add_argument(
        "--mobile-lib",
        help="the aarch64 library built with the `mobile` profile (make size-arm): report its size",
    )
    ap.add_argument("--json", help="also write the tables as JSON here")
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
        stream_rows = []
        if not args.no_stream:
            stream = Path(args.stream) if args.stream else tmp / "sample-stream.y4m"
            fps = stream_fps(stream) if args.stream else make_stream(args.prescreen, stream)
            for cpu in args.cpus:
                for variant in ("float", "int8"):
                    argv = [args.prescreen, "screen", str(stream.resolve()), "--policy", args.stream_policy]
                    argv += ["--model-dir", args.stream_model, "--variant", variant, "--backend", "cpu"]
                    argv += ["--tract-depthwise"] * args.tract_depthwise
                    r = {"cpu": cpu, "variant": variant} | stream_cost(plugin, cpu, argv, fps, tmp)
                    stream_rows.append(r)
                    print(
                        f"stream     {cpu:<12} {variant:<6}"
                        f" {r['instructions_per_stream_second'] / 1e6:9.1f} M per second of stream"
                        f"  ({r['frames']} frames, {r['scored']} scored, {r['stream_seconds']:.2f} s)",
                        flush=True,
                    )
    if args.models:
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
    if args.onnxruntime_lib and args.models:
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
    if stream_rows:
        # What decides battery life: the whole engine (frame checks, scene gate, preprocessing,
        # inference, segments) on the sample stream under the default policy.
        s = stream_rows[0]
        print()
        print(
            f"live engine on the sample stream ({Path(args.stream_model).name}, {Path(args.stream_policy).name},"
            f" CPU preprocessing, {s['frames']} frames, {s['scored']} scored):"
        )
        print(f"{'cpu':<12} {'variant':<7} {'M per second of stream':>23}")
        for r in stream_rows:
            print(f"{r['cpu']:<12} {r['variant']:<7} {r['instructions_per_stream_second'] / 1e6:>23.1f}")
    library = None
    if args.mobile_lib:
        lib = Path(args.mobile_lib)
        sections = elf_sections(lib)
        library = {"path": str(lib), "bytes": lib.stat().st_size, "stripped": ".symtab" not in sections}
        print()
        print(
            f"aarch64 `mobile`-profile library {lib.name}: {library['bytes']} bytes"
            f" ({library['bytes'] / 2**20:.2f} MiB), {'stripped' if library['stripped'] else 'NOT stripped'}"
        )
    if args.json:
        doc = {"inference": rows, "stream": stream_rows, "mobile_library": library}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
