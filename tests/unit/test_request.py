"""Event parsing in handler.request and handler.payload: API Gateway and direct invokes, limits, messages."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest

from handler import errors, payload, request
from handler.payload import S3Ref
from handler.request import EventSource
from tests.conftest import SAMPLES_DIR, build_events, load_event

FRONT = (SAMPLES_DIR / "front.jpg").read_bytes()
BACK = (SAMPLES_DIR / "back.jpg").read_bytes()
FRONT_B64 = base64.b64encode(FRONT).decode()


def parse(event: Any) -> Any:
    return request.parse_event(event, request.detect_source(event))


def http_json(body: object, *, content_type: str = "application/json", path: str = "/segment") -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    return build_events.http_event(path, text, content_type=content_type, is_base64=False)


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("api-rest-json.json", EventSource.API_V1),
        ("api-predict-legacy.json", EventSource.API_V1),
        ("api-http-json.json", EventSource.API_V2),
        ("api-multipart.json", EventSource.API_V2),
        ("api-s3-uri.json", EventSource.API_V2),
        ("s3-manifest.json", EventSource.S3_NOTIFICATION),
        ("s3-batch.json", EventSource.S3_BATCH),
        ("direct.json", EventSource.DIRECT),
    ],
)
def test_detect_source_sample_events(name: str, source: EventSource) -> None:
    assert request.detect_source(load_event(name)) is source


def test_parse_rest_base64_json_body() -> None:
    parsed = parse(load_event("api-rest-json.json"))

    assert isinstance(parsed, payload.SegmentRequest)
    assert [image.data for image in parsed.images] == [FRONT]
    assert parsed.category == "top"  # "tee" is an alias
    assert parsed.threshold == 0.5
    assert not parsed.legacy
    assert len(parsed.product_id) == 32


def test_parse_http_json_data_uri_and_plain_base64() -> None:
    parsed = parse(load_event("api-http-json.json"))

    assert [image.data for image in parsed.images] == [FRONT, BACK]
    assert [image.index for image in parsed.images] == [0, 1]


def test_parse_multipart_files_and_fields() -> None:
    parsed = parse(load_event("api-multipart.json"))

    assert [image.data for image in parsed.images] == [FRONT, BACK]
    assert parsed.threshold == 0.5
    assert parsed.category == "top"


def test_parse_multipart_closes_numbering_gaps() -> None:
    body = build_events.multipart_body({"file2": "back.jpg", "file4": "front.jpg"}, {"threshold": "0.3"})
    content_type = f"multipart/form-data; boundary={build_events.MULTIPART_BOUNDARY}"
    event = build_events.http_event(
        "/segment", base64.b64encode(body).decode(), content_type=content_type, is_base64=True
    )

    parsed = parse(event)

    assert [image.data for image in parsed.images] == [BACK, FRONT]
    assert parsed.threshold == pytest.approx(0.3)


def test_parse_multipart_file5_too_many_images() -> None:
    body = build_events.multipart_body({f"file{n}": "front.jpg" for n in range(1, 6)}, {})
    content_type = f"multipart/form-data; boundary={build_events.MULTIPART_BOUNDARY}"
    event = build_events.http_event(
        "/segment", base64.b64encode(body).decode(), content_type=content_type, is_base64=True
    )

    with pytest.raises(errors.TooManyImagesError) as info:
        parse(event)
    assert "file5" in info.value.message


def test_parse_multipart_without_boundary_invalid() -> None:
    with pytest.raises(errors.InvalidRequestError, match="boundary"):
        parse(http_json("--x--", content_type="multipart/form-data"))


def test_parse_legacy_route_min_prediction_value() -> None:
    parsed = parse(load_event("api-predict-legacy.json"))

    assert parsed.legacy
    assert len(parsed.images) == 3
    assert parsed.threshold == pytest.approx(0.75)  # 1 - 2p < -0.5  <=>  p > 0.75


@pytest.mark.parametrize(("value", "threshold"), [(None, 0.75), ("-1", 1.0), ("1", 0.0), ("0.2", 0.4)])
def test_min_prediction_value_maps_to_threshold(value: str | None, threshold: float) -> None:
    assert payload.parse_min_prediction_value(value) == pytest.approx(threshold)


@pytest.mark.parametrize("value", ["-1.5", "2", "abc", "nan", ""])
def test_min_prediction_value_out_of_range_rejected(value: str) -> None:
    with pytest.raises(errors.InvalidThresholdError) as info:
        payload.parse_min_prediction_value(value)
    assert "minPredictionValue" in info.value.message
    assert repr(value) in info.value.message
    assert info.value.status_code == 400


def test_legacy_route_rejects_json() -> None:
    event = load_event("api-predict-legacy.json")
    event["headers"]["Content-Type"] = "application/json"

    with pytest.raises(errors.UnsupportedMediaTypeError) as info:
        parse(event)
    assert "application/json" in info.value.message
    assert info.value.status_code == 415


def test_legacy_route_under_http_api_stage() -> None:
    body = build_events.multipart_body({"file1": "front.jpg"}, {})
    content_type = f"multipart/form-data; boundary={build_events.MULTIPART_BOUNDARY}"
    event = build_events.http_event(
        "/prod/predict", base64.b64encode(body).decode(), content_type=content_type, is_base64=True
    )
    event["requestContext"]["stage"] = "prod"
    event["rawQueryString"] = "minPredictionValue=0"
    event["queryStringParameters"] = {"minPredictionValue": "0"}

    parsed = parse(event)

    assert parsed.legacy
    assert parsed.threshold == pytest.approx(0.5)


def test_segment_query_parameter_rejected() -> None:
    event = http_json({"images": [FRONT_B64]})
    event["queryStringParameters"] = {"threshold": "0.9"}

    with pytest.raises(errors.InvalidRequestError) as info:
        parse(event)

    assert "Unknown query parameter 'threshold'" in info.value.message
    assert "JSON body or as form fields" in info.value.message


def test_segment_signed_query_parameters_allowed() -> None:
    event = http_json({"images": [FRONT_B64]})
    event["queryStringParameters"] = {"X-Amz-Signature": "abc", "x-amz-date": "20261205T000000Z"}

    assert len(parse(event).images) == 1


def test_legacy_unknown_query_parameter_ignored() -> None:
    body = build_events.multipart_body({"file1": "front.jpg"}, {})
    content_type = f"multipart/form-data; boundary={build_events.MULTIPART_BOUNDARY}"
    event = build_events.http_event("/predict", base64.b64encode(body).decode(), content_type=content_type, is_base64=True)
    event["queryStringParameters"] = {"minPredictionValue": "0", "cache": "1"}

    parsed = parse(event)

    assert parsed.legacy
    assert parsed.threshold == pytest.approx(0.5)


def test_parse_too_many_images_message() -> None:
    with pytest.raises(errors.TooManyImagesError) as info:
        parse(http_json({"images": [FRONT_B64] * 6}))
    assert info.value.message == "Received 6 images; at most 4 are accepted per request."
    assert info.value.status_code == 400
    assert info.value.code == "too_many_images"


def test_parse_zero_images_invalid() -> None:
    with pytest.raises(errors.InvalidRequestError, match="Received 0 images"):
        parse(http_json({"images": []}))


def test_parse_missing_images_field() -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        parse(http_json({"threshold": 0.5}))
    assert "'images'" in info.value.message


def test_parse_unknown_field_named() -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        parse(http_json({"images": [FRONT_B64], "treshold": 0.5}))
    assert "'treshold'" in info.value.message
    assert "threshold" in info.value.message


def test_parse_api_rejects_product_id() -> None:
    with pytest.raises(errors.InvalidRequestError, match="product_id"):
        parse(http_json({"images": [FRONT_B64], "product_id": "x"}))


def test_parse_invalid_json_body() -> None:
    with pytest.raises(errors.InvalidRequestError, match="not valid JSON"):
        parse(http_json('{"images": ['))


def test_parse_json_array_body_invalid() -> None:
    with pytest.raises(errors.InvalidRequestError, match="must be a JSON object"):
        parse(http_json("[1, 2]"))


def test_parse_bad_base64_names_image_index() -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        parse(http_json({"images": [FRONT_B64, "not base64 at all!"]}))
    assert info.value.image_index == 1
    assert "images[1]" in info.value.message
    assert "'not base64" in info.value.message


def test_parse_url_safe_base64_without_padding() -> None:
    text = base64.urlsafe_b64encode(FRONT).decode().rstrip("=")

    parsed = parse(http_json({"images": [text]}))

    assert parsed.images[0].data == FRONT


def test_parse_s3_uri_images() -> None:
    parsed = parse(load_event("api-s3-uri.json"))

    assert parsed.images[0].s3 == S3Ref(build_events.INPUT_BUCKET, "incoming/sample-001/front.jpg")
    assert parsed.images[0].data is None
    assert parsed.threshold == pytest.approx(0.4)


@pytest.mark.parametrize("uri", ["s3://", "s3://bucket", "s3://bucket/"])
def test_parse_incomplete_s3_uri_invalid(uri: str) -> None:
    with pytest.raises(errors.InvalidRequestError, match="s3://bucket/key"):
        parse(http_json({"images": [uri]}))


def test_parse_unknown_category_lists_vocabulary() -> None:
    with pytest.raises(errors.UnknownCategoryError) as info:
        parse(http_json({"images": [FRONT_B64], "category": "spaceship"}))
    assert "spaceship" in info.value.message
    assert "outerwear" in info.value.message
    assert info.value.status_code == 400


@pytest.mark.parametrize("threshold", [1.5, -0.1, "high", True, None])
def test_parse_threshold_invalid(threshold: object) -> None:
    body: dict[str, Any] = {"images": [FRONT_B64], "threshold": threshold}
    if threshold is None:
        assert parse(http_json(body)).threshold == payload.DEFAULT_THRESHOLD
        return
    with pytest.raises(errors.InvalidThresholdError) as info:
        parse(http_json(body))
    assert repr(threshold) in info.value.message
    assert "between 0 and 1" in info.value.message


def test_parse_threshold_numeric_string_accepted() -> None:
    assert parse(http_json({"images": [FRONT_B64], "threshold": "0.25"})).threshold == pytest.approx(0.25)


def test_parse_wrong_content_type() -> None:
    with pytest.raises(errors.UnsupportedMediaTypeError) as info:
        parse(http_json("a=b", content_type="application/x-www-form-urlencoded"))
    assert "application/x-www-form-urlencoded" in info.value.message
    assert info.value.status_code == 415


def test_parse_body_over_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request, "MAX_BODY_BYTES", 100)

    with pytest.raises(errors.PayloadTooLargeError, match="at most 100 bytes"):
        parse(http_json({"images": [FRONT_B64]}))


def test_parse_invalid_base64_body_flag() -> None:
    event = build_events.http_event("/segment", "%%%", content_type="application/json", is_base64=True)

    with pytest.raises(errors.InvalidRequestError, match="isBase64Encoded"):
        parse(event)


def test_parse_direct_invoke_with_product_id() -> None:
    parsed = parse(load_event("direct.json"))

    assert parsed.product_id == "sample-direct"
    assert parsed.category is None


@pytest.mark.parametrize("product_id", ["../etc", "a/b", "", ".hidden", "x" * 129, 7])
def test_parse_direct_unsafe_product_id(product_id: object) -> None:
    with pytest.raises(errors.InvalidRequestError, match="Product id"):
        parse({"images": [FRONT_B64], "product_id": product_id})


def test_parse_direct_non_object_event() -> None:
    with pytest.raises(errors.InvalidRequestError, match="JSON object"):
        parse(["images"])


def multipart_event(files: dict[str, str], fields: dict[str, str] | None = None) -> dict[str, Any]:
    body = build_events.multipart_body(files, fields or {})
    content_type = f"multipart/form-data; boundary={build_events.MULTIPART_BOUNDARY}"
    return build_events.http_event(
        "/segment", base64.b64encode(body).decode(), content_type=content_type, is_base64=True
    )


@pytest.mark.parametrize("field", ["file0", "file01", "file02"])
def test_parse_multipart_misnamed_file_field_invalid(field: str) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        parse(multipart_event({"file1": "front.jpg", field: "back.jpg"}))
    assert info.value.code == "invalid_request"
    assert repr(field) in info.value.message
    assert "file1, file2, file3, file4" in info.value.message


def test_parse_multipart_records_field_names() -> None:
    parsed = parse(multipart_event({"file2": "front.jpg", "file4": "back.jpg"}))

    assert [image.label for image in parsed.images] == ["field file2 (image at index 0)", "field file4 (image at index 1)"]


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        (
            '{"images": ["aGVsbG8="], "threshold": 1' + "0" * 400 + "}",
            "invalid_threshold",
            "threshold must be a number",
        ),
        ('{"images": ["x"], "threshold": ' + "9" * 5000 + "}", "invalid_request", "more than 4300 digits"),
        ("[" * 100_000 + "]" * 100_000, "invalid_request", "too deeply"),
    ],
    ids=["400 digits", "5000 digits", "deep nesting"],
)
def test_parse_oversized_numbers_and_nesting_rejected(body: str, code: str, fragment: str) -> None:
    with pytest.raises(errors.ApiError) as info:
        parse(http_json(body))
    assert info.value.status_code == 400
    assert info.value.code == code
    assert fragment in info.value.message


def test_parse_threshold_huge_int_direct_invoke() -> None:
    with pytest.raises(errors.InvalidThresholdError) as info:
        parse({"images": [FRONT_B64], "threshold": 10**400})
    assert "threshold must be a number between 0 and 1" in info.value.message


@pytest.mark.parametrize(
    ("uri", "bucket"),
    [
        ("s3://BAD_Bucket!/x.jpg", "BAD_Bucket!"),
        ("s3://ab/x.jpg", "ab"),
        ("s3://my..bucket/x.jpg", "my..bucket"),
        ("s3://192.168.0.1/x.jpg", "192.168.0.1"),
        (
            "s3://arn:aws:s3:us-east-1:123456789012:accesspoint/my-ap/x.jpg",
            "arn:aws:s3:us-east-1:123456789012:accesspoint",
        ),
    ],
)
def test_parse_invalid_bucket_name_rejected(uri: str, bucket: str) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        parse(http_json({"images": [uri]}))
    assert repr(bucket) in info.value.message
    assert "3 to 63 lowercase letters" in info.value.message
    assert info.value.image_index == 0


def test_parse_valid_bucket_name_with_dots_accepted() -> None:
    parsed = parse(http_json({"images": ["s3://my.photos-2024/x.jpg"]}))

    assert parsed.images[0].s3 == S3Ref("my.photos-2024", "x.jpg")


@pytest.mark.parametrize("method", ["GET", "PUT", "OPTIONS"])
def test_parse_api_method_other_than_post_405(method: str) -> None:
    event = http_json({"images": [FRONT_B64]})
    event["requestContext"]["http"]["method"] = method

    with pytest.raises(errors.MethodNotAllowedError) as info:
        parse(event)
    assert info.value.status_code == 405
    assert info.value.headers == {"Allow": "POST"}
    assert repr(method) in info.value.message


@pytest.mark.parametrize("path", ["/", "/segments", "/segment/extra", "/v1/unknown"])
def test_parse_api_unknown_path_404(path: str) -> None:
    with pytest.raises(errors.RouteNotFoundError) as info:
        parse(http_json({"images": [FRONT_B64]}, path=path))
    assert info.value.status_code == 404
    assert "/segment or /predict" in info.value.message


@pytest.mark.parametrize("path", ["/segment", "/segment/", "/v1/segment", "/prod/api/segment"])
def test_parse_api_segment_route_with_prefixes(path: str) -> None:
    assert parse(http_json({"images": [FRONT_B64]}, path=path)).images[0].data == FRONT


def test_parse_rest_api_method_405() -> None:
    event = load_event("api-rest-json.json")
    event["httpMethod"] = "GET"

    with pytest.raises(errors.MethodNotAllowedError):
        parse(event)


def broken_api_events() -> list[tuple[str, dict[str, Any]]]:
    body_dict = http_json({"images": [FRONT_B64]})
    body_dict["body"] = {"images": [FRONT_B64]}
    no_raw_path = http_json({"images": [FRONT_B64]})
    del no_raw_path["rawPath"]
    rest_no_method = load_event("api-rest-json.json")
    del rest_no_method["httpMethod"]
    bad_headers = load_event("api-rest-json.json")
    bad_headers["headers"] = ["Content-Type"]
    return [
        ("body", body_dict),
        ("rawPath", no_raw_path),
        ("httpMethod", {"requestContext": {}}),
        ("httpMethod", rest_no_method),
        ("headers", bad_headers),
    ]


@pytest.mark.parametrize(("field", "event"), broken_api_events())
def test_parse_malformed_api_event_invalid(field: str, event: dict[str, Any]) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        parse(event)
    assert info.value.status_code == 400
    assert repr(field) in info.value.message


@pytest.mark.parametrize(
    "body",
    [b"", b"--OTHER\r\nContent-Disposition: form-data; name=\"file1\"\r\n\r\nabc\r\n--OTHER--\r\n"],
    ids=["empty-body", "other-boundary"],
)
def test_parse_multipart_unmatched_boundary(body: bytes) -> None:
    content_type = f"multipart/form-data; boundary={build_events.MULTIPART_BOUNDARY}"
    event = build_events.http_event("/segment", base64.b64encode(body).decode(), content_type=content_type, is_base64=True)

    with pytest.raises(errors.InvalidRequestError) as info:
        parse(event)

    message = info.value.message
    assert f"no part delimited by the boundary {build_events.MULTIPART_BOUNDARY!r}" in message
    assert f"--{build_events.MULTIPART_BOUNDARY}--" in message
    assert "file1, file2, file3, file4, threshold, category" in message


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (b"Content-Type: image/jpeg\r\n", "(Missing Content-Disposition segment header)"),
        (b"Content-Disposition: attachment; name=\"file1\"\r\n", "(Invalid Content-Disposition segment header: Wrong type)"),
    ],
    ids=["no-disposition", "attachment"],
)
def test_multipart_bad_part_header_reason(headers: bytes, reason: str) -> None:
    # GIVEN a body with the right boundary whose only part has an unusable header
    boundary = build_events.MULTIPART_BOUNDARY.encode()
    body = b"--" + boundary + b"\r\n" + headers + b"\r\nabc\r\n--" + boundary + b"--\r\n"
    content_type = f"multipart/form-data; boundary={build_events.MULTIPART_BOUNDARY}"
    event = build_events.http_event("/segment", base64.b64encode(body).decode(), content_type=content_type, is_base64=True)

    with pytest.raises(errors.InvalidRequestError) as info:
        parse(event)

    # THEN the message carries the parser's reason and the expected header
    assert reason in info.value.message
    assert "'Content-Disposition: form-data; name=...' header" in info.value.message


def test_parse_multipart_too_many_parts() -> None:
    boundary = build_events.MULTIPART_BOUNDARY
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="x{{}}"\r\n\r\nv\r\n'
    body = "".join(part.format(n) for n in range(13)) + f"--{boundary}--\r\n"
    event = build_events.http_event(
        "/segment", body, content_type=f"multipart/form-data; boundary={boundary}", is_base64=False
    )

    with pytest.raises(errors.InvalidRequestError) as info:
        parse(event)

    assert "more than 12 parts" in info.value.message


def test_parse_null_content_type_is_json() -> None:
    event = http_json({"images": [FRONT_B64]})
    event["headers"]["content-type"] = None

    parsed = parse(event)

    assert [image.data for image in parsed.images] == [FRONT]


def test_parse_data_uri_upper_case() -> None:
    parsed = parse(http_json({"images": [f"DATA:image/JPEG;BASE64,{FRONT_B64}"]}))

    assert [image.data for image in parsed.images] == [FRONT]


@pytest.mark.parametrize("threshold", ["0.1_0", "1_0e-1", "inf", "infinity", "0x1"])
def test_parse_threshold_non_decimal_invalid(threshold: str) -> None:
    with pytest.raises(errors.InvalidThresholdError) as info:
        parse(http_json({"images": [FRONT_B64], "threshold": threshold}))

    assert repr(threshold) in info.value.message


@pytest.mark.parametrize("threshold", [-0.0, "-0.0", "-0"])
def test_parse_threshold_negative_zero_is_zero(threshold: object) -> None:
    value = parse(http_json({"images": [FRONT_B64], "threshold": threshold})).threshold

    assert value == 0.0
    assert math.copysign(1.0, value) == 1.0


def test_parse_multipart_lf_line_breaks() -> None:
    boundary = build_events.MULTIPART_BOUNDARY
    body = f'--{boundary}\nContent-Disposition: form-data; name="file1"\n\nabc\n--{boundary}--\n'
    event = build_events.http_event(
        "/segment", body, content_type=f"multipart/form-data; boundary={boundary}", is_base64=False
    )

    with pytest.raises(errors.InvalidRequestError) as info:
        parse(event)

    assert "must end with CRLF" in info.value.message
