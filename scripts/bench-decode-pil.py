#!/usr/bin/env python3
"""PIL's side of the decode + preprocess comparison (docs/performance.md): one JPEG decoded
fully and with `draft` (DCT-domain scaling), then the study's transform up to the crop
(short side 256, antialiased, centre crop 224). Prints the median of each over N runs.

Usage: .venv-ref/bin/python scripts/bench-decode-pil.py IMAGE [RUNS, default 60]
"""

import statistics
import sys
import time

from PIL import Image

SHORT_SIDE = 256
CROP = 224


def preprocess(path: str, draft: bool) -> Image.Image:
    im = Image.open(path)
    if draft:
        im.draft("RGB", (SHORT_SIDE, SHORT_SIDE))
    im = im.convert("RGB")
    w, h = im.size
    scale = SHORT_SIDE / min(w, h)
    im = im.resize((round(w * scale), round(h * scale)), Image.BILINEAR, reducing_gap=None)
    w, h = im.size
    left, top = (w - CROP) // 2, (h - CROP) // 2
    return im.crop((left, top, left + CROP, top + CROP))


def median_ms(path: str, draft: bool, runs: int) -> float:
    preprocess(path, draft)  # warm the file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        preprocess(path, draft)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> None:
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    size = Image.open(path).size
    print(f"{path} {size[0]}x{size[1]}, median of {runs}")
    print(f"PIL full decode + resize + crop: {median_ms(path, False, runs):.2f} ms")
    print(f"PIL draft decode + resize + crop: {median_ms(path, True, runs):.2f} ms")


if __name__ == "__main__":
    main()
