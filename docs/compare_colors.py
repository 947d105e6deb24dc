"""Compare product_colors with legacy_colors on generated products; prints a Markdown table.

Usage: .venv/bin/python docs/compare_colors.py
The output is pasted into docs/colors.md; rerun it when either algorithm changes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from handler.colors import Color, legacy_colors, product_colors

Case = tuple[str, str, Callable[[], tuple[list[NDArray[np.uint8]], list[NDArray[np.bool_]]]]]


def _rgb(hex_color: str) -> NDArray[np.uint8]:
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


def _solid(hex_color: str, height: int, width: int) -> NDArray[np.uint8]:
    return np.tile(_rgb(hex_color), (height, width, 1))


def _on_background(
    product: NDArray[np.uint8], background: str, pad: int
) -> tuple[list[NDArray[np.uint8]], list[NDArray[np.bool_]]]:
    """Place a product in the middle of a flat background; the mask is exactly the product."""
    height, width = product.shape[:2]
    image = _solid(background, height + 2 * pad, width + 2 * pad)
    image[pad : pad + height, pad : pad + width] = product
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[pad : pad + height, pad : pad + width] = True
    return [image], [mask]


def _red_flat() -> tuple[list[NDArray[np.uint8]], list[NDArray[np.bool_]]]:
    return _on_background(_solid("#c8102e", 200, 150), "#ffffff", 20)


def _navy_noisy() -> tuple[list[NDArray[np.uint8]], list[NDArray[np.bool_]]]:
    noise = np.random.default_rng(0).normal(0.0, 10.0, (200, 150, 3))
    return _on_background(np.clip(_solid("#1f2a44", 200, 150) + noise, 0, 255).astype(np.uint8), "#ffffff", 20)


def _seventy_thirty() -> tuple[list[NDArray[np.uint8]], list[NDArray[np.bool_]]]:
    product = _solid("#c8102e", 200, 300)
    product[:, 210:] = _rgb("#1f2a44")
    return _on_background(product, "#ffffff", 20)


def _three_stripes() -> tuple[list[NDArray[np.uint8]], list[NDArray[np.bool_]]]:
    band = np.concatenate([_solid("#c8102e", 200, 10), _solid("#1f2a44", 200, 6), _solid("#f5f5dc", 200, 4)], axis=1)
    return _on_background(np.tile(band, (1, 10, 1)), "#ffffff", 20)


def _green_on_red() -> tuple[list[NDArray[np.uint8]], list[NDArray[np.bool_]]]:
    return _on_background(_solid("#2e8b57", 200, 150), "#dd2222", 20)


def _white_on_white() -> tuple[list[NDArray[np.uint8]], list[NDArray[np.bool_]]]:
    return _on_background(_solid("#f4f4f0", 200, 150), "#ffffff", 20)


def _near_black() -> tuple[list[NDArray[np.uint8]], list[NDArray[np.bool_]]]:
    return _on_background(_solid("#14161f", 200, 150), "#ffffff", 20)


def _orange_halo() -> tuple[list[NDArray[np.uint8]], list[NDArray[np.bool_]]]:
    product = _solid("#ff8c00", 30, 30)
    product[2:-2, 2:-2] = _rgb("#2e8b57")
    return _on_background(product, "#ffffff", 10)


def _large_and_small_view() -> tuple[list[NDArray[np.uint8]], list[NDArray[np.bool_]]]:
    large = np.broadcast_to(_rgb("#c8102e"), (6000, 4000, 3))
    small = np.broadcast_to(_rgb("#1f2a44"), (1000, 1000, 3))
    return [large, small], [np.ones((6000, 4000), dtype=bool), np.ones((1000, 1000), dtype=bool)]


def _small_logo() -> tuple[list[NDArray[np.uint8]], list[NDArray[np.bool_]]]:
    product = _solid("#1f2a44", 200, 200)
    product[90:125, 90:125] = _rgb("#ffd700")
    return _on_background(product, "#ffffff", 20)


CASES: list[Case] = [
    ("flat red", "red 100", _red_flat),
    ("navy, noise sd 10", "navy 100", _navy_noisy),
    ("red/navy 70/30", "red 70, navy 30", _seventy_thirty),
    ("red/navy/beige stripes", "50, 30, 20", _three_stripes),
    ("green on red background", "green 100", _green_on_red),
    ("off-white on white", "white 100", _white_on_white),
    ("near-black #14161f", "black 100", _near_black),
    ("green, 2 px orange halo in mask", "green 100", _orange_halo),
    ("24 MP red + 1 MP navy view", "red 50, navy 50", _large_and_small_view),
    ("navy with 3% gold logo", "navy 97, gold 3", _small_logo),
]


def format_colors(colors: tuple[Color, ...]) -> str:
    """Render colors as "name (family) hex pct%" joined by "; "."""
    return "; ".join(f"{c.name} ({c.family}) {c.hex} {c.percentage}%" for c in colors) or "(none)"


def main() -> None:
    """Print one table row per generated case."""
    argparse.ArgumentParser(description=__doc__).parse_args()
    print("| case | built | product_colors | legacy_colors |")
    print("|---|---|---|---|")
    for title, built, make in CASES:
        images, masks = make()
        new = format_colors(product_colors(images, masks))
        old = format_colors(legacy_colors(images, masks))
        print(f"| {title} | {built} | {new} | {old} |")


if __name__ == "__main__":
    main()
