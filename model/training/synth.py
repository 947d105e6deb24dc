"""Synthesis of product sets from the Clothing Co-Parsing (CCP) label maps.

One CCP photo with its per-pixel garment labels becomes one product set: a
target garment is picked, and up to four views of it are rendered (studio
composite, detail crop, packshot, street photo), each with its truth mask.
Only numpy and Pillow are used, so evaluation runs without PyTorch.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from handler.letterbox import letterbox, letterbox_mask

VIEW_TYPES = ("studio", "detail", "packshot", "street")
MAX_VIEWS = 4
BACKGROUND_LABEL = 0
NOT_PRODUCT_LABELS = {"null", "skin", "hair", "bra", "intimate", "panties"}
WORK_LONG_SIDE = 400
"""Long side, in pixels, that photos are stored at for synthesis."""
MIN_TARGET_FRACTION = 0.006
"""Smallest share of the photo that a garment must cover to be a target."""

CATEGORIES_PATH = Path(__file__).resolve().parents[2] / "handler" / "data" / "categories.json"


@dataclass(frozen=True)
class Photo:
    """One CCP photo at working resolution.

    Attributes:
        photo_id: file stem, for example "0001".
        rgb: (H, W, 3) uint8 RGB.
        labels: (H, W) uint8 CCP label ids.
    """

    photo_id: str
    rgb: NDArray[np.uint8]
    labels: NDArray[np.uint8]


@dataclass(frozen=True)
class ProductSet:
    """A synthesized product set, letterboxed to the model size.

    Attributes:
        images: (4, S, S, 3) uint8 RGB; missing views are white.
        masks: (4, S, S) bool truth, False on missing views.
        valid: (4,) bool, True on the views that are present.
        view_types: names from VIEW_TYPES, "empty" for a frame without the product
            (synthesize_set's empty_view_rate), "" for missing views.
        category: category id of the target (1-7).
        photo_id: CCP photo the set comes from.
        target_label: CCP label id of the target garment.
        garment_count: garments covering at least MIN_TARGET_FRACTION of the photo.
        others: (4, S, S) bool, True on the photo's other garments (any size), for the loss.
    """

    images: NDArray[np.uint8]
    masks: NDArray[np.bool_]
    valid: NDArray[np.bool_]
    view_types: tuple[str, ...]
    category: int
    photo_id: str
    target_label: int
    garment_count: int
    others: NDArray[np.bool_]


def load_label_categories(dataset_dir: Path) -> dict[int, int]:
    """Map each CCP label id to a category id (0 for labels that are never a product).

    Args:
        dataset_dir: folder with labels.json.
    Returns:
        dict from CCP label id to category id from handler/data/categories.json.
    """
    label_names = {int(k): v for k, v in json.loads((dataset_dir / "labels.json").read_text()).items()}
    vocabulary = json.loads(CATEGORIES_PATH.read_text())["categories"]
    by_name = {name: entry["id"] for entry in vocabulary for name in entry["labels"]}
    return {label_id: by_name.get(name, 0) for label_id, name in label_names.items()}


def split_ids(dataset_dir: Path, *, validation_every: int = 8) -> tuple[list[str], list[str]]:
    """Split photo ids into training and validation by a fixed rule on the id.

    Args:
        dataset_dir: folder with images/ and labels/.
        validation_every: every n-th id, in sorted order, goes to validation.
    Returns:
        (training ids, validation ids), both sorted.
    """
    ids = sorted(p.stem for p in (dataset_dir / "labels").glob("*.png"))
    validation = ids[3::validation_every]
    validation_set = set(validation)
    return [i for i in ids if i not in validation_set], validation


def load_photos(dataset_dir: Path, ids: list[str], *, long_side: int | None = WORK_LONG_SIDE) -> list[Photo]:
    """Read photos and label maps, scaled so the long side is long_side.

    Args:
        dataset_dir: folder with images/NNNN.jpg and labels/NNNN.png.
        ids: photo ids to read.
        long_side: long side in pixels after scaling; None keeps the original size.
    Returns:
        Photos in the order of ids.
    """
    photos = []
    for photo_id in ids:
        rgb = Image.open(dataset_dir / "images" / f"{photo_id}.jpg").convert("RGB")
        labels = Image.open(dataset_dir / "labels" / f"{photo_id}.png")
        if long_side is None:
            photos.append(Photo(photo_id, np.asarray(rgb), np.asarray(labels)))
            continue
        scale = long_side / max(rgb.size)
        size = (round(rgb.size[0] * scale), round(rgb.size[1] * scale))
        photos.append(Photo(photo_id, np.asarray(rgb.resize(size, Image.BILINEAR)), np.asarray(labels.resize(size, Image.NEAREST))))
    return photos


def product_labels(photo: Photo, label_categories: dict[int, int]) -> list[tuple[int, int]]:
    """List the garments of a photo that are large enough to be a product.

    Returns:
        (label id, pixel count) pairs, largest first.
    """
    ids, counts = np.unique(photo.labels, return_counts=True)
    minimum = MIN_TARGET_FRACTION * photo.labels.size
    found = [(int(i), int(c)) for i, c in zip(ids, counts, strict=True) if label_categories.get(int(i), 0) > 0 and c >= minimum]
    return sorted(found, key=lambda pair: -pair[1])


# ---------------------------------------------------------------------------
# Views. Each renderer takes the photo and a code map: (H, W) uint8, TARGET_CODE on
# the product, DECOY_CODE on a garment tracked for evaluation, 0 elsewhere. It
# returns an (H, W, 3) uint8 photo and the code map, both through the same crops,
# flips and rotations.

TARGET_CODE = 1
DECOY_CODE = 2


def _chance(rng: np.random.Generator, rate: float) -> bool:
    """Return True with probability rate.

    At rate 0 no number is drawn, so an option left at 0 keeps every later draw, and the
    sets drawn before the option existed, unchanged.
    """
    return rate > 0 and rng.random() < rate


def _paint(top: NDArray[np.float64], bottom: NDArray[np.float64] | None, height: int, width: int) -> NDArray[np.float32]:
    """Fill an (H, W, 3) float32 background, 0-255: plain top, or a vertical gradient from top to bottom."""
    if bottom is None:
        return np.clip(np.broadcast_to(top, (height, width, 3)), 0, 255).astype(np.float32)
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    return np.clip(np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)), 0, 255).astype(np.float32)


def _light_background(rng: np.random.Generator, height: int, width: int) -> NDArray[np.float32]:
    """Render a plain studio background: white, grey, beige or a vertical gradient."""
    palette = np.array(
        [[255, 255, 255], [242, 242, 242], [232, 232, 230], [240, 232, 218], [228, 224, 236], [250, 246, 238]],
        np.float32,
    )
    top = palette[rng.integers(len(palette))] + rng.normal(0, 4, 3)
    bottom = palette[rng.integers(len(palette))] - rng.uniform(0, 30) if rng.random() < 0.35 else None
    return _paint(top, bottom, height, width)


def _dark_background(rng: np.random.Generator, height: int, width: int) -> NDArray[np.float32]:
    """Render a dark or colored studio background: black, charcoal, navy, brown or a paper color.

    Sometimes a vertical gradient towards a darker shade, as with _light_background.
    """
    dark = [[12, 12, 12], [40, 40, 42], [72, 72, 74], [24, 30, 58], [30, 48, 40], [62, 46, 36]]
    papers = [[205, 168, 168], [150, 188, 218], [160, 180, 150], [205, 172, 92]]
    palette = np.array(dark + papers, np.float32)
    top = palette[rng.integers(len(palette))] + rng.normal(0, 4, 3)
    bottom = top * rng.uniform(0.5, 0.9) if rng.random() < 0.35 else None
    return _paint(top, bottom, height, width)


def _backdrop(rng: np.random.Generator, height: int, width: int, dark_rate: float) -> NDArray[np.float32]:
    """Draw a studio background: dark or colored with probability dark_rate (_chance), else light."""
    if _chance(rng, dark_rate):
        return _dark_background(rng, height, width)
    return _light_background(rng, height, width)


def _composite(
    rgb: NDArray[np.uint8], keep: NDArray[np.bool_], rng: np.random.Generator, *, shadow: bool, dark_rate: float = 0.0
) -> NDArray[np.uint8]:
    """Paste the kept pixels on a studio background with a soft alpha edge and an optional shadow."""
    height, width = keep.shape
    background = _backdrop(rng, height, width, dark_rate)
    alpha_image = Image.fromarray(keep.astype(np.uint8) * 255)
    if shadow:
        dx, dy = rng.integers(-12, 13, 2)
        shadow_mask = np.asarray(alpha_image.filter(ImageFilter.GaussianBlur(rng.uniform(6, 14))), np.float32) / 255.0
        shadow_mask = np.roll(shadow_mask, (int(dy), int(dx)), axis=(0, 1))
        background *= 1.0 - rng.uniform(0.08, 0.25) * shadow_mask[..., None]
    alpha = np.asarray(alpha_image.filter(ImageFilter.GaussianBlur(0.7)), np.float32)[..., None] / 255.0
    return np.clip(rgb.astype(np.float32) * alpha + background * (1 - alpha), 0, 255).astype(np.uint8)


def _crop(rgb: NDArray[np.uint8], codes: NDArray[np.uint8], box: tuple[int, int, int, int]) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    top, left, bottom, right = box
    return rgb[top:bottom, left:right], codes[top:bottom, left:right]


def _box_around(mask: NDArray[np.bool_], margin: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Bounding box of a mask grown by margin (a fraction of its size, jittered per side)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    h, w = bottom - top, right - left
    grow = lambda span: int(span * margin * rng.uniform(0.5, 1.5))  # noqa: E731 - a one-line jitter helper
    return (
        max(0, top - grow(h)),
        max(0, left - grow(w)),
        min(mask.shape[0], bottom + grow(h)),
        min(mask.shape[1], right + grow(w)),
    )


# Every renderer takes dark_rate, the share of studio backgrounds that are dark or
# colored (see _backdrop); the street renderer keeps the photo's own background.
Rendered = tuple[NDArray[np.uint8], NDArray[np.uint8]]


def render_studio(photo: Photo, codes: NDArray[np.uint8], rng: np.random.Generator, *, dark_rate: float = 0.0) -> Rendered:
    """Cut the person out and place them on a studio background, framed full body or closer."""
    target = codes == TARGET_CODE
    person = photo.labels != BACKGROUND_LABEL
    rgb = _composite(photo.rgb, person, rng, shadow=rng.random() < 0.5, dark_rate=dark_rate)
    box = _box_around(person, rng.uniform(0.03, 0.15), rng)
    if rng.random() < 0.35:
        box = _box_around(target, rng.uniform(0.2, 0.8), rng)
    return _crop(rgb, codes, box)


def render_street(photo: Photo, codes: NDArray[np.uint8], rng: np.random.Generator, *, dark_rate: float = 0.0) -> Rendered:
    """Use the street photo itself, sometimes cropped towards the target; dark_rate is not used."""
    if rng.random() < 0.5:
        return photo.rgb, codes
    height, width = codes.shape
    box = _box_around(codes == TARGET_CODE, rng.uniform(0.3, 1.2), rng)
    return _crop(photo.rgb, codes, box) if (box[2] - box[0]) * (box[3] - box[1]) > 0.15 * height * width else (photo.rgb, codes)


def render_detail(photo: Photo, codes: NDArray[np.uint8], rng: np.random.Generator, *, dark_rate: float = 0.0) -> Rendered:
    """Crop a close window centred on a target pixel, from the street or studio rendering."""
    target = codes == TARGET_CODE
    person = photo.labels != BACKGROUND_LABEL
    rgb = photo.rgb if rng.random() < 0.5 else _composite(photo.rgb, person, rng, shadow=False, dark_rate=dark_rate)
    rows = np.flatnonzero(target.any(axis=1))
    cols = np.flatnonzero(target.any(axis=0))
    span_h, span_w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    side = int(max(32, rng.uniform(0.35, 0.9) * max(span_h, span_w)))
    ys, xs = np.nonzero(target)
    pick = rng.integers(len(ys))
    aspect = rng.uniform(0.75, 1.33)
    half_h, half_w = int(side * aspect / 2), int(side / aspect / 2)
    top = int(np.clip(ys[pick] - half_h, 0, max(0, target.shape[0] - 2 * half_h)))
    left = int(np.clip(xs[pick] - half_w, 0, max(0, target.shape[1] - 2 * half_w)))
    return _crop(rgb, codes, (top, left, top + 2 * half_h, left + 2 * half_w))


def render_packshot(photo: Photo, codes: NDArray[np.uint8], rng: np.random.Generator, *, dark_rate: float = 0.0) -> Rendered:
    """Show the target garment alone on a studio background, at a varied scale."""
    target = codes == TARGET_CODE
    rgb = _composite(photo.rgb, target, rng, shadow=rng.random() < 0.3, dark_rate=dark_rate)
    alone = np.where(target, codes, 0).astype(np.uint8)
    return _crop(rgb, alone, _box_around(target, rng.uniform(0.04, 0.6), rng))


def render_empty(rng: np.random.Generator, *, backdrop: str = "light") -> Rendered:
    """Render a studio frame with no product: a plain background, sometimes with a soft shadow.

    Teaches the network that a photo may show no product at all (a blank upload, an
    empty backdrop), where it would otherwise mark some region anyway.

    Args:
        rng: random source.
        backdrop: "light" for _light_background; "dark" for _dark_background, the dark
            or colored paper of training's dark backdrops; "inverted" for the light frame
            inverted. The inverted frame is a near-black backdrop on which a shadow becomes
            a soft light patch. make eval shows it, and training does not.
    Returns:
        (H, W, 3) uint8 RGB and an all-zero (H, W) uint8 code map, H and W in 240-480.
    """
    if backdrop not in ("light", "dark", "inverted"):
        raise ValueError(f"backdrop must be light, dark or inverted, not {backdrop!r}")
    height, width = (int(side) for side in rng.integers(240, 481, 2))
    background = _dark_background(rng, height, width) if backdrop == "dark" else _light_background(rng, height, width)
    if rng.random() < 0.5:
        blob = np.zeros((height, width), np.uint8)
        cy, cx = int(rng.integers(height)), int(rng.integers(width))
        ry, rx = int(rng.integers(height // 8, height // 2)), int(rng.integers(width // 8, width // 2))
        yy, xx = np.ogrid[:height, :width]
        blob[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 255
        soft = np.asarray(Image.fromarray(blob).filter(ImageFilter.GaussianBlur(rng.uniform(10, 30))), np.float32) / 255.0
        background *= 1.0 - rng.uniform(0.05, 0.2) * soft[..., None]
    if backdrop == "inverted":
        background = 255.0 - background
    background += rng.normal(0, rng.uniform(0, 3), background.shape).astype(np.float32)
    return np.clip(background, 0, 255).astype(np.uint8), np.zeros((height, width), np.uint8)


def render_background_crop(
    photo: Photo, rng: np.random.Generator, *, tries: int = 30
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]] | None:
    """Crop a window of the street photo that shows no person: a busy frame with no product.

    Boxes 20-45% of the photo's short side wide and 0.8-2 times as tall are drawn at
    random until one has less than 0.5% person pixels (CCP label other than background).

    Returns:
        (h, w, 3) uint8 RGB and an all-zero (h, w) uint8 code map, or None when no
        drawn box is free of the person.
    """
    height, width = photo.labels.shape
    person = photo.labels != BACKGROUND_LABEL
    for _ in range(tries):
        box_w = int(min(height, width) * rng.uniform(0.2, 0.45))
        box_h = min(height, int(box_w * rng.uniform(0.8, 2.0)))
        top, left = int(rng.integers(0, height - box_h + 1)), int(rng.integers(0, width - box_w + 1))
        if person[top : top + box_h, left : left + box_w].mean() < 0.005:
            rgb = photo.rgb[top : top + box_h, left : left + box_w]
            return rgb, np.zeros(rgb.shape[:2], np.uint8)
    return None


RENDERERS = {"studio": render_studio, "detail": render_detail, "packshot": render_packshot, "street": render_street}


def jitter_view(rgb: NDArray[np.uint8], codes: NDArray[np.uint8], rng: np.random.Generator) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Flip, rotate a little and shift color and lighting of one view.

    Args:
        rgb: (H, W, 3) uint8 RGB.
        codes: (H, W) uint8 code map.
        rng: random source.
    Returns:
        The jittered photo and its code map, same shapes and dtypes.
    """
    if rng.random() < 0.5:
        rgb, codes = rgb[:, ::-1], codes[:, ::-1]
    image = Image.fromarray(np.ascontiguousarray(rgb))
    mask_image = Image.fromarray(np.ascontiguousarray(codes))
    if rng.random() < 0.4:
        angle = float(rng.uniform(-10, 10))
        corner = tuple(int(v) for v in np.asarray(rgb)[0, 0])
        image = image.rotate(angle, Image.BILINEAR, fillcolor=corner)
        mask_image = mask_image.rotate(angle, Image.NEAREST, fillcolor=0)
    pixels = np.asarray(image, np.float32)
    gain = rng.uniform(0.85, 1.15) * rng.uniform(0.96, 1.04, 3)
    contrast = rng.uniform(0.85, 1.15)
    mean = pixels.mean()
    pixels = (pixels - mean) * contrast + mean
    gray = pixels.mean(axis=2, keepdims=True)
    pixels = gray + (pixels - gray) * rng.uniform(0.8, 1.2)
    pixels = np.clip(pixels * gain, 0, 255)
    return pixels.astype(np.uint8), np.asarray(mask_image)


def choose_view_types(rng: np.random.Generator) -> list[str]:
    """Draw the view types of one set: 1 to 4 views, with or without a packshot, sometimes one photo repeated."""
    count = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.2, 0.2, 0.35]))
    if rng.random() < 0.08:
        return [str(rng.choice(VIEW_TYPES))] * count
    if count == 4 and rng.random() < 0.4:
        return list(rng.permutation(VIEW_TYPES))
    return [str(v) for v in rng.choice(VIEW_TYPES, size=count, p=[0.32, 0.18, 0.18, 0.32])]


def render_views(
    photo: Photo,
    target_label: int,
    view_types: list[str],
    rng: np.random.Generator,
    *,
    decoy_labels: Collection[int] = (),
    dark_rate: float = 0.0,
) -> list[tuple[NDArray[np.uint8], NDArray[np.uint8]]]:
    """Render the views of one set at the photo's resolution.

    When all view types are the same, half of the time the first rendering is
    repeated unchanged, as a client that sends one photo several times would.

    Args:
        photo: source photo and labels.
        target_label: CCP label of the product.
        view_types: names from VIEW_TYPES.
        rng: random source.
        decoy_labels: CCP labels marked DECOY_CODE in the code maps.
        dark_rate: share of studio backgrounds that are dark or colored (_backdrop).
    Returns:
        One ((H, W, 3) uint8 RGB, (H, W) uint8 code map) pair per view type.
    """
    codes = np.where(photo.labels == target_label, TARGET_CODE, 0).astype(np.uint8)
    codes[np.isin(photo.labels, list(decoy_labels))] = DECOY_CODE
    repeated = len(set(view_types)) == 1 and len(view_types) > 1 and rng.random() < 0.5
    views: list[tuple[NDArray[np.uint8], NDArray[np.uint8]]] = []
    for view_type in view_types:
        if repeated and views:
            views.append(views[0])
        else:
            views.append(jitter_view(*RENDERERS[view_type](photo, codes, rng, dark_rate=dark_rate), rng))
    return views


def synthesize_set(
    photo: Photo,
    label_categories: dict[int, int],
    size: int,
    rng: np.random.Generator,
    *,
    view_types: list[str] | None = None,
    target_label: int | None = None,
    full_set_rate: float = 0.0,
    empty_view_rate: float = 0.0,
    busy_empty_rate: float = 0.0,
    dark_backdrop_rate: float = 0.0,
) -> ProductSet | None:
    """Build one product set from one photo.

    Args:
        photo: source photo and labels.
        label_categories: CCP label id to category id.
        size: model input side S in pixels.
        rng: random source; the same generator state gives the same set.
        view_types: view types to render; drawn by choose_view_types when None.
        target_label: CCP label of the product; drawn with weight sqrt(area) when None.
        full_set_rate: share of drawn sets that contain each view type once, in random order,
            on top of those choose_view_types draws. At 0 no extra random draw is made, so
            the sets match those drawn before this option existed.
        empty_view_rate: share of sets in which one view is replaced by a frame with no
            product (render_empty; view type "empty", all-False mask). At 0 no extra random
            draw is made, as with full_set_rate.
        busy_empty_rate: share of those frames cut from the street photo's background
            (render_background_crop) instead of a studio backdrop; when no box without
            the person is found, the studio backdrop is used.
        dark_backdrop_rate: share of studio backgrounds, of product views and of
            product-free frames alike, that are dark or colored instead of light. At 0
            no extra random draw is made, as with full_set_rate.
    Returns:
        The set, or None when the photo has no garment large enough.
    """
    garments = product_labels(photo, label_categories)
    if not garments:
        return None
    if target_label is None:
        weights = np.sqrt(np.array([count for _, count in garments], np.float64))
        target_label = garments[int(rng.choice(len(garments), p=weights / weights.sum()))][0]
    if view_types is not None:
        types = view_types
    elif _chance(rng, full_set_rate):
        types = [str(v) for v in rng.permutation(VIEW_TYPES)]
    else:
        types = choose_view_types(rng)
    other_garments = [label for label, category in label_categories.items() if category > 0 and label != target_label]
    images = np.full((MAX_VIEWS, size, size, 3), 255, np.uint8)
    masks = np.zeros((MAX_VIEWS, size, size), bool)
    others = np.zeros((MAX_VIEWS, size, size), bool)
    valid = np.zeros(MAX_VIEWS, bool)
    rendered = render_views(photo, target_label, types, rng, decoy_labels=other_garments, dark_rate=dark_backdrop_rate)
    if _chance(rng, empty_view_rate):
        slot = int(rng.integers(len(types)))
        frame = None
        if _chance(rng, busy_empty_rate):
            frame = render_background_crop(photo, rng)
        if frame is None:
            frame = render_empty(rng, backdrop="dark" if _chance(rng, dark_backdrop_rate) else "light")
        rendered[slot] = jitter_view(*frame, rng)
        types = [*types[:slot], "empty", *types[slot + 1 :]]
    for slot, (rgb, codes) in enumerate(rendered):
        images[slot], _ = letterbox(rgb, size)
        masks[slot] = letterbox_mask(codes == TARGET_CODE, size)
        others[slot] = letterbox_mask(codes == DECOY_CODE, size)
        valid[slot] = True
    names = tuple(types) + ("",) * (MAX_VIEWS - len(types))
    category = label_categories[target_label]
    return ProductSet(images, masks, valid, names, category, photo.photo_id, target_label, len(garments), others)
