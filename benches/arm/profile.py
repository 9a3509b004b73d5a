#!/usr/bin/env python3
"""Where the guest instructions of one inference go, per function, on aarch64 under qemu-user.

    python3 benches/arm/profile.py [--prescreen target/arm/aarch64-unknown-linux-gnu/release/prescreen]
                                   [--model-dir models/open_nsfw] [--cpu cortex-a76] [--variant int8]
                                   [--runs 2] [--top 25] [--blocks NAME]

Runs `prescreen bench-infer` twice under the block-profile plugin (benches/arm/insn_profile.c,
built here with the host C compiler), with 1 and with 1 + `--runs` timed runs, and prints the
difference per function divided by `--runs`: the instructions of one inference, loading cancelled
out, attributed with the binary's symbol table (`nm`). Code outside the binary (the C library) is
grouped per mapping. Instructions, not cycles (see instructions.py).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PLUGIN_SRC = ROOT / "benches/arm/insn_profile.c"
# Where qemu-user 7.2 loads a position-independent aarch64 executable.
PIE_BASES = (0x5500000000, 0x4000000000, 0)


def symbols(binary: str) -> list[tuple[int, str]]:
    out = subprocess.run(["nm", "-C", "--defined-only", binary], check=True, capture_output=True, text=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    return sorted(syms)


def blocks(plugin: Path, cpu: str, argv: list[str], out: Path) -> list[tuple[int, int]]:
    subprocess.run(
        ["qemu-aarch64", "-cpu", cpu, "-plugin", f"{plugin},outfile={out}", *argv],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    rows = []
    for line in out.read_text().splitlines():
        vaddr, insns, executions = line.split()
        rows.append((int(vaddr, 16), int(insns) * int(executions)))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prescreen", default=str(ROOT / "target/arm/aarch64-unknown-linux-gnu/release/prescreen"))
    ap.add_argument("--cpu", default="cortex-a76", help="one qemu -cpu value, e.g. max,sve=off")
    ap.add_argument("--model-dir", default="models/open_nsfw", help="the model folder to profile")
    ap.add_argument("--variant", default="int8", choices=["float", "int8"])
    ap.add_argument("--runs", type=int, default=2, help="extra inferences in the second run")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--blocks",
        metavar="NAME",
        help="also list the translated blocks of the functions whose names contain NAME: their"
        " addresses in the binary (for objdump), instructions per execution and per inference",
    )
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    syms = symbols(args.prescreen)
    if not syms:
        sys.exit(f"no symbols in {args.prescreen}: profile a binary that is not stripped")
    addrs = [a for a, _ in syms]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        plugin = tmp / "insn_profile.so"
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(plugin), str(PLUGIN_SRC)], check=True)
        base = [args.prescreen, "bench-infer", "--model-dir", args.model_dir, "--variant", args.variant, "--runs"]
        one = blocks(plugin, args.cpu, base + ["1"], tmp / "one")
        more = blocks(plugin, args.cpu, base + [str(1 + args.runs)], tmp / "more")
    # The load address: the candidate that puts the most executed instructions inside the binary.
    end = addrs[-1] + 4096
    load = max(PIE_BASES, key=lambda b: sum(n for v, n in more if 0 <= v - b <= end))

    def per_function(rows: list[tuple[int, int]]) -> collections.Counter:
        c: collections.Counter = collections.Counter()
        for vaddr, n in rows:
            a = vaddr - load
            i = bisect.bisect_right(addrs, a) - 1
            name = syms[i][1] if 0 <= a <= end and i >= 0 else f"(outside the binary, {vaddr >> 24:#x}xxxxxx)"
            c[name] += n
        return c

    a, b = per_function(one), per_function(more)
    diff = {k: (b[k] - a[k]) / args.runs for k in b}
    total = sum(diff.values())
    print(f"{args.variant} at {args.cpu}: {total / 1e6:.1f} M instructions per inference")
    for name, n in sorted(diff.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{n / 1e6:9.1f} M  {100 * n / total:5.1f} %  {name[:120]}")
    if args.blocks:
        # Per block: instructions of one inference (the difference of the runs), within the
        # matching functions, hottest first.
        def per_block(rows: list[tuple[int, int]]) -> collections.Counter:
            c: collections.Counter = collections.Counter()
            for vaddr, n in rows:
                a = vaddr - load
                i = bisect.bisect_right(addrs, a) - 1
                if 0 <= a <= end and i >= 0 and args.blocks in syms[i][1]:
                    c[(a, syms[i][1])] += n
            return c

        a, b = per_block(one), per_block(more)
        print(f"\nblocks in functions matching {args.blocks!r} (address in the binary, M per inference):")
        for (addr, name), n in sorted(b.items(), key=lambda kv: -(kv[1] - a[kv[0]]))[: args.top]:
            print(f"  {addr:#10x} {(n - a[(addr, name)]) / args.runs / 1e6:9.2f} M  {name[:80]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
