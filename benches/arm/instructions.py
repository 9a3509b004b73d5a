#!/usr/bin/env python3
"""Guest instructions per inference on aarch64, under qemu-user, for prescreen's float and int8
files at three emulated CPUs.

    python3 benches/arm/instructions.py [--prescreen target/arm/aarch64-unknown-linux-gnu/release/prescreen]
                                        [--cpus max,sve=off cortex-a76 cortex-a72] [--runs 3]

No ARM hardware is reachable here, and time under emulation says nothing about a phone. What
emulation does give exactly is the number of guest instructions a program executes: the TCG
plugin in benches/arm/insn_count.c (built here with the host C compiler) counts them, and the
count repeats run to run. Instructions are not cycles (a load that misses the cache counts as
one), but for the same work on the same core they rank kernels honestly.

Each configuration runs `prescreen bench-infer` twice, with 1 and with 1 + `--runs` timed runs;
the difference divided by `--runs` is the cost of one inference, so loading, checksum and golden
self-test cancel out. What is left over is reported as the load cost.

CPUs (qemu `-cpu` values, one argument each): `max,sve=off` has every extension qemu 7.2 emulates
but SVE (dotprod and i8mm included; nothing here uses SVE, and with it glibc's string functions
take SVE versions, which count differently and emulate ten times slower), `cortex-a76` has dotprod
and not i8mm (the most common phone core today), `cortex-a72` has neither.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--prescreen",
        default=str(ROOT / "target/arm/aarch64-unknown-linux-gnu/release/prescreen"),
        help="the aarch64 harness binary",
    )
    ap.add_argument("--cpus", nargs="+", default=["max,sve=off", "cortex-a76", "cortex-a72"])
    ap.add_argument("--runs", type=int, default=3, help="extra inferences in the second run")
    ap.add_argument("--json", help="also write the table as JSON here")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        plugin = build_plugin(tmp)
        for cpu in args.cpus:
            for variant in ("float", "int8"):
                base = [args.prescreen, "bench-infer", "--variant", variant, "--runs"]
                one, result = count(plugin, cpu, base + ["1"], tmp)
                more, _ = count(plugin, cpu, base + [str(1 + args.runs)], tmp)
                per = (more - one) / args.runs
                # bench-infer runs the first result, then --runs more: 2 inferences in `one`.
                load = one - 2 * per
                rows.append(
                    {
                        "cpu": cpu,
                        "variant": variant,
                        "kernel": result.get("integer_kernel"),
                        "integer_convolutions": result.get("integer_convolutions"),
                        "instructions_per_inference": round(per),
                        "load_instructions": round(load),
                        "nsfw": result["output"][1],
                    }
                )
                r = rows[-1]
                print(
                    f"{cpu:<12} {variant:<6} {r['instructions_per_inference'] / 1e6:9.1f} M per inference"
                    f"  {r['load_instructions'] / 1e6:9.1f} M load"
                    f"  kernel {r['kernel'] or 'tract f32'} ({r['integer_convolutions']} convolutions)"
                    f"  nsfw {r['nsfw']:.5f}",
                    flush=True,
                )
    print()
    print(f"{'cpu':<12} {'int8 / float':>12}")
    for cpu in args.cpus:
        f = next(r for r in rows if r["cpu"] == cpu and r["variant"] == "float")
        q = next(r for r in rows if r["cpu"] == cpu and r["variant"] == "int8")
        print(f"{cpu:<12} {q['instructions_per_inference'] / f['instructions_per_inference']:>12.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
