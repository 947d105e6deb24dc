"""Make the README pictures: each sample photo, its mask overlay and cutout, and the product colors.

Runs the `fashion-seg segment` command on each sample set in events/samples/ and composes one
PNG per set: a row per photo (input | mask overlay | cutout on a checkerboard) and a strip of
color swatches with hex code, share and name. Run from the repository root after the model
changes (`make readme-images`):

    .venv/bin/python tests/data/make_readme_images.py --out docs/images
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "events" / "samples"
ROW_HEIGHT = 220
GAP = 8
SWATCH_HEIGHT = 44
OVERLAY_RGB = (40, 220, 120)
BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class SampleSet:
    """One product's photos (relative to events/samples) and the category hint the CLI gets."""

    name: str
    photos: tuple[str, ...]
    category: str


SETS = (
    SampleSet("sweater", ("packshot.png", "front.jpg", "back.jpg", "detail.jpg"), "sweater"),
    SampleSet("chinos", ("set2/packshot.jpg", "set2/front.jpg"), "trousers"),
)


def run_cli(sample: SampleSet, out: Path) -> dict[str, Any]:
    """Segment one sample set with the CLI into `out` and return its result.json."""
    command = [sys.executable, "-m", "handler.cli", "segment", *(str(SAMPLES / photo) for photo in sample.photos),
               "--category", sample.category, "--out", str(out)]
    subprocess.run(command, check=True, cwd=REPO_ROOT)
    return dict(json.loads((out / "result.json").read_text()))


def mask_overlay(photo: Image.Image, mask: Image.Image) -> Image.Image:
    """Tint the masked pixels green at 45% and draw the mask's outline, on a copy of `photo`."""
    tint = Image.new("RGB", photo.size, OVERLAY_RGB)
    inside = mask.point(lambda value: 115 if value >= 128 else 0)
    shaded = Image.composite(tint, photo, inside)
    binary = mask.point(lambda value: 255 if value >= 128 else 0)
    outline = Image.fromarray(np.asarray(binary) ^ np.asarray(binary.filter(ImageFilter.MinFilter(5))))
    return Image.composite(tint, shaded, outline)


def checkerboard(size: tuple[int, int], cell: int = 12) -> Image.Image:
    """Light grey checkerboard of `size` (width, height), the usual backdrop for transparency."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    light = ((x // cell + y // cell) % 2).astype(bool)
    values = np.where(light[..., None], np.uint8(236), np.uint8(200)).repeat(3, axis=2)
    return Image.fromarray(values)


def fit_height(image: Image.Image, height: int) -> Image.Image:
    """Scale `image` to `height` pixels tall, keeping its aspect ratio."""
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def compose_row(photo: Image.Image, mask: Image.Image, cutout: Image.Image) -> Image.Image:
    """Place input, overlay and cutout side by side at ROW_HEIGHT."""
    panels = [photo, mask_overlay(photo, mask)]
    backdrop = checkerboard(cutout.size)
    backdrop.paste(cutout, (0, 0), cutout)
    panels.append(backdrop)
    panels = [fit_height(panel, ROW_HEIGHT) for panel in panels]
    row = Image.new("RGB", (sum(panel.width for panel in panels) + GAP * (len(panels) - 1), ROW_HEIGHT), BACKGROUND)
    x = 0
    for panel in panels:
        row.paste(panel, (x, 0))
        x += panel.width + GAP
    return row


def swatch_strip(colors: Sequence[dict[str, Any]], width: int) -> Image.Image:
    """Draw the colors as boxes whose widths follow their percentages, with a legend line each."""
    line_height = 18
    strip = Image.new("RGB", (width, SWATCH_HEIGHT + GAP + line_height * len(colors)), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=14)
    x = 0
    for index, color in enumerate(colors):
        box_width = width - x if index == len(colors) - 1 else round(width * color["percentage"] / 100)
        draw.rectangle([x, 0, x + box_width - 1, SWATCH_HEIGHT - 1], fill=tuple(color["rgb"]), outline=(120, 120, 120))
        x += box_width
        y = SWATCH_HEIGHT + GAP + index * line_height
        draw.rectangle([0, y + 2, 12, y + 14], fill=tuple(color["rgb"]), outline=(120, 120, 120))
        draw.text((20, y), f"{color['hex']}  {color['percentage']:3d}%  {color['name']} ({color['family']})",
                  fill=(40, 40, 40), font=font)
    return strip


def compose_sheet(sample: SampleSet, result: dict[str, Any], out_dir: Path) -> Image.Image:
    """Stack one row per photo and the swatch strip into one picture."""
    rows = []
    for photo_name, entry in zip(sample.photos, result["images"], strict=True):
        with Image.open(SAMPLES / photo_name) as raw:
            photo = ImageOps.exif_transpose(raw).convert("RGB")
        mask = Image.open(out_dir / entry["mask"]["path"]).convert("L")
        cutout = Image.open(out_dir / entry["cutout"]["path"]).convert("RGBA")
        rows.append(compose_row(photo, mask, cutout))
    width = max(row.width for row in rows)
    strip = swatch_strip(result["colors"], width)
    sheet = Image.new("RGB", (width, sum(row.height + GAP for row in rows) + strip.height), BACKGROUND)
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + GAP
    sheet.paste(strip, (0, y))
    return sheet


def main(argv: Sequence[str] | None = None) -> int:
    """Write docs/images/<set>.png for each sample set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "images", help="folder for the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="readme-images-") as scratch:
        for sample in SETS:
            cli_out = Path(scratch) / sample.name
            result = run_cli(sample, cli_out)
            sheet = compose_sheet(sample, result, cli_out)
            target = args.out / f"{sample.name}.png"
            sheet.save(target, optimize=True)
            print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
