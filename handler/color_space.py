"""sRGB <-> CIELAB conversion, the CIEDE2000 difference, and color names and families.

All conversions use the D65 reference white implied by the sRGB primaries and the
sRGB transfer function (IEC 61966-2-1). Lab values follow the usual ranges: L* in
[0, 100], a* and b* roughly in [-128, 127] for sRGB colors.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

FAMILIES = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "beige", "black", "grey", "white")
"""Color families a product color is grouped into, as returned by ``color_family``."""

_PALETTE_PATH = Path(__file__).parent / "data" / "color_names.json"

# Linear sRGB -> CIE XYZ for the D65 white, as given in IEC 61966-2-1.
_RGB_TO_XYZ = np.array(
    [
        [0.4124, 0.3576, 0.1805],
        [0.2126, 0.7152, 0.0722],
        [0.0193, 0.1192, 0.9505],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)

# Taking the white point from the matrix rows (not a rounded published value) maps
# sRGB white to a* = b* = 0 exactly.
_WHITE_XYZ = _RGB_TO_XYZ.sum(axis=1)

_LAB_DELTA = 6.0 / 29.0


def _decode_srgb(encoded: NDArray[np.float64]) -> NDArray[np.float64]:
    """Undo the sRGB transfer function: encoded values in [0, 1] -> linear light in [0, 1]."""
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


def _encode_srgb(linear: NDArray[np.float64]) -> NDArray[np.float64]:
    """Apply the sRGB transfer function: linear light in [0, 1] -> encoded values in [0, 1]."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1.0 / 2.4) - 0.055)


# The 256 possible uint8 levels decoded once, so converting pixels is a table lookup.
_LINEAR_FROM_UINT8 = _decode_srgb(np.arange(256, dtype=np.float64) / 255.0)


def _lab_f(ratio: NDArray[np.float64]) -> NDArray[np.float64]:
    """CIE Lab companding: cube root above (6/29)^3, a straight line below it."""
    cube_root = np.cbrt(ratio)
    linear_part = ratio / (3.0 * _LAB_DELTA**2) + 4.0 / 29.0
    return np.where(ratio > _LAB_DELTA**3, cube_root, linear_part)


def _lab_f_inverse(value: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse of ``_lab_f``."""
    return np.where(value > _LAB_DELTA, value**3, 3.0 * _LAB_DELTA**2 * (value - 4.0 / 29.0))


def srgb_to_lab(rgb: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Convert 8-bit sRGB colors to CIELAB (D65).

    Args:
        rgb: (..., 3) uint8 sRGB, 0-255.
    Returns:
        (..., 3) float64 Lab: L* in [0, 100], a* and b* about -86..98 and -108..95 for sRGB.
    Raises:
        ValueError: rgb is not uint8 or its last axis is not 3.
    """
    if rgb.dtype != np.uint8 or rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(f"expected (..., 3) uint8 sRGB, got {rgb.shape} {rgb.dtype}")
    linear = _LINEAR_FROM_UINT8[rgb]
    xyz = linear @ _RGB_TO_XYZ.T
    f = _lab_f(xyz / _WHITE_XYZ)
    lightness = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([lightness, a, b], axis=-1)


def lab_to_srgb(lab: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Convert CIELAB (D65) colors to the nearest 8-bit sRGB colors.

    Args:
        lab: (..., 3) float Lab.
    Returns:
        (..., 3) uint8 sRGB, 0-255. Colors outside the sRGB gamut are clipped per channel
        in linear light, which keeps lightness roughly but can shift hue.
    Raises:
        ValueError: the last axis of lab is not 3.
    """
    lab = np.asarray(lab, dtype=np.float64)
    if lab.ndim < 1 or lab.shape[-1] != 3:
        raise ValueError(f"expected (..., 3) Lab, got shape {lab.shape}")
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0
    xyz = _lab_f_inverse(np.stack([fx, fy, fz], axis=-1)) * _WHITE_XYZ
    encoded = _encode_srgb(xyz @ _XYZ_TO_RGB.T)
    return np.rint(encoded * 255.0).astype(np.uint8)


def lab_to_lch(lab: NDArray[np.floating]) -> NDArray[np.float64]:
    """Convert Lab to cylindrical LCh.

    Args:
        lab: (..., 3) float Lab.
    Returns:
        (..., 3) float64: L* unchanged, chroma C* >= 0, hue angle h in degrees [0, 360).
    """
    lab = np.asarray(lab, dtype=np.float64)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1])) % 360.0
    return np.stack([lab[..., 0], chroma, hue], axis=-1)


def delta_e_2000(lab1: NDArray[np.floating], lab2: NDArray[np.floating]) -> NDArray[np.float64]:
    """Compute the CIEDE2000 color difference (kL = kC = kH = 1).

    Follows G. Sharma, W. Wu, E. N. Dalal, "The CIEDE2000 Color-Difference Formula:
    Implementation Notes, Supplementary Test Data, and Mathematical Observations",
    Color Research and Application 30(1), 2005.

    Args:
        lab1: (..., 3) float Lab.
        lab2: (..., 3) float Lab, broadcastable against lab1.
    Returns:
        (...) float64 difference, >= 0; about 1 is a just-noticeable difference.
    """
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]

    # Stretch a* for near-neutral colors, then work in L'C'h'.
    mean_chroma = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0
    g = 0.5 * (1.0 - np.sqrt(mean_chroma**7 / (mean_chroma**7 + 25.0**7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0

    # Differences; the hue difference takes the short way round and is 0 for neutrals.
    delta_l = l2 - l1
    delta_c = c2p - c1p
    hue_diff = h2p - h1p
    hue_diff = np.where(hue_diff > 180.0, hue_diff - 360.0, hue_diff)
    hue_diff = np.where(hue_diff < -180.0, hue_diff + 360.0, hue_diff)
    neutral = (c1p * c2p) == 0.0
    hue_diff = np.where(neutral, 0.0, hue_diff)
    delta_h = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(hue_diff) / 2.0)

    # Means, with the mean hue also taken the short way round.
    mean_l = (l1 + l2) / 2.0
    mean_cp = (c1p + c2p) / 2.0
    hue_sum = h1p + h2p
    far_apart = np.abs(h1p - h2p) > 180.0
    mean_h = np.where(far_apart, np.where(hue_sum < 360.0, hue_sum + 360.0, hue_sum - 360.0), hue_sum) / 2.0
    mean_h = np.where(neutral, hue_sum, mean_h)

    # Weighting functions and the blue-region rotation term.
    t = (
        1.0
        - 0.17 * np.cos(np.radians(mean_h - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * mean_h))
        + 0.32 * np.cos(np.radians(3.0 * mean_h + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * mean_h - 63.0))
    )
    s_l = 1.0 + 0.015 * (mean_l - 50.0) ** 2 / np.sqrt(20.0 + (mean_l - 50.0) ** 2)
    s_c = 1.0 + 0.045 * mean_cp
    s_h = 1.0 + 0.015 * mean_cp * t
    rotation_angle = 30.0 * np.exp(-(((mean_h - 275.0) / 25.0) ** 2))
    r_c = 2.0 * np.sqrt(mean_cp**7 / (mean_cp**7 + 25.0**7))
    r_t = -np.sin(np.radians(2.0 * rotation_angle)) * r_c

    term_l = delta_l / s_l
    term_c = delta_c / s_c
    term_h = delta_h / s_h
    return np.sqrt(term_l**2 + term_c**2 + term_h**2 + r_t * term_c * term_h)


# ---------------------------------------------------------------------------
# names and families


@lru_cache(maxsize=1)
def _load_palette() -> tuple[tuple[str, ...], NDArray[np.float64]]:
    """Read the named palette: names (P,) and their Lab values (P, 3) float64."""
    entries = json.loads(_PALETTE_PATH.read_text(encoding="utf-8"))["colors"]
    names = tuple(entry["name"] for entry in entries)
    rgb = np.array([[int(entry["hex"][i : i + 2], 16) for i in (1, 3, 5)] for entry in entries], dtype=np.uint8)
    return names, srgb_to_lab(rgb)


def nearest_color_name(lab: NDArray[np.floating]) -> str:
    """Name a color after the nearest palette entry by CIEDE2000.

    Args:
        lab: (3,) float Lab.
    Returns:
        A name from handler/data/color_names.json, such as "navy" or "camel".
    """
    names, palette_lab = _load_palette()
    return names[int(np.argmin(delta_e_2000(palette_lab, np.asarray(lab, dtype=np.float64))))]


# Family thresholds on L* (0-100), C* and hue angle h (degrees, 0 = +a* red, 90 = +b* yellow).
_BLACK_MAX_LIGHTNESS = 18.0
_BLACK_MAX_CHROMA = 15.0
_NEUTRAL_MAX_CHROMA = 10.0
_WHITE_MIN_LIGHTNESS = 90.0
_BEIGE_BROWN_HUES = (40.0, 100.0)
_BEIGE_MAX_HUE = 115.0
_BEIGE_MIN_LIGHTNESS = 70.0
_BEIGE_MAX_CHROMA = 35.0
_BROWN_MAX_CHROMA = 60.0
_OLIVE_HUES = (95.0, 115.0)
_OLIVE_MAX_LIGHTNESS = 60.0
_PINK_MIN_LIGHTNESS_RED_HUES = 65.0
_PINK_MIN_LIGHTNESS_MAGENTA_HUES = 40.0
# Upper hue bound of each chromatic family, in order round the circle.
_HUE_BANDS = (
    (42.0, "red"),
    (78.0, "orange"),
    (105.0, "yellow"),
    (180.0, "green"),
    (308.0, "blue"),
    (340.0, "purple"),
    (360.0, "pink"),
)


def color_family(lab: NDArray[np.floating]) -> str:
    """Group a color into one of FAMILIES from its lightness, chroma and hue.

    Black, grey and white go by lightness and chroma. Beige and brown are the
    low-to-moderate chroma orange-yellow hues, split by lightness. Dark yellows
    read as olive and go to green. The rest go by hue band.

    Args:
        lab: (3,) float Lab.
    Returns:
        The family name.
    Limitations:
        Lab hue bends in the blue-violet region, so pale blue-violets such as lavender
        (h about 290) count as blue, and bright magenta (h about 328) as purple.
    """
    lightness, chroma, hue = (float(v) for v in lab_to_lch(np.asarray(lab, dtype=np.float64)))
    if lightness < _BLACK_MAX_LIGHTNESS and chroma < _BLACK_MAX_CHROMA:
        return "black"
    if chroma < _NEUTRAL_MAX_CHROMA:
        return "white" if lightness >= _WHITE_MIN_LIGHTNESS else "grey"
    if (
        _BEIGE_BROWN_HUES[0] <= hue < _BEIGE_MAX_HUE
        and lightness >= _BEIGE_MIN_LIGHTNESS
        and chroma < _BEIGE_MAX_CHROMA
    ):
        return "beige"
    if (
        _BEIGE_BROWN_HUES[0] <= hue < _BEIGE_BROWN_HUES[1]
        and lightness < _BEIGE_MIN_LIGHTNESS
        and chroma < _BROWN_MAX_CHROMA
    ):
        return "brown"
    if _OLIVE_HUES[0] <= hue < _OLIVE_HUES[1] and lightness < _OLIVE_MAX_LIGHTNESS:
        return "green"
    family = next(name for upper, name in _HUE_BANDS if hue < upper)
    if family == "red" and lightness >= _PINK_MIN_LIGHTNESS_RED_HUES:
        return "pink"
    if family == "pink" and lightness < _PINK_MIN_LIGHTNESS_MAGENTA_HUES:
        return "red"
    return family
