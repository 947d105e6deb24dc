"""The sample photos in events/samples/: files, masks, EXIF variant, size, and reproducibility."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "events" / "samples"
PHOTOS = ["packshot.png", "front.jpg", "back.jpg", "detail.jpg", "front-rotated.jpg",
          "set2/packshot.jpg", "set2/front.jpg"]
MAX_TOTAL_BYTES = 600 * 1024


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", REPO_ROOT / "tests" / "data" / "make_samples.py")
    if spec is None or spec.loader is None:
        raise ImportError("tests/data/make_samples.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations through sys.modules, so register before running it.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _mask_path(photo: Path) -> Path:
    return photo.with_name(photo.stem + "_mask.png")


def _read_mask(path: Path) -> NDArray[np.bool_]:
    values = np.asarray(Image.open(path))
    if values.ndim != 2 or not set(np.unique(values)) <= {0, 255}:
        raise AssertionError(f"{path} is not a single-channel 0/255 mask")
    return values == 255


def _upright(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


@pytest.mark.parametrize("name", PHOTOS)
def test_sample_mask_matches_photo(name: str) -> None:
    photo = SAMPLES / name

    mask = _read_mask(_mask_path(photo))
    width, height = _upright(photo).size

    assert mask.shape == (height, width)
    assert 400 <= max(width, height) <= 800
    # Every sample shows the product, and none is all product.
    assert 0.02 < mask.mean() < 0.98


def test_rotated_sample_stores_pixels_turned() -> None:
    with Image.open(SAMPLES / "front-rotated.jpg") as rotated:
        orientation = rotated.getexif().get(0x0112)
        stored_size = rotated.size
    upright = np.asarray(_upright(SAMPLES / "front-rotated.jpg"), dtype=np.float32)
    front = np.asarray(_upright(SAMPLES / "front.jpg"), dtype=np.float32)

    assert orientation == 6
    assert stored_size == (front.shape[0], front.shape[1])
    assert upright.shape == front.shape
    assert np.abs(upright - front).mean() < 3.0


def test_products_differ_in_color() -> None:
    def product_mean(name: str) -> NDArray[np.float64]:
        photo = SAMPLES / name
        pixels = np.asarray(_upright(photo), dtype=np.float64)
        return pixels[_read_mask(_mask_path(photo))].mean(axis=0)

    sweater, chinos = product_mean("front.jpg"), product_mean("set2/front.jpg")

    # Coral knit is red-dominant, ochre chinos have more green than the sweater.
    assert sweater[0] > sweater[1] + 60
    assert chinos[1] > sweater[1] + 40


def test_samples_fit_size_budget() -> None:
    total = sum(path.stat().st_size for path in SAMPLES.rglob("*") if path.is_file())

    assert total <= MAX_TOTAL_BYTES


def test_generator_reproduces_masks(tmp_path: Path) -> None:
    generator = _load_generator()

    generator.main(["--out", str(tmp_path)])

    for name in PHOTOS:
        fresh = _read_mask(_mask_path(tmp_path / name))
        shipped = _read_mask(_mask_path(SAMPLES / name))
        iou = (fresh & shipped).sum() / max((fresh | shipped).sum(), 1)
        assert iou > 0.995, f"{name}: regenerated mask IoU {iou:.4f} with the shipped one"
