"""Render the sample product photos in events/samples/ and their true product masks.

The project ships no dataset photos, so the demo, the README pictures and the tests use
these renders. Set 1 is a knit sweater: packshot on white, worn front and back views, a
fabric close-up and a front view stored rotated with an EXIF Orientation tag. Set 2 is a
pair of chinos: packshot and worn front view. Every file is rendered from
shapes, so its product mask is exact.

Run from the repository root:

    .venv/bin/python tests/data/make_samples.py [--out events/samples]

Output is the same on every run for a given numpy and Pillow version (fixed seed).
"""

# Several draw callbacks are lambdas that draw a few shapes as one tuple expression. `coverage`
# ignores that value, but mypy would flag each drawing call used as a value.
# mypy: disable-error-code="func-returns-value"

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter

SEED = 20240611
SUPERSAMPLE = 3
"""Shapes are drawn at this multiple of the output size and box-filtered down (anti-aliasing)."""

EXIF_ORIENTATION_TAG = 0x0112
JPEG_QUALITY = 84

FloatImage = NDArray[np.float32]
Point = tuple[float, float]
DrawFn = Callable[[ImageDraw.ImageDraw, float], object]


@dataclass(frozen=True)
class Garment:
    """Look of one garment: base color (RGB, 0-1), fabric texture and fold count."""

    color: tuple[float, float, float]
    fabric: str  # "knit", "denim", "twill" or "jersey"
    folds: int


@dataclass(frozen=True)
class Outfit:
    """What the figure wears; `product` names the garment whose mask is written."""

    top: Garment
    bottom: Garment
    product: str  # "top" or "bottom"
    long_sleeves: bool


SKIN = (0.86, 0.66, 0.54)
HAIR = (0.23, 0.15, 0.10)
SHOE = (0.20, 0.14, 0.11)

CORAL_KNIT = Garment(color=(0.84, 0.30, 0.27), fabric="knit", folds=7)
BLUE_DENIM = Garment(color=(0.22, 0.32, 0.50), fabric="denim", folds=9)
OCHRE_CHINOS = Garment(color=(0.72, 0.56, 0.26), fabric="twill", folds=9)
NAVY_TEE = Garment(color=(0.16, 0.20, 0.33), fabric="jersey", folds=5)

SET1 = Outfit(top=CORAL_KNIT, bottom=BLUE_DENIM, product="top", long_sleeves=True)
SET2 = Outfit(top=NAVY_TEE, bottom=OCHRE_CHINOS, product="bottom", long_sleeves=False)


# ---------------------------------------------------------------------------------------
# Drawing primitives


def coverage(width: int, height: int, draw: DrawFn) -> FloatImage:
    """Rasterize shapes with anti-aliased edges.

    Args:
        width, height: output size in pixels.
        draw: called with an ImageDraw on a canvas SUPERSAMPLE times larger and that scale;
            it fills shapes with 255.
    Returns:
        (height, width) float32 coverage in [0, 1].
    """
    big = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE), 0)
    draw(ImageDraw.Draw(big), float(SUPERSAMPLE))
    small = big.resize((width, height), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def blur(values: FloatImage, radius: float) -> FloatImage:
    """Blur a (H, W) float map, close to a Gaussian of sigma `radius` pixels (three box passes)."""
    if radius <= 0.3:
        return values
    # Three box filters of width w approximate a Gaussian with sigma^2 = 3 * (w^2 - 1) / 12.
    half = max(1, round((np.sqrt(4.0 * radius * radius + 1.0) - 1.0) / 2.0))
    out = values.astype(np.float32)
    for axis in (0, 1):
        for _ in range(3):
            out = _box_filter(out, half, axis)
    return out


def _box_filter(values: FloatImage, half: int, axis: int) -> FloatImage:
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half + 1, half)
    padded = np.pad(values, pad, mode="edge")
    sums = np.cumsum(padded, axis=axis, dtype=np.float64)
    upper = np.take(sums, np.arange(2 * half + 1, sums.shape[axis]), axis=axis)
    lower = np.take(sums, np.arange(0, sums.shape[axis] - 2 * half - 1), axis=axis)
    return ((upper - lower) / (2 * half + 1)).astype(np.float32)


def capsule(draw: ImageDraw.ImageDraw, scale: float, p1: Point, r1: float, p2: Point, r2: float) -> None:
    """Fill a tapered limb: the hull of a circle of radius r1 at p1 and r2 at p2."""
    x1, y1, x2, y2 = p1[0] * scale, p1[1] * scale, p2[0] * scale, p2[1] * scale
    a, b = r1 * scale, r2 * scale
    length = max(np.hypot(x2 - x1, y2 - y1), 1e-6)
    nx, ny = -(y2 - y1) / length, (x2 - x1) / length
    draw.polygon([(x1 + nx * a, y1 + ny * a), (x2 + nx * b, y2 + ny * b),
                  (x2 - nx * b, y2 - ny * b), (x1 - nx * a, y1 - ny * a)], fill=255)
    draw.ellipse([x1 - a, y1 - a, x1 + a, y1 + a], fill=255)
    draw.ellipse([x2 - b, y2 - b, x2 + b, y2 + b], fill=255)


def smooth_outline(points: Sequence[Point], steps: int = 10) -> list[Point]:
    """Return a closed Catmull-Rom curve through `points`, `steps` samples per segment."""
    pts = np.asarray(points, dtype=np.float64)
    count = len(pts)
    curve: list[Point] = []
    for i in range(count):
        p0, p1, p2, p3 = pts[i - 1], pts[i], pts[(i + 1) % count], pts[(i + 2) % count]
        for t in np.linspace(0.0, 1.0, steps, endpoint=False):
            t2, t3 = t * t, t * t * t
            point = 0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                           + (-p0 + 3 * p1 - 3 * p2 + p3) * t3)
            curve.append((float(point[0]), float(point[1])))
    return curve


def polygon(draw: ImageDraw.ImageDraw, scale: float, points: Sequence[Point], *, smooth: bool = True) -> None:
    """Fill a closed outline given in output pixels, smoothed unless `smooth` is False."""
    outline = smooth_outline(points) if smooth else list(points)
    draw.polygon([(x * scale, y * scale) for x, y in outline], fill=255)


# ---------------------------------------------------------------------------------------
# Fabric, light and folds


def fabric_texture(fabric: str, height: int, width: int, unit: float, rng: np.random.Generator) -> FloatImage:
    """Brightness pattern of a fabric, about 1.0 on average.

    Args:
        fabric: "knit", "denim", "twill" or "jersey".
        height, width: size in pixels.
        unit: pixels per stitch or thread period; larger for close-ups.
        rng: source of the grain noise.
    Returns:
        (height, width) float32 multiplier, roughly 0.75-1.2.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    grain = rng.normal(0.0, 1.0, (height, width)).astype(np.float32)
    if fabric == "knit":
        # Columns of V-shaped stitches: each column alternates its slant every half row.
        column = x / unit
        row = y / (unit * 0.8)
        slant = np.where(np.floor(column * 2) % 2 == 0, 1.0, -1.0)
        stitch = np.abs(np.sin(np.pi * (row + slant * (column % 0.5) * 1.2)))
        rib = 0.5 + 0.5 * np.cos(2 * np.pi * column)
        pattern = 0.80 + 0.16 * stitch + 0.08 * rib
        return (pattern + 0.05 * blur(grain * 0.5 + 0.5, 0.6) - 0.025).astype(np.float32)
    if fabric in ("denim", "twill"):
        period = unit * (0.55 if fabric == "denim" else 0.4)
        diagonal = 0.5 + 0.5 * np.sin(2 * np.pi * (x + y) / period)
        streaks = np.repeat(rng.normal(0.0, 1.0, (1, width)), height, axis=0).astype(np.float32)
        streaks = blur(streaks * 0.1 + 0.5, 1.2) - 0.5
        contrast = 0.16 if fabric == "denim" else 0.07
        speckle = (rng.random((height, width)) > (0.93 if fabric == "denim" else 0.98)).astype(np.float32)
        pattern = 0.92 + contrast * diagonal + 0.9 * streaks + 0.12 * speckle
        return (pattern + 0.04 * grain).astype(np.float32)
    if fabric == "jersey":
        loops = 0.5 + 0.5 * np.sin(2 * np.pi * x / (unit * 0.3))
        return (0.96 + 0.05 * loops + 0.03 * grain).astype(np.float32)
    raise ValueError(f"Unknown fabric {fabric!r}; expected knit, denim, twill or jersey.")


def body_light(alpha: FloatImage, radius: float) -> FloatImage:
    """Shade a flat shape as if rounded, lit from the upper left.

    Args:
        alpha: (H, W) float32 coverage in [0, 1].
        radius: how far in pixels the rounding reaches from the edge.
    Returns:
        (H, W) float32 multiplier, about 0.55-1.15.
    """
    soft = blur(alpha, radius)
    grad_y, grad_x = np.gradient(soft)
    facing = (grad_x * 0.8 + grad_y * 0.45) * radius
    return np.clip(0.72 + 0.28 * np.clip(soft * 1.8, 0, 1) + 0.9 * facing, 0.5, 1.2).astype(np.float32)


def fold_light(height: int, width: int, box: tuple[float, float, float, float], count: int,
               width_px: float, rng: np.random.Generator, *, vertical: bool) -> FloatImage:
    """Shade of cloth folds: soft dark creases, each with a highlight on its lit side.

    Args:
        height, width: size in pixels.
        box: (x0, y0, x1, y1) region in pixels where folds start.
        count: number of folds.
        width_px: crease width in pixels.
        rng: picks the fold curves.
        vertical: folds run mostly top to bottom (legs) rather than across (torso).
    Returns:
        (height, width) float32 multiplier, about 0.7-1.1.
    """
    x0, y0, x1, y1 = box

    def draw_folds(draw: ImageDraw.ImageDraw, scale: float) -> None:
        for _ in range(count):
            start = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            if vertical:
                direction = np.array([rng.normal(0, 0.25), 1.0])
            else:
                direction = np.array([1.0 if rng.random() < 0.5 else -1.0, rng.normal(0.3, 0.4)])
            direction /= np.linalg.norm(direction)
            length = rng.uniform(0.15, 0.35) * max(x1 - x0, y1 - y0)
            bend = np.array([-direction[1], direction[0]]) * rng.normal(0, 0.15) * length
            points = [start + direction * length * t + bend * np.sin(np.pi * t) for t in np.linspace(0, 1, 12)]
            draw.line([(float(p[0]) * scale, float(p[1]) * scale) for p in points],
                      fill=255, width=max(1, int(width_px * scale)), joint="curve")

    crease = blur(coverage(width, height, draw_folds), width_px * 1.2)
    highlight = np.roll(crease, (-int(width_px * 0.8), -int(width_px * 0.8)), axis=(0, 1))
    return (1.0 - 0.32 * crease + 0.14 * highlight).astype(np.float32)


def finish_photo(rgb: FloatImage, rng: np.random.Generator, *, noise: float = 0.012) -> NDArray[np.uint8]:
    """Add lens softness, vignetting and sensor noise; return (H, W, 3) uint8 RGB."""
    height, width = rgb.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((x - width / 2) / width) ** 2 + ((y - height / 2) / height) ** 2
    vignette = 1.0 - 0.18 * r2
    out = rgb * vignette[..., None] + rng.normal(0.0, noise, rgb.shape).astype(np.float32)
    image = Image.fromarray(np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(0.5)))


# ---------------------------------------------------------------------------------------
# Layered scene with product coverage


class Scene:
    """Float RGB canvas that also tracks how much of each pixel shows the product."""

    def __init__(self, background: FloatImage) -> None:
        self.rgb = background.astype(np.float32).copy()
        self.height, self.width = background.shape[:2]
        self.product = np.zeros((self.height, self.width), dtype=np.float32)

    def paint(self, alpha: FloatImage, color: FloatImage, *, is_product: bool) -> None:
        """Composite color (H, W, 3) or (3,) over the canvas with coverage alpha (H, W)."""
        a = alpha[..., None]
        self.rgb = self.rgb * (1.0 - a) + np.asarray(color, dtype=np.float32) * a
        covered = alpha if is_product else np.zeros_like(alpha)
        self.product = (self.product * (1.0 - alpha) + covered).astype(np.float32)

    def shadow(self, alpha: FloatImage, strength: float) -> None:
        """Darken the canvas under alpha (H, W) by up to `strength` (0-1)."""
        self.rgb = self.rgb * (1.0 - strength * alpha[..., None])

    def mask(self) -> NDArray[np.uint8]:
        """Product mask, (H, W) uint8, 255 where the product covers at least half the pixel."""
        return np.where(self.product >= 0.5, 255, 0).astype(np.uint8)


def studio_background(height: int, width: int, floor_y: float) -> FloatImage:
    """Light grey studio sweep: brighter at the top, a soft floor line at `floor_y` (pixels)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    wall = 0.93 - 0.08 * (y / height) - 0.04 * np.abs(x / width - 0.5)
    floor_blend = np.clip((y - floor_y) / (0.08 * height) + 0.5, 0, 1)
    floor = 0.86 - 0.05 * ((y - floor_y) / height)
    value = wall * (1 - floor_blend) + floor * floor_blend
    tint = np.array([1.0, 0.985, 0.965], dtype=np.float32)
    return (value[..., None] * tint).astype(np.float32)


def garment_color(garment: Garment, alpha: FloatImage, unit: float, rng: np.random.Generator,
                  fold_box: tuple[float, float, float, float], *, vertical_folds: bool,
                  light_radius: float) -> FloatImage:
    """Color (H, W, 3) float32 of a garment: base color times texture, body light and folds."""
    height, width = alpha.shape
    texture = fabric_texture(garment.fabric, height, width, unit, rng)
    folds = fold_light(height, width, fold_box, garment.folds, unit * 0.9, rng, vertical=vertical_folds)
    light = body_light(alpha, light_radius) * folds * texture
    return (np.asarray(garment.color, dtype=np.float32) * light[..., None]).astype(np.float32)


def skin_color(alpha: FloatImage, radius: float, tone: tuple[float, float, float] = SKIN) -> FloatImage:
    """Color (H, W, 3) float32 of skin or hair, shaded as a rounded shape."""
    return (np.asarray(tone, dtype=np.float32) * body_light(alpha, radius)[..., None]).astype(np.float32)


# ---------------------------------------------------------------------------------------
# The figure


@dataclass(frozen=True)
class Pose:
    """Body landmarks in pixels for one view; `back` draws hair over the face."""

    head: Point
    head_r: float
    shoulder_l: Point
    shoulder_r: Point
    elbow_l: Point
    elbow_r: Point
    wrist_l: Point
    wrist_r: Point
    hip_l: Point
    hip_r: Point
    knee_l: Point
    knee_r: Point
    ankle_l: Point
    ankle_r: Point
    back: bool


def make_pose(center_x: float, top_y: float, height: float, *, back: bool, turn: float) -> Pose:
    """Landmarks of a standing figure `height` pixels tall; `turn` (0-1) narrows the torso."""
    u = height / 8.0  # one head height
    narrow = 1.0 - 0.25 * turn
    sw = 0.95 * u * narrow  # half the shoulder width
    hw = 0.75 * u * narrow
    cx = center_x

    def at(dx: float, dy: float) -> Point:
        return (cx + dx, top_y + dy)

    return Pose(
        head=at(0.05 * u * turn, 0.5 * u), head_r=0.42 * u,
        shoulder_l=at(-sw, 1.45 * u), shoulder_r=at(sw, 1.45 * u),
        elbow_l=at(-sw - 0.38 * u, 2.8 * u), elbow_r=at(sw + 0.36 * u, 2.75 * u),
        wrist_l=at(-sw - 0.55 * u, 3.95 * u), wrist_r=at(sw + 0.7 * u, 3.85 * u),
        hip_l=at(-hw * 0.55, 4.1 * u), hip_r=at(hw * 0.55, 4.1 * u),
        knee_l=at(-hw * 0.5, 5.9 * u), knee_r=at(hw * 0.55, 5.9 * u),
        ankle_l=at(-hw * 0.55, 7.55 * u), ankle_r=at(hw * 0.75, 7.55 * u),
        back=back,
    )


def draw_figure(scene: Scene, pose: Pose, outfit: Outfit, unit: float, rng: np.random.Generator) -> None:
    """Paint a dressed figure on the scene, back to front, marking the product garment."""
    h, w = scene.height, scene.width
    u = pose.head_r / 0.42
    limb = 0.2 * u

    # Floor shadow under the feet.
    feet_y = pose.ankle_l[1] + 0.2 * u
    shadow = coverage(w, h, lambda d, s: d.ellipse(
        [(pose.ankle_l[0] - 1.2 * u) * s, (feet_y - 0.2 * u) * s,
         (pose.ankle_r[0] + 1.2 * u) * s, (feet_y + 0.25 * u) * s], fill=255))
    scene.shadow(blur(shadow, 0.25 * u), 0.35)

    # Hair behind the head (front view) and the neck.
    if not pose.back:
        hair_back = coverage(w, h, lambda d, s: d.ellipse(
            [(pose.head[0] - 1.12 * pose.head_r) * s, (pose.head[1] - 1.12 * pose.head_r) * s,
             (pose.head[0] + 1.12 * pose.head_r) * s, (pose.head[1] + 1.45 * pose.head_r) * s], fill=255))
        scene.paint(hair_back, skin_color(hair_back, 0.2 * u, HAIR), is_product=False)
    neck = coverage(w, h, lambda d, s: capsule(d, s, pose.head, 0.2 * u, (pose.head[0], pose.shoulder_l[1]), 0.19 * u))
    scene.paint(neck, skin_color(neck, 0.1 * u) * 0.9, is_product=False)

    # Legs and hips, covered by the full-length bottom garment down to the ankles.
    legs = coverage(w, h, lambda d, s: (
        capsule(d, s, pose.hip_l, 0.42 * u, pose.knee_l, 0.3 * u),
        capsule(d, s, pose.knee_l, 0.3 * u, pose.ankle_l, 0.24 * u),
        capsule(d, s, pose.hip_r, 0.42 * u, pose.knee_r, 0.3 * u),
        capsule(d, s, pose.knee_r, 0.3 * u, pose.ankle_r, 0.24 * u),
        polygon(d, s, [(pose.hip_l[0] - 0.4 * u, pose.hip_l[1] - 0.35 * u),
                       (pose.hip_r[0] + 0.4 * u, pose.hip_r[1] - 0.35 * u),
                       (pose.hip_r[0] + 0.35 * u, pose.hip_r[1] + 0.6 * u),
                       (pose.hip_l[0] - 0.35 * u, pose.hip_l[1] + 0.6 * u)], smooth=False),
    ))
    bottom_box = (pose.hip_l[0] - 0.5 * u, pose.hip_l[1], pose.hip_r[0] + 0.5 * u, pose.knee_l[1] + u)
    bottom = garment_color(outfit.bottom, legs, unit, rng, bottom_box, vertical_folds=True, light_radius=0.35 * u)
    seams = coverage(w, h, lambda d, s: (
        d.line([(pose.hip_l[0] - 0.4 * u) * s, (pose.hip_l[1] + 0.1 * u) * s,
                (pose.ankle_l[0] - 0.22 * u) * s, (pose.ankle_l[1] - 0.05 * u) * s], fill=255, width=int(s)),
        d.line([(pose.hip_r[0] + 0.4 * u) * s, (pose.hip_r[1] + 0.1 * u) * s,
                (pose.ankle_r[0] + 0.22 * u) * s, (pose.ankle_r[1] - 0.05 * u) * s], fill=255, width=int(s)),
        d.line([pose.head[0] * s, (pose.hip_l[1] - 0.2 * u) * s,
                pose.head[0] * s, (pose.hip_l[1] + 0.75 * u) * s], fill=255, width=int(s)),
    ))
    stitch = 0.25 * seams[..., None]
    bottom = bottom * (1.0 - stitch) + np.array([0.75, 0.55, 0.3], np.float32) * stitch
    scene.paint(legs, bottom, is_product=outfit.product == "bottom")

    # Shoes.
    shoes = coverage(w, h, lambda d, s: (
        d.ellipse([(pose.ankle_l[0] - 0.42 * u) * s, (pose.ankle_l[1] - 0.1 * u) * s,
                   (pose.ankle_l[0] + 0.28 * u) * s, (pose.ankle_l[1] + 0.38 * u) * s], fill=255),
        d.ellipse([(pose.ankle_r[0] - 0.28 * u) * s, (pose.ankle_r[1] - 0.1 * u) * s,
                   (pose.ankle_r[0] + 0.42 * u) * s, (pose.ankle_r[1] + 0.38 * u) * s], fill=255),
    ))
    scene.paint(shoes, skin_color(shoes, 0.12 * u, SHOE), is_product=False)

    # Hands, drawn before the top so that the sleeve cuffs overlap the wrists.
    hands = coverage(w, h, lambda d, s: (
        capsule(d, s, pose.wrist_l, 0.13 * u, (pose.wrist_l[0] - 0.03 * u, pose.wrist_l[1] + 0.45 * u), 0.1 * u),
        capsule(d, s, pose.wrist_r, 0.13 * u, (pose.wrist_r[0] + 0.06 * u, pose.wrist_r[1] + 0.45 * u), 0.1 * u),
    ))
    scene.paint(hands, skin_color(hands, 0.08 * u), is_product=False)

    # Top: torso and sleeves; short sleeves leave the forearms bare.
    if not outfit.long_sleeves:
        arms = coverage(w, h, lambda d, s: (
            capsule(d, s, pose.shoulder_l, limb * 1.2, pose.elbow_l, limb),
            capsule(d, s, pose.elbow_l, limb, pose.wrist_l, limb * 0.75),
            capsule(d, s, pose.shoulder_r, limb * 1.2, pose.elbow_r, limb),
            capsule(d, s, pose.elbow_r, limb, pose.wrist_r, limb * 0.75),
        ))
        scene.paint(arms, skin_color(arms, 0.12 * u), is_product=False)

    def sleeve_end(shoulder: Point, elbow: Point, wrist: Point) -> Point:
        if outfit.long_sleeves:
            return wrist
        return (shoulder[0] * 0.45 + elbow[0] * 0.55, shoulder[1] * 0.45 + elbow[1] * 0.55)

    sl_l = sleeve_end(pose.shoulder_l, pose.elbow_l, pose.wrist_l)
    sl_r = sleeve_end(pose.shoulder_r, pose.elbow_r, pose.wrist_r)
    sleeve_r = 0.3 * u

    def draw_top(d: ImageDraw.ImageDraw, s: float) -> None:
        (lx, ly), (rx, ry) = pose.shoulder_l, pose.shoulder_r
        hem = pose.hip_l[1] + (0.35 if outfit.product == "top" else 0.05) * u
        polygon(d, s, [(lx - 0.05 * u, ly - 0.15 * u), (pose.head[0], ly - 0.3 * u), (rx + 0.05 * u, ry - 0.15 * u),
                       (rx - 0.05 * u, ly + 1.3 * u), (pose.hip_r[0] + 0.38 * u, hem), (pose.head[0], hem + 0.08 * u),
                       (pose.hip_l[0] - 0.38 * u, hem), (lx + 0.05 * u, ly + 1.3 * u)])
        if outfit.long_sleeves:
            capsule(d, s, (lx + 0.1 * u, ly + 0.1 * u), sleeve_r * 1.15, pose.elbow_l, sleeve_r)
            capsule(d, s, pose.elbow_l, sleeve_r, sl_l, sleeve_r * 0.85)
            capsule(d, s, (rx - 0.1 * u, ry + 0.1 * u), sleeve_r * 1.15, pose.elbow_r, sleeve_r)
            capsule(d, s, pose.elbow_r, sleeve_r, sl_r, sleeve_r * 0.85)
        else:
            capsule(d, s, (lx + 0.1 * u, ly + 0.1 * u), sleeve_r * 1.2, sl_l, sleeve_r * 1.05)
            capsule(d, s, (rx - 0.1 * u, ry + 0.1 * u), sleeve_r * 1.2, sl_r, sleeve_r * 1.05)

    top = coverage(w, h, draw_top)
    top_box = (pose.shoulder_l[0], pose.shoulder_l[1], pose.shoulder_r[0], pose.hip_l[1])
    top_rgb = garment_color(outfit.top, top, unit, rng, top_box, vertical_folds=False, light_radius=0.45 * u)
    ribs = coverage(w, h, lambda d, s: (
        d.line([(pose.hip_l[0] - 0.5 * u) * s, (pose.hip_l[1] + 0.2 * u) * s,
                (pose.hip_r[0] + 0.5 * u) * s, (pose.hip_r[1] + 0.2 * u) * s], fill=255, width=int(0.3 * u * s)),
    )) if outfit.long_sleeves else np.zeros((h, w), np.float32)
    top_rgb = top_rgb * (1.0 - 0.12 * ribs[..., None])
    scene.paint(top, top_rgb, is_product=outfit.product == "top")

    # Neckline band (part of the top), then the head and its hair.
    collar = coverage(w, h, lambda d, s: d.chord(
        [(pose.head[0] - 0.32 * u) * s, (pose.shoulder_l[1] - 0.55 * u) * s,
         (pose.head[0] + 0.32 * u) * s, (pose.shoulder_l[1] + 0.05 * u) * s], 0, 180, fill=255))
    if pose.back:
        collar = collar * 0.0
    neck_band = coverage(w, h, lambda d, s: d.arc(
        [(pose.head[0] - 0.36 * u) * s, (pose.shoulder_l[1] - 0.6 * u) * s,
         (pose.head[0] + 0.36 * u) * s, (pose.shoulder_l[1] + 0.1 * u) * s], 0, 180, fill=255, width=int(0.09 * u * s)))
    scene.paint(collar, skin_color(collar, 0.1 * u) * 0.85, is_product=False)
    band = np.asarray(outfit.top.color, np.float32) * 0.85
    scene.paint(neck_band * (top > 0.5), band, is_product=outfit.product == "top")

    head = coverage(w, h, lambda d, s: d.ellipse(
        [(pose.head[0] - pose.head_r * 0.86) * s, (pose.head[1] - pose.head_r) * s,
         (pose.head[0] + pose.head_r * 0.86) * s, (pose.head[1] + pose.head_r * 1.05) * s], fill=255))
    scene.paint(head, skin_color(head, 0.25 * u), is_product=False)
    hair = coverage(w, h, lambda d, s: d.chord(
        [(pose.head[0] - pose.head_r * 0.95) * s, (pose.head[1] - pose.head_r * 1.12) * s,
         (pose.head[0] + pose.head_r * 0.95) * s, (pose.head[1] + pose.head_r * (1.1 if pose.back else 0.35)) * s],
        180 if not pose.back else 0, 360, fill=255))
    if pose.back:
        hair = np.maximum(hair, head)
    scene.paint(hair, skin_color(hair, 0.2 * u, HAIR) * fabric_texture("jersey", h, w, 4.0, rng)[..., None],
                is_product=False)


# ---------------------------------------------------------------------------------------
# Views


def render_worn(outfit: Outfit, size: tuple[int, int], figure: tuple[float, float, float], *,
                back: bool, turn: float, seed: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Render the outfit worn by a figure in a studio.

    Args:
        outfit: what the figure wears.
        size: (width, height) of the photo in pixels.
        figure: (center x, top y, height) of the figure in pixels.
        back: show the back of the figure.
        turn: 0 for a square-on view, up to 1 for a strong three-quarter turn.
        seed: seeds texture and folds.
    Returns:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) uint8, 255 on the product.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    cx, top, fig_h = figure
    pose = make_pose(cx, top, fig_h, back=back, turn=turn)
    scene = Scene(studio_background(height, width, floor_y=pose.ankle_l[1] + 0.03 * fig_h))
    draw_figure(scene, pose, outfit, unit=fig_h / 160.0, rng=rng)
    return finish_photo(scene.rgb, rng), scene.mask()


def sweater_outline(cx: float, top: float, s: float) -> tuple[list[Point], list[tuple[Point, Point]]]:
    """Flat-laid sweater: body outline and sleeve axes, scaled by s pixels per unit."""
    body = [(cx - 1.1 * s, top + 0.05 * s), (cx - 0.35 * s, top - 0.05 * s), (cx, top + 0.22 * s),
            (cx + 0.35 * s, top - 0.05 * s), (cx + 1.1 * s, top + 0.05 * s), (cx + 1.05 * s, top + 1.2 * s),
            (cx + 1.0 * s, top + 2.45 * s), (cx, top + 2.5 * s), (cx - 1.0 * s, top + 2.45 * s),
            (cx - 1.05 * s, top + 1.2 * s)]
    sleeves = [((cx - 1.0 * s, top + 0.35 * s), (cx - 1.65 * s, top + 2.4 * s)),
               ((cx + 1.0 * s, top + 0.35 * s), (cx + 1.7 * s, top + 2.35 * s))]
    return body, sleeves


def render_packshot_sweater(size: int, scale: float, offset: Point, seed: int,
                            unit: float) -> tuple[FloatImage, FloatImage]:
    """Sweater flat on white, with a soft drop shadow; returns (H, W, 3) float RGB and coverage."""
    rng = np.random.default_rng(seed)
    cx, top = offset
    body, sleeves = sweater_outline(cx, top, scale)

    def draw_body(d: ImageDraw.ImageDraw, s: float) -> None:
        polygon(d, s, body)
        for start, end in sleeves:
            capsule(d, s, start, 0.36 * scale, end, 0.22 * scale)

    alpha = coverage(size, size, draw_body)
    scene = Scene(np.full((size, size, 3), 0.985, np.float32))
    shadow = np.roll(blur(alpha, 0.08 * scale), (int(0.04 * scale), int(0.03 * scale)), axis=(0, 1))
    scene.shadow(shadow, 0.22)
    rgb = garment_color(CORAL_KNIT, alpha, unit, rng, (cx - scale, top, cx + scale, top + 2.4 * scale),
                        vertical_folds=False, light_radius=0.12 * scale)

    # Rib bands at the hem and cuffs, a crew neck, and shoulder seams.
    bands = coverage(size, size, lambda d, s: (
        d.rectangle([(cx - 1.0 * scale) * s, (top + 2.28 * scale) * s, (cx + 1.0 * scale) * s,
                     (top + 2.6 * scale) * s], fill=255),
        *[d.line([(end[0] - 0.35 * scale) * s, (end[1] - 0.12 * scale) * s, (end[0] + 0.35 * scale) * s,
                  (end[1] - 0.12 * scale) * s], fill=255, width=int(0.16 * scale * s)) for _, end in sleeves],
    )) * alpha
    ribs = 0.9 + 0.1 * np.cos(2 * np.pi * np.arange(size, dtype=np.float32) / max(unit * 0.7, 1.5))[None, :]
    rgb = rgb * (1.0 - bands[..., None]) + rgb * (ribs * 0.92)[..., None] * bands[..., None]
    collar = coverage(size, size, lambda d, s: d.arc(
        [(cx - 0.38 * scale) * s, (top - 0.22 * scale) * s, (cx + 0.38 * scale) * s, (top + 0.3 * scale) * s],
        0, 180, fill=255, width=int(0.09 * scale * s)))
    seams = coverage(size, size, lambda d, s: [
        d.line([(start[0] + dx * scale) * s, (start[1] - 0.3 * scale) * s, (start[0] + dx * 1.2 * scale) * s,
                (start[1] + 0.55 * scale) * s], fill=255, width=max(1, int(0.012 * scale * s)))
        for (start, _), dx in zip(sleeves, (0.3, -0.3), strict=True)])
    rgb = rgb * (1.0 - 0.18 * collar[..., None]) * (1.0 - 0.25 * seams[..., None])
    scene.paint(alpha, rgb, is_product=True)
    return scene.rgb, scene.product


def render_packshot_chinos(size: int, seed: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Chinos flat on white; returns (H, W, 3) uint8 RGB and (H, W) uint8 mask."""
    rng = np.random.default_rng(seed)
    s_ = size / 6.0
    cx, top = size / 2.0, size * 0.1

    def draw_trousers(d: ImageDraw.ImageDraw, s: float) -> None:
        outline = [(-1.05, 0.0), (1.05, 0.0), (1.25, 1.6), (1.1, 4.75), (0.2, 4.8), (0.05, 1.9),
                   (-0.05, 1.9), (-0.2, 4.8), (-1.1, 4.75), (-1.25, 1.6)]
        polygon(d, s, [(cx + dx * s_, top + dy * s_) for dx, dy in outline], smooth=False)

    alpha = coverage(size, size, draw_trousers)
    alpha = blur(alpha, 0.6)
    scene = Scene(np.full((size, size, 3), 0.985, np.float32))
    shadow = np.roll(blur(alpha, 0.12 * s_), (int(0.06 * s_), int(0.05 * s_)), axis=(0, 1))
    scene.shadow(shadow, 0.2)
    rgb = garment_color(OCHRE_CHINOS, alpha, s_ / 6.0, rng, (cx - s_, top + s_, cx + s_, top + 4 * s_),
                        vertical_folds=True, light_radius=0.1 * s_)
    details = coverage(size, size, lambda d, s: (
        d.line([(cx - 1.05 * s_) * s, (top + 0.3 * s_) * s, (cx + 1.05 * s_) * s, (top + 0.3 * s_) * s],
               fill=255, width=max(1, int(0.02 * s_ * s))),
        d.line([cx * s, top * s, cx * s, (top + 1.2 * s_) * s], fill=255, width=max(1, int(0.02 * s_ * s))),
        d.arc([(cx - 1.0 * s_) * s, (top - 0.3 * s_) * s, (cx - 0.3 * s_) * s, (top + 0.9 * s_) * s],
              90, 180, fill=255, width=max(1, int(0.02 * s_ * s))),
        d.arc([(cx + 0.3 * s_) * s, (top - 0.3 * s_) * s, (cx + 1.0 * s_) * s, (top + 0.9 * s_) * s],
              0, 90, fill=255, width=max(1, int(0.02 * s_ * s))),
    ))
    rgb = rgb * (1.0 - 0.3 * details[..., None])
    scene.paint(alpha, rgb, is_product=True)
    return finish_photo(scene.rgb, rng, noise=0.006), scene.mask()


# ---------------------------------------------------------------------------------------
# Files


def save_jpeg(path: Path, image: NDArray[np.uint8], *, orientation: int | None = None) -> None:
    """Write an RGB JPEG, optionally with an EXIF Orientation tag."""
    exif = Image.Exif()
    if orientation is not None:
        exif[EXIF_ORIENTATION_TAG] = orientation
    Image.fromarray(image).save(path, format="JPEG", quality=JPEG_QUALITY, optimize=True,
                                progressive=True, exif=exif.tobytes())


def save_png(path: Path, image: NDArray[np.uint8]) -> None:
    """Write a PNG (RGB or L) at the highest zlib compression."""
    Image.fromarray(image).save(path, format="PNG", optimize=True)


def write_set1(out: Path) -> None:
    """Coral knit sweater: packshot, front, back, detail and a rotated-EXIF front."""
    out.mkdir(parents=True, exist_ok=True)

    # Packshot, and a 3x render of it cropped around a cuff for the fabric close-up.
    rgb, cover = render_packshot_sweater(440, 110.0, (220.0, 60.0), SEED, unit=3.5)
    rng = np.random.default_rng(SEED + 1)
    save_png(out / "packshot.png", finish_photo(rgb, rng, noise=0.0))
    save_png(out / "packshot_mask.png", np.where(cover >= 0.5, 255, 0).astype(np.uint8))

    big_rgb, big_cover = render_packshot_sweater(1400, 350.0, (700.0, 190.0), SEED + 2, unit=10.0)
    y0, x0 = 640, 900
    crop = (slice(y0, y0 + 480), slice(x0, x0 + 480))
    save_jpeg(out / "detail.jpg", finish_photo(big_rgb[crop], rng))
    save_png(out / "detail_mask.png", np.where(big_cover[crop] >= 0.5, 255, 0).astype(np.uint8))

    front, front_mask = render_worn(SET1, (480, 720), (240.0, 40.0, 640.0), back=False, turn=0.0, seed=SEED + 3)
    save_jpeg(out / "front.jpg", front)
    save_png(out / "front_mask.png", front_mask)

    # Orientation 6: a viewer rotates the stored pixels 90 degrees clockwise to show them.
    save_jpeg(out / "front-rotated.jpg", np.ascontiguousarray(np.rot90(front, k=1)), orientation=6)
    save_png(out / "front-rotated_mask.png", front_mask)

    back, back_mask = render_worn(SET1, (560, 640), (270.0, 30.0, 900.0), back=True, turn=0.5, seed=SEED + 4)
    save_jpeg(out / "back.jpg", back)
    save_png(out / "back_mask.png", back_mask)


def write_set2(out: Path) -> None:
    """Ochre chinos worn with a navy T-shirt: packshot and front view."""
    out.mkdir(parents=True, exist_ok=True)
    packshot, packshot_mask = render_packshot_chinos(420, SEED + 10)
    save_jpeg(out / "packshot.jpg", packshot)
    save_png(out / "packshot_mask.png", packshot_mask)
    front, front_mask = render_worn(SET2, (440, 660), (215.0, 30.0, 600.0), back=False, turn=0.2, seed=SEED + 11)
    save_jpeg(out / "front.jpg", front)
    save_png(out / "front_mask.png", front_mask)


def main(argv: Sequence[str] | None = None) -> None:
    """Write both sample sets under --out (default events/samples)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("events/samples"), help="folder to write")
    args = parser.parse_args(argv)
    write_set1(args.out)
    write_set2(args.out / "set2")
    total = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file())
    print(f"wrote samples to {args.out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
