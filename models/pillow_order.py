#!/usr/bin/env python3
"""Which pass Pillow's bilinear resize runs first, measured: the rule `geometry::pil_down_first`.

PIL resizes in two passes, across and down, and rounds to 8 bits between them, so the order shows
in the values. Pillow up to 12 always went across first; Pillow 13 goes down first for some shapes
(its pull request 9549). This resizes random noise images of random sizes (with and without a
source box) to random sizes, once directly and once with each order spelled out as two one-axis
resizes, and checks which order the direct resize matched against the rule prescreen uses:

    down first  <=>  in_h > out_h  and  in_h - out_h > 2 * (in_w - out_w)

(image sizes, not the box's). It prints the cases seen and the misses, and exits non-zero on a
miss. Run with the pinned Pillow:

    models/.venv/bin/python models/pillow_order.py [--cases N]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image

BILINEAR = Image.Resampling.BILINEAR


def down_first(iw: int, ih: int, ow: int, oh: int) -> bool:
    return ih > oh and ih - oh > 2 * (iw - ow)


def orders(im: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]):
    """(matches across-first, matches down-first) for PIL's direct resize of `im`."""
    (iw, ih), (ow, oh) = im.size, size
    x0, y0, x1, y1 = box
    direct = np.asarray(im.resize(size, BILINEAR, box=box))
    across = im.resize((ow, ih), BILINEAR, box=(x0, 0, x1, ih)).resize(size, BILINEAR, box=(0, y0, ow, y1))
    down = im.resize((iw, oh), BILINEAR, box=(0, y0, iw, y1)).resize(size, BILINEAR, box=(x0, 0, x1, oh))
    return (direct == np.asarray(across)).all(), (direct == np.asarray(down)).all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", type=int, default=800)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (600, 600, 3), dtype=np.uint8)
    seen = {"across": 0, "down": 0, "either": 0}
    misses = []
    for i in range(args.cases):
        iw, ih = (int(v) for v in rng.integers(8, 600, 2))
        ow, oh = (int(v) for v in rng.integers(8, 400, 2))
        if iw == ow or ih == oh:
            continue
        box = (0.0, 0.0, float(iw), float(ih))
        if i % 2 and iw > 24 and ih > 24:
            box = (
                float(rng.integers(0, iw // 3)),
                float(rng.integers(0, ih // 3)),
                float(iw - rng.integers(0, iw // 3)),
                float(ih - rng.integers(0, ih // 3)),
            )
        across, down = orders(Image.fromarray(noise[:ih, :iw]), (ow, oh), box)
        if across and down:
            seen["either"] += 1
            continue
        seen["down" if down else "across"] += 1
        if down != down_first(iw, ih, ow, oh) or not (across or down):
            misses.append((iw, ih, box, ow, oh, "down" if down else "across" if across else "neither"))
    print(f"Pillow {Image.__version__}: {seen}; misses of the rule: {len(misses)}")
    for m in misses[:20]:
        print("  miss:", m)
    sys.exit(1 if misses else 0)


if __name__ == "__main__":
    main()
