"""Response bodies in handler.response: result document, errors, API Gateway envelopes."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from handler import errors, response
from handler.colors import Color
from handler.payload import S3Ref
from handler.pipeline import SetResult, ViewResult
from handler.request import EventSource
from handler.s3_events import BatchEvent, BatchTask


def make_view(height: int, width: int, box: tuple[int, int, int, int] | None) -> ViewResult:
    mask = np.zeros((height, width), dtype=np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        mask[y0:y1, x0:x1] = 255
    image = np.full((height, width, 3), 200, dtype=np.uint8)
    return ViewResult(
        mask=mask,
        alpha=mask.copy(),
        image=image,
        bbox=box,
        coverage=float((mask > 0).mean()),
        confidence=0.8766 if box is not None else 1.0,
        empty=box is None,
        square_image=np.zeros((8, 8, 3), dtype=np.uint8),
        square_probs=np.zeros((8, 8), dtype=np.float32),
    )


def make_result() -> SetResult:
    red = Color(hex="#c81e1e", rgb=(200, 30, 30), lab=(43.0, 65.1, 45.2), percentage=100, name="red", family="red")
    return SetResult(
        views=(make_view(6, 4, (1, 2, 3, 5)), make_view(3, 5, None)),
        colors=(red,),
        category="top",
        threshold=0.5,
        model_name="fashion-seg",
        model_version="1.2.3",
        timings_ms={"infer": 12.345, "refine": 3.0},
    )


def test_result_document_fields() -> None:
    result = make_result()
    locations = [
        (response.s3_location("out", "results/p/mask-0.png"), response.s3_location("out", "results/p/cutout-0.png")),
        (response.inline_location(b"m"), response.inline_location(b"c")),
    ]

    document = response.result_document(result, product_id="p", locations=locations, timings_ms={"decode": 1.26})

    assert document["product_id"] == "p"
    assert document["model"] == {"name": "fashion-seg", "version": "1.2.3"}
    assert document["category"] == "top"
    assert document["threshold"] == 0.5
    first, second = document["images"]
    assert first == {
        "index": 0,
        "width": 4,
        "height": 6,
        "empty": False,
        "status": "ok",
        "bbox": [1, 2, 3, 5],
        "coverage": round(6 / 24, 4),
        "confidence": 0.877,
        "mask": {"s3_uri": "s3://out/results/p/mask-0.png", "key": "results/p/mask-0.png"},
        "cutout": {"s3_uri": "s3://out/results/p/cutout-0.png", "key": "results/p/cutout-0.png"},
    }
    assert second["status"] == "empty"
    assert second["bbox"] is None
    assert (second["width"], second["height"]) == (5, 3)
    assert second["mask"] == {"png_base64": base64.b64encode(b"m").decode()}
    assert document["colors"] == [result.colors[0].to_dict()]
    assert document["timings_ms"] == {"infer": 12.3, "refine": 3.0, "decode": 1.3}
    json.dumps(document)  # plain JSON types only


def test_encode_views_png_modes_and_sizes() -> None:
    pngs = response.encode_views(make_result())

    mask = Image.open(io.BytesIO(pngs[0].mask))
    cutout = Image.open(io.BytesIO(pngs[1].cutout))
    assert (mask.mode, mask.size) == ("L", (4, 6))
    assert (cutout.mode, cutout.size) == ("RGBA", (5, 3))


def test_error_document_shape() -> None:
    error = errors.ImageNotFoundError("The image s3://b/k was not found.", image_index=2)

    assert response.error_document(error) == {
        "error": {"code": "image_not_found", "message": "The image s3://b/k was not found.", "image_index": 2}
    }


@pytest.mark.parametrize("source", [EventSource.API_V1, EventSource.API_V2])
def test_error_reply_api_envelope(source: EventSource) -> None:
    reply = response.error_reply(
        source, errors.TooManyImagesError("Received 6 images; at most 4 are accepted per request.")
    )

    assert reply["statusCode"] == 400
    assert reply["headers"]["Content-Type"] == "application/json"
    assert reply["isBase64Encoded"] is False
    assert json.loads(reply["body"])["error"]["code"] == "too_many_images"


@pytest.mark.parametrize("source", [EventSource.DIRECT, EventSource.S3_NOTIFICATION])
def test_reply_plain_dict_for_non_api(source: EventSource) -> None:
    assert response.reply(source, 200, {"product_id": "p"}) == {"product_id": "p"}


def test_internal_error_hides_detail() -> None:
    reply = response.error_reply(EventSource.API_V2, errors.InternalError())

    assert reply["statusCode"] == 500
    assert json.loads(reply["body"])["error"]["code"] == "internal_error"


def test_cors_header_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "Access-Control-Allow-Origin" not in response.http_response(200, {})["headers"]

    monkeypatch.setenv("CORS_ALLOW_ORIGIN", "https://shop.example")

    assert response.http_response(200, {})["headers"]["Access-Control-Allow-Origin"] == "https://shop.example"
    assert response.png_response(b"x")["headers"]["Access-Control-Allow-Origin"] == "https://shop.example"


def test_png_response_base64_body() -> None:
    reply = response.png_response(b"\x89PNG-data")

    assert reply["headers"]["Content-Type"] == "image/png"
    assert reply["isBase64Encoded"] is True
    assert base64.b64decode(reply["body"]) == b"\x89PNG-data"


def test_batch_reply_shape() -> None:
    batch = BatchEvent(
        schema_version="1.0", invocation_id="inv-1", tasks=(BatchTask("t1", S3Ref("b", "p/manifest.json")),)
    )

    reply = response.batch_reply(batch, [response.BatchTaskResult("t1", "Succeeded", "s3://o/results/p/result.json")])

    assert reply == {
        "invocationSchemaVersion": "1.0",
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": "inv-1",
        "results": [{"taskId": "t1", "resultCode": "Succeeded", "resultString": "s3://o/results/p/result.json"}],
    }


def test_error_reply_method_not_allowed_has_allow_header() -> None:
    reply = response.error_reply(EventSource.API_V1, errors.MethodNotAllowedError("Method 'GET' is not allowed."))

    assert reply["statusCode"] == 405
    assert reply["headers"]["Allow"] == "POST"
    assert reply["headers"]["Content-Type"] == "application/json"


def test_check_inline_size_over_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(response, "MAX_RESPONSE_BYTES", response.INLINE_RESERVE_BYTES + 1000)
    pngs = [response.ViewPngs(mask=b"x" * 2000, cutout=b"")]

    with pytest.raises(errors.ResponseTooLargeError) as info:
        response.check_inline_size(pngs)
    assert info.value.status_code == 413
    assert "OUTPUT_BUCKET" in info.value.message


def test_check_inline_size_under_limit_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(response, "MAX_RESPONSE_BYTES", response.INLINE_RESERVE_BYTES + 3000)

    response.check_inline_size([response.ViewPngs(mask=b"x" * 2000, cutout=b"")])


def test_inline_reserve_covers_largest_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the longest fields a reply can carry: 4 photos, 5 colors, a 128-character product id,
    # every timing key and the CORS header
    monkeypatch.setenv("CORS_ALLOW_ORIGIN", "https://shop.example.com")
    color = Color(
        hex="#6495ed", rgb=(100, 149, 237), lab=(61.93, 9.34, -49.31), percentage=20, name="cornflower blue", family="purple"
    )
    timings = {name: 123456.7 for name in ("read", "decode", "preprocess", "infer", "refine", "colors", "encode")}
    result = SetResult(
        views=tuple(make_view(6, 4, (1, 2, 3, 5)) for _ in range(4)),
        colors=(color,) * 5,
        category="outerwear",
        threshold=0.123456789,
        model_name="fashion-seg",
        model_version="1.2.3",
        timings_ms=timings,
    )
    pngs = [response.ViewPngs(mask=bytes(range(256)) * 40, cutout=bytes(range(256)) * 90) for _ in result.views]
    locations = [(response.inline_location(png.mask), response.inline_location(png.cutout)) for png in pngs]
    document = response.result_document(result, product_id="p" * 128, locations=locations, timings_ms=timings)

    # WHEN it is wrapped for API Gateway and serialized as Lambda returns it
    reply = response.reply(EventSource.API_V1, 200, document)
    size = len(json.dumps(reply, separators=(",", ":")).encode("utf-8"))

    # THEN everything except the base64 PNGs fits in the reserve that check_inline_size adds
    png_size = sum(response.base64_length(png.mask) + response.base64_length(png.cutout) for png in pngs)
    assert size - png_size <= response.INLINE_RESERVE_BYTES


def test_quote_value_huge_int_does_not_raise() -> None:
    text = errors.quote_value(10**5000)

    assert text == "<int too large to quote>"


def test_result_document_result_uri_only_when_stored() -> None:
    result = make_result()
    locations = [({"path": "mask-0.png"}, {"path": "cutout-0.png"}), ({"path": "m1"}, {"path": "c1"})]

    stored = response.result_document(
        result, product_id="p", locations=locations, timings_ms={}, result_uri="s3://b/results/p/result.json"
    )
    inline = response.result_document(result, product_id="p", locations=locations, timings_ms={})

    assert stored["result_uri"] == "s3://b/results/p/result.json"
    assert "result_uri" not in inline
