"""Print the peak RSS of one large direct invocation of the Lambda handler.

    python tests/bench/peak_memory.py [--side 4000] [--count 4]

Builds `count` noisy side x side JPEG photos (noise makes large request bodies
and large PNG cutouts), sends them inline as base64 in one direct event, and prints
the process's peak resident memory before and after the invocation. With no
OUTPUT_BUCKET, a set this large stops at the inline response size check
(HTTP 413) after segmenting and encoding every view, so the peak covers
decode, inference, refinement, colors and PNG encoding. This is the figure
behind MAX_REQUEST_PIXELS in handler/app.py.
"""

from __future__ import annotations

import argparse
import base64
import io
import resource
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from handler import app
from handler.cli import LocalContext


def noisy_jpeg(side: int, seed: int) -> bytes:
    """Encode a side x side gradient with uint8 noise as JPEG (quality 90)."""
    rng = np.random.default_rng(seed)
    pixels = np.linspace(60, 200, side).astype(np.uint8)[None, :, None] + rng.integers(0, 50, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def peak_rss_mib() -> float:
    """Return this process's peak resident memory in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=4000, help="width and height of each photo in pixels")
    parser.add_argument("--count", type=int, default=4, help="photos in the set, 1 to 4")
    args = parser.parse_args()

    event = {
        "images": [base64.b64encode(noisy_jpeg(args.side, seed)).decode("ascii") for seed in range(args.count)],
        "product_id": "peak-memory",
    }
    before = peak_rss_mib()
    response = app.lambda_handler(event, LocalContext())
    after = peak_rss_mib()
    megapixels = args.count * args.side * args.side / 1e6
    print(f"{args.count} x {args.side}x{args.side} noisy JPEG ({megapixels:.0f} MP), sent inline in a direct event")
    if "error" in response:
        print(f"  error {response['error']['code']}: {response['error']['message']}")
    else:
        print(f"  segmented {len(response['images'])} photos")
    print(f"peak RSS before the invocation: {before:8.1f} MiB")
    print(f"peak RSS after the invocation:  {after:8.1f} MiB")


if __name__ == "__main__":
    main()
