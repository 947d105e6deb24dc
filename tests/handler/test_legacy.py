"""The older service's /predict response: grid rendering and the handler route."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from handler.app import lambda_handler
from handler.legacy import render_legacy_grid
from tests.conftest import load_event


def test_grid_tiles_photos_row_major_with_mask_alpha() -> None:
    # GIVEN a square red photo whose left half is product, and a square blue photo with no product
    red = np.zeros((64, 64, 3), dtype=np.uint8)
    red[..., 0] = 255
    red_mask = np.zeros((64, 64), dtype=bool)
    red_mask[:, :32] = True
    blue = np.zeros((64, 64, 3), dtype=np.uint8)
    blue[..., 2] = 255

    # WHEN they are rendered
    grid = render_legacy_grid([red, blue], [red_mask, np.zeros((64, 64), dtype=bool)])

    # THEN tile 0 (top left) is red with its left half opaque, tile 1 (top right) blue and transparent
    assert grid.shape == (256, 256, 4)
    assert grid.dtype == np.uint8
    assert tuple(grid[64, 64, :3]) == (255, 0, 0)
    assert grid[:128, :60, 3].min() == 255
    assert grid[:128, 68:128, 3].max() == 0
    assert tuple(grid[64, 192, :3]) == (0, 0, 255)
    assert grid[:128, 128:, 3].max() == 0


def test_grid_missing_tiles_white_transparent() -> None:
    photo = np.zeros((30, 30, 3), dtype=np.uint8)

    grid = render_legacy_grid([photo], [np.ones((30, 30), dtype=bool)])

    assert (grid[128:, :, :3] == 255).all()
    assert (grid[128:, :, 3] == 0).all()
    assert (grid[:128, 128:, 3] == 0).all()


def test_grid_letterbox_padding_transparent_white() -> None:
    # GIVEN a wide photo that is all product: letterboxing leaves white bands above and below
    wide = np.zeros((50, 100, 3), dtype=np.uint8)

    grid = render_legacy_grid([wide], [np.ones((50, 100), dtype=bool)])

    assert (grid[:20, :128, 3] == 0).all()
    assert (grid[:20, :128, :3] == 255).all()
    assert (grid[40:88, :128, 3] == 255).all()


def test_grid_mask_shape_mismatch_rejected() -> None:
    with pytest.raises(ValueError, match="mask 0"):
        render_legacy_grid([np.zeros((10, 12, 3), dtype=np.uint8)], [np.zeros((12, 10), dtype=bool)])


def test_grid_more_than_four_rejected() -> None:
    photos = [np.zeros((4, 4, 3), dtype=np.uint8)] * 5
    with pytest.raises(ValueError, match="up to 4"):
        render_legacy_grid(photos, [np.zeros((4, 4), dtype=bool)] * 5)


def test_predict_route_returns_rgba_png(lambda_context: Any) -> None:
    result = lambda_handler(load_event("api-predict-legacy.json"), lambda_context)

    assert result["statusCode"] == 200
    assert result["headers"]["Content-Type"] == "image/png"
    assert result["isBase64Encoded"] is True
    image = Image.open(io.BytesIO(base64.b64decode(result["body"])))
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (256, 256))
    pixels = np.asarray(image)
    assert (pixels[128:, 128:, 3] == 0).all()  # only three photos were sent
    assert (pixels[128:, 128:, :3] == 255).all()


def test_predict_route_bad_min_prediction_value(lambda_context: Any) -> None:
    event = load_event("api-predict-legacy.json")
    event["queryStringParameters"] = {"minPredictionValue": "5"}

    result = lambda_handler(event, lambda_context)

    assert result["statusCode"] == 400
    assert "'5'" in result["body"]
