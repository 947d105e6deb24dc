"""Product colors, color space conversion, names and families on hand-built images."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from handler.color_space import (
    FAMILIES,
    color_family,
    delta_e_2000,
    lab_to_lch,
    lab_to_srgb,
    nearest_color_name,
    srgb_to_lab,
)
from handler.colors import Color, legacy_colors, product_colors

PALETTE_PATH = Path(__file__).resolve().parents[2] / "handler" / "data" / "color_names.json"

SINGLE_COLOR_DELTA_E = 2.0
"""Largest CIEDE2000 between a flat product color and the color reported for it."""

SHARE_TOLERANCE = 3
"""Largest difference, in percentage points, between a built share and the reported one."""

SAME_COLOR_DELTA_E = 5.0
"""A reported color this close (CIEDE2000) to a built color is taken to be that color."""


def rgb_of(hex_color: str) -> NDArray[np.uint8]:
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


def lab_of(hex_color: str) -> NDArray[np.float64]:
    return srgb_to_lab(rgb_of(hex_color))


def solid(hex_color: str, height: int = 120, width: int = 90) -> NDArray[np.uint8]:
    return np.tile(rgb_of(hex_color), (height, width, 1))


def full_mask(image: NDArray[np.uint8]) -> NDArray[np.bool_]:
    return np.ones(image.shape[:2], dtype=bool)


def vertical_stripes(
    colors_and_widths: list[tuple[str, int]], height: int = 120, repeats: int = 8
) -> NDArray[np.uint8]:
    """Repeat a band of vertical stripes; each color's share is its width over the band width."""
    band = np.concatenate([np.tile(rgb_of(c), (height, width, 1)) for c, width in colors_and_widths], axis=1)
    return np.tile(band, (1, repeats, 1))


def delta_e_to(color: Color, hex_color: str) -> float:
    return float(delta_e_2000(np.array(color.lab), lab_of(hex_color)))


def find_color(colors: tuple[Color, ...], hex_color: str) -> Color | None:
    """The reported color within SAME_COLOR_DELTA_E of hex_color, if any."""
    near = [c for c in colors if delta_e_to(c, hex_color) < SAME_COLOR_DELTA_E]
    return near[0] if near else None


# ---------------------------------------------------------------------------
# color space


@pytest.mark.parametrize(
    ("lab1", "lab2", "expected"),
    [
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, -1.0, 2.0), (50.0, 0.0, 0.0), 2.3669),
        ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0009), 7.1792),
        ((50.0, 2.5, 0.0), (50.0, 0.0, -2.5), 4.3065),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
        ((50.0, 2.5, 0.0), (58.0, 24.0, 15.0), 19.4535),
        ((50.0, 2.5, 0.0), (50.0, 3.1736, 0.5854), 1.0000),
    ],
)
def test_delta_e_2000_sharma_reference_pairs(lab1: tuple[float, ...], lab2: tuple[float, ...], expected: float) -> None:
    # Reference values: Sharma, Wu and Dalal (2005), supplementary test data.
    assert float(delta_e_2000(np.array(lab1), np.array(lab2))) == pytest.approx(expected, abs=1e-4)
    assert float(delta_e_2000(np.array(lab2), np.array(lab1))) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("hex_color", "expected_lab"),
    [
        ("#ffffff", (100.0, 0.0, 0.0)),
        ("#000000", (0.0, 0.0, 0.0)),
        ("#ff0000", (53.24, 80.09, 67.20)),
        ("#00ff00", (87.73, -86.18, 83.18)),
        ("#0000ff", (32.30, 79.19, -107.86)),
        ("#808080", (53.59, 0.0, 0.0)),
    ],
)
def test_srgb_to_lab_known_values(hex_color: str, expected_lab: tuple[float, float, float]) -> None:
    np.testing.assert_allclose(lab_of(hex_color), expected_lab, atol=0.05)


def test_lab_to_srgb_round_trips_uint8_grid() -> None:
    levels = np.arange(0, 256, 15, dtype=np.uint8)
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)

    np.testing.assert_array_equal(lab_to_srgb(srgb_to_lab(rgb)), rgb)


def test_lab_to_srgb_out_of_gamut_clips() -> None:
    rgb = lab_to_srgb(np.array([[50.0, 200.0, 0.0], [110.0, 0.0, 0.0]]))

    assert rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[1], [255, 255, 255])


def test_lab_to_lch_hue_in_degrees() -> None:
    lch = lab_to_lch(np.array([[50.0, 0.0, 10.0], [50.0, -10.0, 0.0], [50.0, 0.0, -10.0]]))

    np.testing.assert_allclose(lch[:, 1], [10.0, 10.0, 10.0])
    np.testing.assert_allclose(lch[:, 2], [90.0, 180.0, 270.0])


def test_srgb_to_lab_rejects_float_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        srgb_to_lab(np.zeros((4, 3), dtype=np.float32))


# ---------------------------------------------------------------------------
# names and families


def test_palette_file_is_valid() -> None:
    document = json.loads(PALETTE_PATH.read_text(encoding="utf-8"))
    names = [entry["name"] for entry in document["colors"]]

    assert 60 <= len(names) <= 120
    assert len(set(names)) == len(names)
    for entry in document["colors"]:
        assert re.fullmatch(r"#[0-9a-f]{6}", entry["hex"]), entry
        assert entry["source"] in document["sources"], entry


@pytest.mark.parametrize(
    ("hex_color", "family"),
    [
        ("#ff0000", "red"),
        ("#c8102e", "red"),
        ("#800020", "red"),
        ("#ffa500", "orange"),
        ("#ff8c00", "orange"),
        ("#ffd700", "yellow"),
        ("#e1ad01", "yellow"),
        ("#808000", "green"),
        ("#228b22", "green"),
        ("#2e8b57", "green"),
        ("#000080", "blue"),
        ("#202a44", "blue"),
        ("#4169e1", "blue"),
        ("#87ceeb", "blue"),
        ("#800080", "purple"),
        ("#4b0082", "purple"),
        ("#ff69b4", "pink"),
        ("#ffc0cb", "pink"),
        ("#f4c2c2", "pink"),
        ("#6f4e37", "brown"),
        ("#8b4513", "brown"),
        ("#c19a6b", "brown"),
        ("#f5f5dc", "beige"),
        ("#d2b48c", "beige"),
        ("#c3b091", "beige"),
        ("#fffdd0", "beige"),
        ("#000000", "black"),
        ("#1c1c1c", "black"),
        ("#14161f", "black"),
        ("#808080", "grey"),
        ("#36454f", "grey"),
        ("#d3d3d3", "grey"),
        ("#ffffff", "white"),
        ("#fffff0", "white"),
        ("#fafafa", "white"),
    ],
)
def test_color_family_of_reference_colors(hex_color: str, family: str) -> None:
    assert color_family(lab_of(hex_color)) == family


def test_color_family_covers_all_families() -> None:
    levels = np.arange(0, 256, 17, dtype=np.uint8)
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)

    families = {color_family(lab) for lab in srgb_to_lab(rgb)}

    assert families == set(FAMILIES)


def test_nearest_color_name_exact_swatch() -> None:
    document = json.loads(PALETTE_PATH.read_text(encoding="utf-8"))

    for entry in document["colors"]:
        assert nearest_color_name(lab_of(entry["hex"])) == entry["name"]


# ---------------------------------------------------------------------------
# product_colors: single colors


@pytest.mark.parametrize(
    ("hex_color", "family", "names"),
    [
        ("#c8102e", "red", {"red", "crimson", "firebrick"}),
        ("#1f2a44", "blue", {"navy", "midnight blue"}),
        ("#e8dcc4", "beige", {"beige", "wheat", "linen", "cream", "sand", "stone"}),
        ("#708238", "green", {"olive", "olive drab", "army green"}),
        ("#2e8b57", "green", {"sea green", "emerald", "bottle green"}),
        ("#6f4e37", "brown", {"brown", "dark brown", "espresso", "chestnut"}),
    ],
)
def test_product_colors_single_color(hex_color: str, family: str, names: set[str]) -> None:
    image = solid(hex_color)

    colors = product_colors([image], [full_mask(image)])

    assert len(colors) == 1
    assert delta_e_to(colors[0], hex_color) < SINGLE_COLOR_DELTA_E
    assert colors[0].family == family
    assert colors[0].name in names
    assert colors[0].percentage == 100


@pytest.mark.parametrize("hex_color", ["#000000", "#0d0d0d", "#1c1c1c", "#14161f"])
def test_product_colors_black_and_near_black(hex_color: str) -> None:
    image = solid(hex_color)

    colors = product_colors([image], [full_mask(image)])

    assert [c.family for c in colors] == ["black"]


def test_product_colors_white_on_white_with_mask() -> None:
    # GIVEN an off-white product on a pure white background, and its exact mask
    image = solid("#ffffff", 160, 160)
    image[30:130, 40:120] = rgb_of("#f4f4f0")
    mask = np.zeros((160, 160), dtype=bool)
    mask[30:130, 40:120] = True

    # WHEN
    colors = product_colors([image], [mask])

    # THEN
    assert len(colors) == 1
    assert colors[0].family == "white"
    assert delta_e_to(colors[0], "#f4f4f0") < SINGLE_COLOR_DELTA_E


def test_product_colors_background_excluded() -> None:
    image = solid("#dd2222", 160, 160)
    image[20:140, 30:130] = rgb_of("#2e8b57")
    mask = np.zeros((160, 160), dtype=bool)
    mask[20:140, 30:130] = True

    colors = product_colors([image], [mask])

    assert len(colors) == 1
    assert delta_e_to(colors[0], "#2e8b57") < SINGLE_COLOR_DELTA_E
    assert find_color(colors, "#dd2222") is None


@pytest.mark.parametrize("sigma", [6.0, 10.0])
def test_product_colors_noise_gives_one_color(sigma: float) -> None:
    rng = np.random.default_rng(7)
    noisy = solid("#3a6ea5", 200, 150) + rng.normal(0.0, sigma, (200, 150, 3))
    image = np.clip(noisy, 0, 255).astype(np.uint8)

    colors = product_colors([image], [full_mask(image)])

    assert len(colors) == 1
    assert delta_e_to(colors[0], "#3a6ea5") < SINGLE_COLOR_DELTA_E


def test_product_colors_knit_texture_gives_one_color() -> None:
    # GIVEN a knit-like texture: a shading ripple of +-25 levels and grain noise on one color
    rows, cols = np.mgrid[0:200, 0:150]
    ripple = 25.0 * np.sin(rows / 2.0) * np.cos(cols / 3.0)
    grain = np.random.default_rng(8).normal(0.0, 8.0, (200, 150))
    shading = (ripple + grain)[:, :, None]
    image = np.clip(solid("#8b2232", 200, 150) + shading, 0, 255).astype(np.uint8)

    # WHEN
    colors = product_colors([image], [full_mask(image)])

    # THEN
    assert len(colors) == 1
    assert colors[0].family == "red"


# ---------------------------------------------------------------------------
# product_colors: shares


@pytest.mark.parametrize(
    "stripes",
    [
        [("#c8102e", 6), ("#f5f5f5", 4)],
        [("#1f2a44", 5), ("#ffd700", 5)],
        [("#c8102e", 10), ("#1f2a44", 6), ("#f5f5dc", 4)],
        [("#000000", 8), ("#2e8b57", 7), ("#ff69b4", 5)],
    ],
    ids=["red-white-60-40", "navy-gold-50-50", "red-navy-beige-50-30-20", "black-green-pink-40-35-25"],
)
def test_product_colors_stripe_shares(stripes: list[tuple[str, int]]) -> None:
    image = vertical_stripes(stripes)
    band_width = sum(width for _, width in stripes)

    colors = product_colors([image], [full_mask(image)])

    assert len(colors) == len(stripes)
    for hex_color, width in stripes:
        found = find_color(colors, hex_color)
        assert found is not None, f"{hex_color} not reported in {colors}"
        assert abs(found.percentage - 100 * width / band_width) <= SHARE_TOLERANCE


def test_product_colors_seventy_thirty() -> None:
    image = solid("#c8102e", 200, 300)
    image[:, 210:] = rgb_of("#1f2a44")

    colors = product_colors([image], [full_mask(image)])

    assert [c.percentage for c in colors] == pytest.approx([70, 30], abs=SHARE_TOLERANCE)
    assert delta_e_to(colors[0], "#c8102e") < SINGLE_COLOR_DELTA_E
    assert delta_e_to(colors[1], "#1f2a44") < SINGLE_COLOR_DELTA_E


@pytest.mark.parametrize("seed", range(8))
def test_product_colors_percentages_sum_to_100(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stripes = [
        (f"#{int(rng.integers(0, 1 << 24)):06x}", int(rng.integers(1, 9))) for _ in range(int(rng.integers(2, 7)))
    ]
    image = vertical_stripes(stripes, height=60, repeats=5)

    colors = product_colors([image], [full_mask(image)], seed=seed)

    percentages = [c.percentage for c in colors]
    assert sum(percentages) == 100
    assert percentages == sorted(percentages, reverse=True)
    assert 1 <= len(colors) <= 5


@pytest.mark.parametrize("max_colors", [1, 2, 3])
def test_product_colors_max_colors_respected(max_colors: int) -> None:
    image = vertical_stripes([("#c8102e", 4), ("#1f2a44", 3), ("#ffd700", 2), ("#2e8b57", 1)])

    colors = product_colors([image], [full_mask(image)], max_colors=max_colors)

    assert len(colors) == max_colors
    assert sum(c.percentage for c in colors) == 100
    assert delta_e_to(colors[0], "#c8102e") < SINGLE_COLOR_DELTA_E


def test_product_colors_deterministic() -> None:
    rng = np.random.default_rng(1)
    image = np.clip(vertical_stripes([("#c8102e", 5), ("#e8dcc4", 3)]) + rng.normal(0, 8, (120, 64, 3)), 0, 255)
    image = image.astype(np.uint8)

    first = product_colors([image, image[:, ::-1]], [full_mask(image)] * 2, seed=3)
    second = product_colors([image, image[:, ::-1]], [full_mask(image)] * 2, seed=3)

    assert first == second


# ---------------------------------------------------------------------------
# product_colors: views, edges, empty masks


def test_product_colors_large_view_does_not_outvote_small() -> None:
    # GIVEN a 24 MP red view and a 1 MP navy view; broadcast views cost no memory
    large = np.broadcast_to(rgb_of("#c8102e"), (6000, 4000, 3))
    small = np.broadcast_to(rgb_of("#1f2a44"), (1000, 1000, 3))
    masks = [np.ones((6000, 4000), dtype=bool), np.ones((1000, 1000), dtype=bool)]

    # WHEN
    colors = product_colors([large, small], masks)

    # THEN
    red, navy = find_color(colors, "#c8102e"), find_color(colors, "#1f2a44")
    assert red is not None and navy is not None
    assert abs(red.percentage - 50) <= SHARE_TOLERANCE
    assert abs(navy.percentage - 50) <= SHARE_TOLERANCE


@pytest.mark.parametrize("halo_width", [1, 2])
def test_product_colors_border_halo_excluded(halo_width: int) -> None:
    # GIVEN a green product whose mask also covers a thin orange fringe around it
    # that covers about 10% of the mask or more, above the share where colors get dropped
    image = solid("#ffffff", 60, 60)
    image[10:50, 10:50] = rgb_of("#ff8c00")
    inner = 10 + halo_width
    image[inner : 60 - inner, inner : 60 - inner] = rgb_of("#2e8b57")
    mask = np.zeros((60, 60), dtype=bool)
    mask[10:50, 10:50] = True

    # WHEN
    colors = product_colors([image], [mask])

    # THEN
    assert len(colors) == 1
    assert find_color(colors, "#ff8c00") is None


def test_product_colors_thin_strap_keeps_its_pixels() -> None:
    # GIVEN a strap 4 px wide, thinner than two edge margins
    image = solid("#ffffff", 200, 200)
    image[:, 98:102] = rgb_of("#6f4e37")
    mask = np.zeros((200, 200), dtype=bool)
    mask[:, 98:102] = True

    # WHEN
    colors = product_colors([image], [mask])

    # THEN
    assert len(colors) == 1
    assert delta_e_to(colors[0], "#6f4e37") < SINGLE_COLOR_DELTA_E


def test_product_colors_frame_edge_kept() -> None:
    # GIVEN a 6 px band along the top edge of the photo; the frame is not a mask border
    image = solid("#ffffff", 100, 100)
    image[:6, :] = rgb_of("#c8102e")
    mask = np.zeros((100, 100), dtype=bool)
    mask[:6, :] = True

    colors = product_colors([image], [mask])

    assert len(colors) == 1
    assert delta_e_to(colors[0], "#c8102e") < SINGLE_COLOR_DELTA_E


def palette_dithered(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Repaint an RGB image with the 216-color web palette and Floyd-Steinberg dithering, as a GIF would."""
    paletted = Image.fromarray(image).convert("P", palette=Image.Palette.WEB, dither=Image.Dither.FLOYDSTEINBERG)
    return np.asarray(paletted.convert("RGB"))


def jpeg_round_trip(image: NDArray[np.uint8], quality: int = 85) -> NDArray[np.uint8]:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def test_product_colors_dithered_palette_image() -> None:
    # GIVEN a plum and mustard product saved as a dithered palette image: no palette
    # entry is near plum or mustard, so each half is a mix of several entries
    built = solid("#ffffff", 400, 300)
    built[50:200, 50:250] = rgb_of("#803c8c")
    built[200:350, 50:250] = rgb_of("#c8aa3c")
    mask = np.zeros((400, 300), dtype=bool)
    mask[50:350, 50:250] = True

    colors = product_colors([palette_dithered(built)], [mask])

    assert len(colors) == 2
    for hex_color in ("#803c8c", "#c8aa3c"):
        found = find_color(colors, hex_color)
        assert found is not None, f"{hex_color} not found in {[c.hex for c in colors]}"
        assert abs(found.percentage - 50) <= SHARE_TOLERANCE


def test_product_colors_dithered_thin_strap() -> None:
    # GIVEN a dithered plum strap 4 px wide on white: every window around a strap pixel
    # reaches the white background
    built = solid("#ffffff", 200, 200)
    built[:, 98:102] = rgb_of("#803c8c")
    mask = np.zeros((200, 200), dtype=bool)
    mask[:, 98:102] = True

    colors = product_colors([palette_dithered(built)], [mask])

    assert len(colors) == 1
    assert delta_e_to(colors[0], "#803c8c") < SAME_COLOR_DELTA_E


def test_product_colors_jpeg_sharp_stripes() -> None:
    # GIVEN navy and gold stripes 5 px wide saved as JPEG. Ringing at the stripe edges
    # makes them look dithered, but window means would add navy-gold blends.
    image = jpeg_round_trip(vertical_stripes([("#1f2a44", 5), ("#d4af37", 5)]))

    colors = product_colors([image], [full_mask(image)])

    assert len(colors) == 2
    assert [c.percentage for c in colors] == pytest.approx([50, 50], abs=SHARE_TOLERANCE)
    assert find_color(colors, "#d4af37") is not None


def test_product_colors_jpeg_fine_print() -> None:
    # GIVEN a black garment with a dense print of red dots 1 to 3 px across, saved as JPEG. Many
    # pixels stand alone among their neighbours, as in a dithered image, but window means
    # would blend the print into one dark brown.
    rng = np.random.default_rng(0)
    printed = Image.new("RGB", (240, 240), (20, 20, 22))
    draw = ImageDraw.Draw(printed)
    for x, y in rng.integers(0, 240, (2500, 2)):
        draw.ellipse((x - 1, y - 1, x + 1, y + 1), fill=(200, 60, 30))
    noisy = np.asarray(printed).astype(np.float64) + rng.normal(0.0, 5.0, (240, 240, 3))
    image = jpeg_round_trip(np.clip(noisy, 0, 255).astype(np.uint8), quality=75)

    colors = product_colors([image], [full_mask(image)])

    assert len(colors) == 2
    assert find_color(colors, "#1e1414") is not None


def test_product_colors_empty_masks_empty_tuple() -> None:
    image = solid("#c8102e")
    empty = np.zeros(image.shape[:2], dtype=bool)

    assert product_colors([image, image], [empty, empty]) == ()
    assert product_colors([], []) == ()


def test_product_colors_empty_view_ignored() -> None:
    red, navy = solid("#c8102e"), solid("#1f2a44")

    colors = product_colors([red, navy], [full_mask(red), np.zeros(navy.shape[:2], dtype=bool)])

    assert len(colors) == 1
    assert delta_e_to(colors[0], "#c8102e") < SINGLE_COLOR_DELTA_E


@pytest.mark.xfail(strict=True, reason="clusters under MIN_SHARE (5%) are folded into the nearest color")
def test_product_colors_small_logo_reported() -> None:
    image = solid("#1f2a44", 200, 200)
    image[90:125, 90:125] = rgb_of("#ffd700")

    colors = product_colors([image], [full_mask(image)])

    assert find_color(colors, "#ffd700") is not None


# ---------------------------------------------------------------------------
# input checks and output format


def test_product_colors_mask_count_mismatch_raises() -> None:
    image = solid("#c8102e")

    with pytest.raises(ValueError, match="2 images and 1 masks"):
        product_colors([image, image], [full_mask(image)])


def test_product_colors_uint8_mask_raises() -> None:
    image = solid("#c8102e")

    with pytest.raises(ValueError, match=r"view 0.*bool mask"):
        product_colors([image], [np.full(image.shape[:2], 255, dtype=np.uint8)])


def test_product_colors_mask_shape_mismatch_raises() -> None:
    image = solid("#c8102e")

    with pytest.raises(ValueError, match=r"view 0.*\(10, 10\)"):
        product_colors([image], [np.ones((10, 10), dtype=bool)])


def test_product_colors_grey_image_raises() -> None:
    with pytest.raises(ValueError, match=r"view 0.*\(H, W, 3\) uint8"):
        product_colors([np.zeros((10, 10), dtype=np.uint8)], [np.ones((10, 10), dtype=bool)])


@pytest.mark.parametrize("max_colors", [0, 9])
def test_product_colors_max_colors_out_of_range_raises(max_colors: int) -> None:
    image = solid("#c8102e")

    with pytest.raises(ValueError, match=f"got {max_colors}"):
        product_colors([image], [full_mask(image)], max_colors=max_colors)


def test_color_fields_consistent() -> None:
    image = solid("#c8102e")

    color = product_colors([image], [full_mask(image)])[0]

    assert re.fullmatch(r"#[0-9a-f]{6}", color.hex)
    assert tuple(rgb_of(color.hex)) == color.rgb
    np.testing.assert_allclose(color.lab, srgb_to_lab(np.array(color.rgb, dtype=np.uint8)), atol=0.05)
    assert color.family in FAMILIES
    assert color.to_dict() == {
        "hex": color.hex,
        "rgb": list(color.rgb),
        "lab": list(color.lab),
        "percentage": 100,
        "name": color.name,
        "family": color.family,
    }
    json.dumps(color.to_dict())


# ---------------------------------------------------------------------------
# legacy_colors


def test_legacy_colors_large_view_outvotes_small() -> None:
    large = np.broadcast_to(rgb_of("#c8102e"), (2000, 1500, 3))
    small = np.broadcast_to(rgb_of("#1f2a44"), (400, 300, 3))
    masks = [np.ones((2000, 1500), dtype=bool), np.ones((400, 300), dtype=bool)]

    colors = legacy_colors([large, small], masks)

    # The navy view is 4% of the pooled pixels, under 1/8 of the red one, so it is dropped.
    assert len(colors) == 1
    assert delta_e_to(colors[0], "#c8102e") < SINGLE_COLOR_DELTA_E


def test_legacy_colors_two_stripes_shares() -> None:
    image = vertical_stripes([("#c8102e", 6), ("#f5f5f5", 4)])

    colors = legacy_colors([image], [full_mask(image)])

    assert [c.percentage for c in colors] == [60, 40]
    assert sum(c.percentage for c in colors) == 100


def test_legacy_colors_empty_masks_empty_tuple() -> None:
    image = solid("#c8102e")

    assert legacy_colors([image], [np.zeros(image.shape[:2], dtype=bool)]) == ()
