"""lambda_handler end to end over the sample events, with S3 mocked by moto."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
from PIL import Image

from handler import app, errors, pipeline, response, segmenter, storage
from handler.app import lambda_handler
from handler.segmenter import DEFAULT_MODEL_PATH, Segmenter
from tests.conftest import INPUT_BUCKET, OUTPUT_BUCKET, SAMPLES_DIR, build_events, event_names, list_keys, load_event

FRONT_B64 = base64.b64encode((SAMPLES_DIR / "front.jpg").read_bytes()).decode()
MANIFEST_IMAGES = ("front.jpg", "back.jpg", "detail.jpg", "packshot.png")


def sample_size(name: str) -> tuple[int, int]:
    with Image.open(SAMPLES_DIR / name) as image:
        return image.size


def png_from_s3(client: Any, key: str) -> Image.Image:
    body = client.get_object(Bucket=OUTPUT_BUCKET, Key=key)["Body"].read()
    return Image.open(io.BytesIO(body))


def api_json(body: object, *, content_type: str = "application/json") -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    return build_events.http_event("/segment", text, content_type=content_type, is_base64=False)


def fail_put_after(client: Any, successes: int, code: str = "InternalError", status: int | None = None) -> list[str]:
    """Make PutObject on the handler's client fail with S3 error `code` after `successes` calls; return the keys attempted."""
    attempted: list[str] = []
    response: dict[str, Any] = {"Error": {"Code": code, "Message": "injected"}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status}

    def hook(params: dict[str, Any], **_: Any) -> None:
        attempted.append(params["Key"])
        if len(attempted) > successes:
            raise ClientError(response, "PutObject")  # type: ignore[arg-type]  # a partial botocore response

    client.meta.events.register("before-parameter-build.s3.PutObject", hook)
    return attempted


@pytest.mark.parametrize("name", event_names())
def test_handler_every_sample_event_succeeds(name: str, s3: Any, lambda_context: Any) -> None:
    result = lambda_handler(load_event(name), lambda_context)

    if name.startswith("api-"):
        assert result["statusCode"] == 200, result["body"][:500]
    elif name == "s3-manifest.json":
        assert [entry.get("error") for entry in result["manifests"]] == [None]
    elif name == "s3-batch.json":
        assert [task["resultCode"] for task in result["results"]] == ["Succeeded"]
    else:
        assert "error" not in result
        assert result["product_id"] == "sample-direct"


def test_s3_manifest_round_trip(s3: Any, lambda_context: Any) -> None:
    # GIVEN the input bucket seeded with sample-001's four photos and manifest
    inputs_before = list_keys(s3, INPUT_BUCKET)
    attempted = fail_put_after(storage.s3_client(), successes=100)

    # WHEN the upload notification arrives
    result = lambda_handler(load_event("s3-manifest.json"), lambda_context)

    # THEN masks, cutouts and result.json land under results/sample-001/, result.json last
    folder = "results/sample-001/"
    expected = sorted(
        [f"{folder}{kind}-{k}.png" for kind in ("mask", "cutout") for k in range(4)] + [f"{folder}result.json"]
    )
    assert list_keys(s3, OUTPUT_BUCKET) == expected
    assert list_keys(s3, INPUT_BUCKET) == inputs_before
    assert attempted[-1] == f"{folder}result.json"
    assert result["manifests"][0]["result_uri"] == f"s3://{OUTPUT_BUCKET}/{folder}result.json"

    # AND every mask is 8-bit L at its own photo's size, every cutout RGBA
    stored = json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key=f"{folder}result.json")["Body"].read())
    assert stored["product_id"] == "sample-001"
    assert stored["category"] == "top"
    for index, name in enumerate(MANIFEST_IMAGES):
        mask = png_from_s3(s3, f"{folder}mask-{index}.png")
        cutout = png_from_s3(s3, f"{folder}cutout-{index}.png")
        assert (mask.mode, mask.size) == ("L", sample_size(name))
        assert (cutout.mode, cutout.size) == ("RGBA", sample_size(name))
        assert (stored["images"][index]["width"], stored["images"][index]["height"]) == sample_size(name)
        assert stored["images"][index]["mask"]["key"] == f"{folder}mask-{index}.png"


def test_s3_manifest_without_output_bucket_writes_beside_input(
    s3: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OUTPUT_BUCKET")

    result = lambda_handler(load_event("s3-manifest.json"), lambda_context)

    assert result["manifests"][0]["result_uri"] == f"s3://{INPUT_BUCKET}/results/sample-001/result.json"
    assert list_keys(s3, OUTPUT_BUCKET) == []


def test_s3_write_failure_leaves_nothing(s3: Any, lambda_context: Any) -> None:
    # GIVEN S3 that accepts three writes and then fails
    attempted = fail_put_after(storage.s3_client(), successes=3)

    # WHEN the manifest is processed
    with pytest.raises(errors.TemporaryFailure, match=r"incoming/sample-001/manifest\.json"):
        lambda_handler(load_event("s3-manifest.json"), lambda_context)

    # THEN the handler raised so that Lambda retries, after removing the three files it wrote
    assert len(attempted) == 4
    assert list_keys(s3, OUTPUT_BUCKET) == []


def test_s3_missing_output_bucket_reported_not_retried(
    s3: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN OUTPUT_BUCKET naming a bucket that does not exist
    monkeypatch.setenv("OUTPUT_BUCKET", "fashion-seg-no-such-bucket")

    # WHEN a manifest upload triggers the function
    result = lambda_handler(load_event("s3-manifest.json"), lambda_context)

    # THEN the reply names the bucket and the fix, and the handler did not raise for a retry
    error = result["manifests"][0]["error"]
    assert error["code"] == "output_not_writable"
    assert "'fashion-seg-no-such-bucket'" in error["message"]
    assert "NoSuchBucket" in error["message"]
    assert "OUTPUT_BUCKET" in error["message"]


def test_s3_write_access_denied_cleans_up_not_retried(s3: Any, lambda_context: Any) -> None:
    # GIVEN S3 that accepts two writes and then denies access
    attempted = fail_put_after(storage.s3_client(), successes=2, code="AccessDenied")

    result = lambda_handler(load_event("s3-manifest.json"), lambda_context)

    assert result["manifests"][0]["error"]["code"] == "output_not_writable"
    assert len(attempted) == 3
    assert list_keys(s3, OUTPUT_BUCKET) == []


def test_batch_missing_output_bucket_permanent(s3: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPUT_BUCKET", "fashion-seg-no-such-bucket")

    result = lambda_handler(load_event("s3-batch.json"), lambda_context)

    assert result["results"][0]["resultCode"] == "PermanentFailure"
    assert result["results"][0]["resultString"].startswith("output_not_writable: ")


def test_api_missing_output_bucket_is_500(s3: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPUT_BUCKET", "fashion-seg-no-such-bucket")

    result = lambda_handler(load_event("api-http-json.json"), lambda_context)

    assert result["statusCode"] == 500
    assert json.loads(result["body"])["error"]["code"] == "output_not_writable"


@pytest.mark.parametrize(
    ("code", "status", "retried"),
    [
        ("KMS.DisabledException", 400, False),
        ("InvalidAccessKeyId", 403, False),
        ("RequestTimeout", 400, True),
        ("Throttling", 400, True),
        ("TooManyRequestsException", 429, True),
        ("SlowDown", 503, True),
        ("InternalError", 500, True),
    ],
)
def test_s3_write_error_retried_by_status(s3: Any, lambda_context: Any, code: str, status: int, retried: bool) -> None:
    fail_put_after(storage.s3_client(), successes=1, code=code, status=status)

    if retried:
        with pytest.raises(errors.TemporaryFailure):
            lambda_handler(load_event("s3-manifest.json"), lambda_context)
    else:
        result = lambda_handler(load_event("s3-manifest.json"), lambda_context)
        assert result["manifests"][0]["error"]["code"] == "output_not_writable"
        assert code in result["manifests"][0]["error"]["message"]
    assert list_keys(s3, OUTPUT_BUCKET) == []


def test_s3_unwritable_input_bucket_named_as_source(
    s3: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OUTPUT_BUCKET")
    fail_put_after(storage.s3_client(), successes=0, code="AccessDenied", status=403)

    result = lambda_handler(load_event("s3-manifest.json"), lambda_context)

    message = result["manifests"][0]["error"]["message"]
    assert f"bucket '{INPUT_BUCKET}' (the manifest's bucket, as OUTPUT_BUCKET is unset)" in message


def test_batch_manifest_under_output_prefix_permanent(
    s3: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN results beside the input under incoming/res, and a product whose id starts with "res"
    monkeypatch.delenv("OUTPUT_BUCKET")
    monkeypatch.setenv("OUTPUT_PREFIX", "incoming/res")
    event = load_event("s3-batch.json")
    event["tasks"][0]["s3Key"] = "incoming/resort-dress/manifest.json"

    result = lambda_handler(event, lambda_context)

    # THEN the task fails as an upload of that key would be skipped, naming the prefix
    task = result["results"][0]
    assert task["resultCode"] == "PermanentFailure"
    assert "OUTPUT_PREFIX 'incoming/res'" in task["resultString"]


def test_s3_invalid_thread_count_not_retried(s3: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke_with_thread_count(monkeypatch, lambda_context, "s3-manifest.json", "zero")

    assert result["manifests"][0]["error"]["code"] == "model_error"
    assert "ORT_THREADS" in result["manifests"][0]["error"]["message"]


def test_api_results_inline_without_output_bucket(lambda_context: Any) -> None:
    result = lambda_handler(load_event("api-http-json.json"), lambda_context)

    body = json.loads(result["body"])
    assert result["statusCode"] == 200
    for image, name in zip(body["images"], ("front.jpg", "back.jpg"), strict=True):
        mask = Image.open(io.BytesIO(base64.b64decode(image["mask"]["png_base64"])))
        assert (mask.mode, mask.size) == ("L", sample_size(name))
        assert image["status"] in ("ok", "empty")
    assert body["model"]["name"] == "fashion-seg"
    assert body["category"] == "top"


def test_api_results_stored_with_output_bucket(s3: Any, lambda_context: Any) -> None:
    result = lambda_handler(load_event("api-rest-json.json"), lambda_context)

    body = json.loads(result["body"])
    product_id = body["product_id"]
    assert list_keys(s3, OUTPUT_BUCKET) == [
        f"results/{product_id}/{name}" for name in ("cutout-0.png", "mask-0.png", "result.json")
    ]
    assert body["images"][0]["mask"] == {
        "s3_uri": f"s3://{OUTPUT_BUCKET}/results/{product_id}/mask-0.png",
        "key": f"results/{product_id}/mask-0.png",
    }


BAD_REQUESTS = [
    (
        "not an image",
        {"images": [base64.b64encode(b"hello, not a photo").decode()]},
        400,
        "image_not_decodable",
        "could not be decoded",
    ),
    ("zero bytes", {"images": [FRONT_B64, ""]}, 400, "image_not_decodable", "0 bytes"),
    ("too many", {"images": [FRONT_B64] * 5}, 400, "too_many_images", "Received 5 images"),
    ("bad base64", {"images": ["@@@@"]}, 400, "invalid_request", "'@@@@'"),
    ("unknown category", {"images": [FRONT_B64], "category": "spaceship"}, 400, "unknown_category", "spaceship"),
    ("threshold range", {"images": [FRONT_B64], "threshold": 7}, 400, "invalid_threshold", "7"),
    ("missing images", {"category": "top"}, 400, "invalid_request", "'images'"),
    ("invalid json", '{"images": [', 400, "invalid_request", "not valid JSON"),
    ("empty body", "", 400, "invalid_request", "request body is empty"),
    ("blank body", " \n", 400, "invalid_request", "request body is empty"),
    (
        "s3 key missing",
        {"images": [f"s3://{INPUT_BUCKET}/incoming/nope.jpg"]},
        404,
        "image_not_found",
        "s3://fashion-seg-input/incoming/nope.jpg",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "code", "fragment"), BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS]
)
def test_api_bad_input_rejected_nothing_written(
    case: str, body: object, status: int, code: str, fragment: str, s3: Any, lambda_context: Any
) -> None:
    result = lambda_handler(api_json(body), lambda_context)

    error = json.loads(result["body"])["error"]
    assert result["statusCode"] == status
    assert error["code"] == code
    assert fragment in error["message"]
    assert list_keys(s3, OUTPUT_BUCKET) == []


@pytest.mark.parametrize(
    "value", ["my-results", "Legacy_Bucket.us-east-1", "arn:aws:s3:eu-west-1:123456789012:accesspoint/results-ap"]
)
def test_output_bucket_accepts_names_and_access_points(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OUTPUT_BUCKET", value)

    assert storage.output_bucket() == value


def test_parameter_rejected_by_botocore_is_permanent() -> None:
    from botocore.exceptions import ParamValidationError

    assert storage.is_permanent_write_error(ParamValidationError(report="Invalid bucket name"))


def test_lone_surrogate_key_rejected(s3: Any, lambda_context: Any) -> None:
    direct = lambda_handler({"images": [f"s3://{INPUT_BUCKET}/incoming/\ud800.jpg"]}, lambda_context)
    event = load_event("s3-batch.json")
    event["tasks"][0]["s3Key"] = "incoming/\ud800/manifest.json"
    batch = lambda_handler(event, lambda_context)

    assert direct["error"]["code"] == "invalid_request"
    assert direct["error"]["image_index"] == 0
    assert batch["results"][0]["resultCode"] == "PermanentFailure"
    assert "not valid Unicode" in batch["results"][0]["resultString"]


def test_api_json_body_with_byte_order_mark(lambda_context: Any) -> None:
    result = lambda_handler(api_json("\ufeff" + json.dumps({"images": [FRONT_B64]})), lambda_context)

    assert result["statusCode"] == 200


@pytest.mark.parametrize(
    "value",
    [
        "s3://fashion-seg-output",
        "fashion-seg-output/results",
        "bad bucket",
        "arn:aws:s3:::b",
        "arn:foo:s3:us-east-1:123456789012:accesspoint/results-ap",
        "arn:aws:s3:us-east-1:123456789012:accesspoint/a/b",
    ],
)
def test_malformed_output_bucket_not_retried(
    s3: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OUTPUT_BUCKET", value)

    api = lambda_handler(load_event("api-http-json.json"), lambda_context)
    notification = lambda_handler(load_event("s3-manifest.json"), lambda_context)
    batch = lambda_handler(load_event("s3-batch.json"), lambda_context)

    assert api["statusCode"] == 500
    assert json.loads(api["body"])["error"]["code"] == "output_not_writable"
    assert "OUTPUT_BUCKET" in json.loads(api["body"])["error"]["message"]
    assert notification["error"]["code"] == "output_not_writable"
    assert batch["results"][0]["resultCode"] == "PermanentFailure"
    assert list_keys(s3, OUTPUT_BUCKET) == []


def test_api_bad_image_carries_index(lambda_context: Any) -> None:
    body = {"images": [FRONT_B64, base64.b64encode(b"GIF89a-broken").decode()]}

    error = json.loads(lambda_handler(api_json(body), lambda_context)["body"])["error"]

    assert error["image_index"] == 1
    assert error["message"].startswith("Image at index 1 could not be decoded")


def test_api_empty_image_not_decodable(lambda_context: Any) -> None:
    result = lambda_handler(api_json({"images": [""]}), lambda_context)

    error = json.loads(result["body"])["error"]
    assert result["statusCode"] == 400
    assert error["code"] == "image_not_decodable"
    assert error["image_index"] == 0
    assert "0 bytes" in error["message"]


def test_multipart_empty_file_names_field(lambda_context: Any) -> None:
    body = build_events.multipart_body({"file1": "front.jpg"}, {"file4": ""})
    content_type = f"multipart/form-data; boundary={build_events.MULTIPART_BOUNDARY}"
    event = build_events.http_event(
        "/segment", base64.b64encode(body).decode(), content_type=content_type, is_base64=True
    )

    result = lambda_handler(event, lambda_context)

    error = json.loads(result["body"])["error"]
    assert result["statusCode"] == 400
    assert error["code"] == "image_not_decodable"
    assert error["image_index"] == 1
    assert error["message"].startswith("Field file4 (image at index 1) could not be decoded")
    assert "is empty (0 bytes)" in error["message"]


def test_api_wrong_content_type_415(lambda_context: Any) -> None:
    result = lambda_handler(api_json("images=1", content_type="text/plain"), lambda_context)

    assert result["statusCode"] == 415
    assert "'text/plain'" in json.loads(result["body"])["error"]["message"]


def test_s3_access_denied_403(s3: Any, lambda_context: Any) -> None:
    def deny(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "GetObject")

    storage.s3_client().meta.events.register("before-parameter-build.s3.GetObject", deny)

    result = lambda_handler(load_event("api-s3-uri.json"), lambda_context)

    error = json.loads(result["body"])["error"]
    assert result["statusCode"] == 403
    assert error["code"] == "image_access_denied"
    assert "s3:GetObject" in error["message"]
    assert error["image_index"] == 0


def test_unexpected_error_500_detail_only_in_log(
    lambda_context: Any, monkeypatch: pytest.MonkeyPatch, captured_logs: Any
) -> None:
    def explode(*_: Any, **__: Any) -> None:
        raise RuntimeError("secret detail 1234")

    monkeypatch.setattr(pipeline, "segment_set", explode)

    result = lambda_handler(load_event("api-rest-json.json"), lambda_context)

    assert result["statusCode"] == 500
    assert "secret detail" not in result["body"]
    failures = [line for line in captured_logs() if line["message"] == "request_failed"]
    assert len(failures) == 1
    assert "secret detail 1234" in failures[0]["exception"]


def test_model_load_failure_is_model_error(lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> None:
        raise FileNotFoundError("model/fashion-seg.int8.onnx")

    monkeypatch.setattr(app, "get_segmenter", missing)

    result = lambda_handler(load_event("direct.json"), lambda_context)

    assert result["error"]["code"] == "model_error"
    assert "MODEL_PATH" in result["error"]["message"]


class FailingSession:
    """An onnxruntime session stand-in whose run raises, as onnxruntime does on a runtime failure."""

    def run(self, *_: Any, **__: Any) -> None:
        raise ort_state.Fail("injected run failure")


def use_failing_model(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Segmenter.from_path(DEFAULT_MODEL_PATH, threads=1)
    monkeypatch.setattr(model, "_session", FailingSession())
    monkeypatch.setattr(app, "get_segmenter", lambda: model)


def test_model_run_failure_is_model_error(lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    use_failing_model(monkeypatch)

    result = lambda_handler(load_event("direct.json"), lambda_context)

    assert result["error"]["code"] == "model_error"
    assert "failed to run" in result["error"]["message"]
    assert "injected" not in result["error"]["message"]


def test_s3_model_run_failure_retried(s3: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    use_failing_model(monkeypatch)

    with pytest.raises(errors.TemporaryFailure, match=r"incoming/sample-001/manifest\.json"):
        lambda_handler(load_event("s3-manifest.json"), lambda_context)


def invoke_with_thread_count(monkeypatch: pytest.MonkeyPatch, lambda_context: Any, event_name: str, threads: str) -> Any:
    """Run the handler on a sample event with ORT_THREADS set, loading the model afresh before and after."""
    monkeypatch.setenv("ORT_THREADS", threads)
    segmenter.get_segmenter.cache_clear()
    try:
        return lambda_handler(load_event(event_name), lambda_context)
    finally:
        segmenter.get_segmenter.cache_clear()


def test_invalid_thread_count_is_model_error(lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke_with_thread_count(monkeypatch, lambda_context, "direct.json", "zero")

    assert result["error"]["code"] == "model_error"
    assert "ORT_THREADS='zero'" in result["error"]["message"]
    assert "MODEL_PATH" not in result["error"]["message"]


def test_logs_one_line_per_image_without_image_data(lambda_context: Any, captured_logs: Any) -> None:
    lambda_handler(load_event("api-http-json.json"), lambda_context)

    lines = captured_logs()
    images = [line for line in lines if line["message"] == "image_segmented"]
    assert [line["image_index"] for line in images] == [0, 1]
    assert {"height", "width", "mask_fraction", "confidence", "decode_ms"} <= set(images[0])
    assert [line["level"] for line in images] == [
        "INFO" if 0.01 <= line["mask_fraction"] <= 0.95 else "WARNING" for line in images
    ]
    assert sum(line["message"] == "request_completed" for line in lines) == 1
    assert all(line["function_request_id"] == lambda_context.aws_request_id for line in lines)
    assert FRONT_B64[:64] not in json.dumps(lines)


def test_batch_missing_manifest_permanent_failure(s3: Any, lambda_context: Any) -> None:
    event = load_event("s3-batch.json")
    event["tasks"][0]["s3Key"] = "incoming/absent/manifest.json"

    result = lambda_handler(event, lambda_context)

    task = result["results"][0]
    assert task["resultCode"] == "PermanentFailure"
    assert task["resultString"].startswith("image_not_found:")
    assert "s3://fashion-seg-input/incoming/absent/manifest.json" in task["resultString"]
    assert result["invocationId"] == event["invocationId"]


def test_batch_photo_collision_rejected(
    s3: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN results written beside the input, and a manifest of product p9 that lists, by URI,
    # photos in p9's result folder named like the outputs the run writes (mask-0.png) and deletes (mask-3.png)
    monkeypatch.delenv("OUTPUT_BUCKET")
    folder = "results/p9/"
    front = (SAMPLES_DIR / "front.jpg").read_bytes()
    for name in ("mask-3.png", "mask-0.png"):
        s3.put_object(Bucket=INPUT_BUCKET, Key=folder + name, Body=front)
    images = [f"s3://{INPUT_BUCKET}/{folder}{name}" for name in ("mask-3.png", "mask-0.png")]
    s3.put_object(Bucket=INPUT_BUCKET, Key="incoming/p9/manifest.json", Body=json.dumps({"images": images}))
    before = {key: s3.get_object(Bucket=INPUT_BUCKET, Key=key)["Body"].read() for key in list_keys(s3, INPUT_BUCKET)}
    event = load_event("s3-batch.json")
    event["tasks"][0]["s3Key"] = "incoming/p9/manifest.json"

    # WHEN Batch Operations runs the manifest
    result = lambda_handler(event, lambda_context)

    # THEN the task fails permanently, naming the first colliding photo, and no object changed
    task = result["results"][0]
    assert task["resultCode"] == "PermanentFailure"
    assert task["resultString"].startswith("invalid_request:")
    assert f"s3://{INPUT_BUCKET}/{folder}mask-3.png" in task["resultString"]
    after = {key: s3.get_object(Bucket=INPUT_BUCKET, Key=key)["Body"].read() for key in list_keys(s3, INPUT_BUCKET)}
    assert after == before


@pytest.mark.parametrize("key", ["incoming/a/sample-002/manifest.json", "other/sample-002/manifest.json", "incoming/manifest.json"])
def test_batch_manifest_key_outside_layout_permanent(s3: Any, lambda_context: Any, key: str) -> None:
    # GIVEN a task whose manifest key is not incoming/<product-id>/manifest.json
    event = load_event("s3-batch.json")
    event["tasks"][0]["s3Key"] = key

    result = lambda_handler(event, lambda_context)

    # THEN it fails permanently with the expected form, and nothing is written
    task = result["results"][0]
    assert task["resultCode"] == "PermanentFailure"
    assert task["resultString"].startswith("invalid_request: ")
    assert "incoming/<product-id>/manifest.json" in task["resultString"]
    assert list_keys(s3, OUTPUT_BUCKET) == []


def test_direct_photo_collision_400(s3: Any, lambda_context: Any) -> None:
    # GIVEN a direct invocation whose photo sits in the output bucket under the key of its own future mask
    key = "results/sku-7/mask-0.png"
    s3.put_object(Bucket=OUTPUT_BUCKET, Key=key, Body=(SAMPLES_DIR / "front.jpg").read_bytes())

    result = lambda_handler({"images": [f"s3://{OUTPUT_BUCKET}/{key}"], "product_id": "sku-7"}, lambda_context)

    assert result["error"]["code"] == "invalid_request"
    assert result["error"]["image_index"] == 0
    assert list_keys(s3, OUTPUT_BUCKET) == [key]


def test_direct_photo_in_result_folder_ok(s3: Any, lambda_context: Any) -> None:
    key = "results/sku-8/front.jpg"
    s3.put_object(Bucket=OUTPUT_BUCKET, Key=key, Body=(SAMPLES_DIR / "front.jpg").read_bytes())

    result = lambda_handler({"images": [f"s3://{OUTPUT_BUCKET}/{key}"], "product_id": "sku-8"}, lambda_context)

    assert "error" not in result
    assert key in list_keys(s3, OUTPUT_BUCKET)


def test_batch_storage_failure_temporary(s3: Any, lambda_context: Any) -> None:
    fail_put_after(storage.s3_client(), successes=0)

    result = lambda_handler(load_event("s3-batch.json"), lambda_context)

    assert result["results"][0]["resultCode"] == "TemporaryFailure"
    assert list_keys(s3, OUTPUT_BUCKET) == []


def test_s3_notification_for_own_output_ignored(s3: Any, lambda_context: Any) -> None:
    event = build_events.s3_notification_event("results/sample-001/result.json")

    result = lambda_handler(event, lambda_context)

    assert result == {"manifests": [], "ignored": 1, "malformed": 0}
    assert list_keys(s3, OUTPUT_BUCKET) == []


def flat_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, format="PNG")
    return buffer.getvalue()


def test_api_total_pixels_over_limit_413(lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN four flat 7000 x 7000 PNGs: each under the 50 MP photo limit, 196 MP together
    png = base64.b64encode(flat_png(7000, 7000)).decode()

    def fail_decode(*_: Any, **__: Any) -> None:
        raise AssertionError("no photo may be decoded once the request is over the pixel limit")

    monkeypatch.setattr(app.imaging, "decode_image", fail_decode)

    # WHEN they are sent in one request
    result = lambda_handler(api_json({"images": [png] * 4}), lambda_context)

    # THEN the request is rejected from the headers alone, naming the total and the limit
    error = json.loads(result["body"])["error"]
    assert result["statusCode"] == 413
    assert error["code"] == "image_too_large"
    assert "196.0 MP" in error["message"]
    assert f"{app.MAX_REQUEST_PIXELS / 1e6:.0f} MP are accepted per request" in error["message"]


def test_api_tiny_photo_rejected(s3: Any, lambda_context: Any) -> None:
    # GIVEN a request whose second photo is 64 x 8 pixels: wide enough, too short
    icon = base64.b64encode(flat_png(64, app.MIN_IMAGE_SIDE // 4)).decode()

    # WHEN it is sent
    result = lambda_handler(api_json({"images": [FRONT_B64, icon]}), lambda_context)

    # THEN it is rejected naming the photo, its size and the minimum, and nothing is written
    error = json.loads(result["body"])["error"]
    assert result["statusCode"] == 400
    assert error["code"] == "image_too_small"
    assert error["image_index"] == 1
    assert error["message"].startswith(f"Image at index 1 is 64 x {app.MIN_IMAGE_SIDE // 4} pixels")
    assert f"at least {app.MIN_IMAGE_SIDE} pixels" in error["message"]
    assert list_keys(s3, OUTPUT_BUCKET) == []


def test_api_min_side_photo_accepted(lambda_context: Any) -> None:
    side = app.MIN_IMAGE_SIDE
    square = base64.b64encode(flat_png(side, side)).decode()

    result = lambda_handler(api_json({"images": [square]}), lambda_context)

    assert result["statusCode"] == 200
    image = json.loads(result["body"])["images"][0]
    assert image["width"] == side
    assert image["height"] == side


def test_api_photo_over_limit_named_by_index(lambda_context: Any) -> None:
    big = base64.b64encode(flat_png(8000, 7000)).decode()

    result = lambda_handler(api_json({"images": [FRONT_B64, big]}), lambda_context)

    error = json.loads(result["body"])["error"]
    assert result["statusCode"] == 413
    assert error["image_index"] == 1
    assert error["message"].startswith("Image at index 1 is 8000 x 7000 pixels (56.0 MP); at most 50.0 MP are accepted.")


def test_api_total_pixels_at_limit_decodes(lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    front_pixels = sample_size("front.jpg")[0] * sample_size("front.jpg")[1]
    monkeypatch.setattr(app, "MAX_REQUEST_PIXELS", 2 * front_pixels)

    accepted = lambda_handler(api_json({"images": [FRONT_B64] * 2}), lambda_context)
    rejected = lambda_handler(api_json({"images": [FRONT_B64] * 3}), lambda_context)

    assert accepted["statusCode"] == 200
    assert rejected["statusCode"] == 413


def write_manifest(client: Any, images: list[str]) -> None:
    body = json.dumps({"images": images, "category": "top"}).encode()
    client.put_object(Bucket=INPUT_BUCKET, Key="incoming/sample-001/manifest.json", Body=body)


def test_s3_rerun_with_fewer_photos_removes_stale_files(s3: Any, lambda_context: Any) -> None:
    # GIVEN a completed run of sample-001 with four photos
    folder = "results/sample-001/"
    lambda_handler(load_event("s3-manifest.json"), lambda_context)
    assert len(list_keys(s3, OUTPUT_BUCKET)) == 9

    # WHEN the manifest is replaced by one with two photos and processed again
    write_manifest(s3, list(MANIFEST_IMAGES[:2]))
    result = lambda_handler(load_event("s3-manifest.json"), lambda_context)

    # THEN only the two photos' files and result.json remain, and result.json lists exactly them
    assert result["manifests"][0].get("error") is None
    expected = sorted(
        [f"{folder}{kind}-{k}.png" for kind in ("mask", "cutout") for k in range(2)] + [f"{folder}result.json"]
    )
    assert list_keys(s3, OUTPUT_BUCKET) == expected
    stored = json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key=f"{folder}result.json")["Body"].read())
    assert [image["mask"]["key"] for image in stored["images"]] == [f"{folder}mask-0.png", f"{folder}mask-1.png"]


def test_s3_failed_rerun_removes_old_result_json(s3: Any, lambda_context: Any) -> None:
    # GIVEN a completed run of sample-001
    lambda_handler(load_event("s3-manifest.json"), lambda_context)
    assert "results/sample-001/result.json" in list_keys(s3, OUTPUT_BUCKET)

    # WHEN a re-run fails after writing three files
    attempted = fail_put_after(storage.s3_client(), successes=3)
    with pytest.raises(errors.TemporaryFailure):
        lambda_handler(load_event("s3-manifest.json"), lambda_context)

    # THEN no result.json is left to point at files this run replaced or deleted, and the
    # three files the failed run wrote are gone
    keys = list_keys(s3, OUTPUT_BUCKET)
    assert len(attempted) == 4
    assert "results/sample-001/result.json" not in keys
    assert not set(attempted[:3]) & set(keys)


def fail_delete(client: Any, key_suffix: str, code: str = "AccessDenied") -> None:
    """Make DeleteObject on the handler's client fail with S3 error `code` for keys ending in key_suffix."""

    def hook(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].endswith(key_suffix):
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, "DeleteObject")

    client.meta.events.register("before-parameter-build.s3.DeleteObject", hook)


@pytest.mark.parametrize(
    ("code", "error_class"),
    [("SlowDown", errors.StorageError), ("AccessDenied", errors.OutputNotWritableError)],
)
def test_storage_old_marker_not_deleted_keeps_s3_code(s3: Any, code: str, error_class: type[errors.ApiError]) -> None:
    fail_delete(storage.s3_client(), "result.json", code)
    files = [storage.OutputFile("results/p/mask-0.png", b"png", "image/png")]

    with pytest.raises(error_class) as info:
        storage.replace_result_set(OUTPUT_BUCKET, files, marker_key="results/p/result.json", stale_keys=[])

    assert code in info.value.message
    assert f"s3://{OUTPUT_BUCKET}/results/p/result.json" in info.value.message
    assert isinstance(info.value.__cause__, ClientError)
    assert list_keys(s3, OUTPUT_BUCKET) == []


def test_s3_stale_file_not_deleted_logs_s3_code(s3: Any, lambda_context: Any, captured_logs: Any) -> None:
    # GIVEN a completed run of sample-001 with four photos, and S3 refusing to delete mask-3.png
    lambda_handler(load_event("s3-manifest.json"), lambda_context)
    fail_delete(storage.s3_client(), "mask-3.png")

    # WHEN a re-run with two photos leaves mask-3.png behind
    write_manifest(s3, list(MANIFEST_IMAGES[:2]))
    result = lambda_handler(load_event("s3-manifest.json"), lambda_context)

    # THEN the run succeeds and its warning names the file and the S3 error code
    assert result["manifests"][0].get("error") is None
    warnings = [line for line in captured_logs() if line["message"] == "stale_results_not_deleted"]
    assert len(warnings) == 1
    assert warnings[0]["uris"] == [f"s3://{OUTPUT_BUCKET}/results/sample-001/mask-3.png"]
    assert warnings[0]["error_codes"] == ["AccessDenied"]


def test_s3_stored_result_json_equals_returned_document(s3: Any, lambda_context: Any) -> None:
    result = lambda_handler(load_event("s3-manifest.json"), lambda_context)

    returned = {key: value for key, value in result["manifests"][0].items() if key != "manifest"}
    stored = json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key="results/sample-001/result.json")["Body"].read())
    assert stored == returned
    assert stored["result_uri"] == f"s3://{OUTPUT_BUCKET}/results/sample-001/result.json"


def test_s3_client_error_4xx_reported_not_retried(s3: Any, lambda_context: Any) -> None:
    s3.delete_object(Bucket=INPUT_BUCKET, Key="incoming/sample-001/front.jpg")

    result = lambda_handler(load_event("s3-manifest.json"), lambda_context)

    assert result["manifests"][0]["error"]["code"] == "image_not_found"


def test_s3_malformed_records_skipped_valid_manifest_runs(s3: Any, lambda_context: Any, captured_logs: Any) -> None:
    # GIVEN a notification whose first record lacks object.key and whose second is not from S3
    event = load_event("s3-manifest.json")
    valid = event["Records"][0]
    no_key = json.loads(json.dumps(valid))
    del no_key["s3"]["object"]["key"]
    event["Records"] = [no_key, {"eventSource": "aws:sqs", "body": "{}"}, valid]

    # WHEN it arrives
    result = lambda_handler(event, lambda_context)

    # THEN the valid manifest ran and both broken records were counted and logged as warnings
    assert [entry.get("error") for entry in result["manifests"]] == [None]
    assert result["malformed"] == 2
    warnings = [line for line in captured_logs() if line["message"] == "s3_record_malformed"]
    assert [line["level"] for line in warnings] == ["WARNING", "WARNING"]
    assert "s3.object.key" in warnings[0]["problem"]


def test_s3_notification_without_records_400(lambda_context: Any) -> None:
    result = lambda_handler({"Records": []}, lambda_context)

    assert result["error"]["code"] == "invalid_request"
    assert "Records" in result["error"]["message"]


def test_batch_task_missing_key_permanent_failure(s3: Any, lambda_context: Any) -> None:
    event = load_event("s3-batch.json")
    del event["tasks"][0]["s3Key"]

    result = lambda_handler(event, lambda_context)

    task = result["results"][0]
    assert task["taskId"] == event["tasks"][0]["taskId"]
    assert task["resultCode"] == "PermanentFailure"
    assert "s3Key" in task["resultString"]


def test_batch_event_without_invocation_id_400(lambda_context: Any) -> None:
    event = load_event("s3-batch.json")
    del event["invocationId"]

    result = lambda_handler(event, lambda_context)

    assert result["error"]["code"] == "invalid_request"
    assert "invocationId" in result["error"]["message"]


def test_api_bad_bucket_name_400(lambda_context: Any) -> None:
    result = lambda_handler(api_json({"images": ["s3://BAD_Bucket!/x.jpg"]}), lambda_context)

    error = json.loads(result["body"])["error"]
    assert result["statusCode"] == 400
    assert error["code"] == "invalid_request"
    assert "'BAD_Bucket!'" in error["message"]
    assert "regex" not in error["message"]


def test_storage_param_validation_error_400(s3: Any) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        storage.read_object(app.payload.S3Ref(bucket="BAD_Bucket!", key="x.jpg"), image_index=0)
    assert info.value.status_code == 400
    assert "s3://BAD_Bucket!/x.jpg" in info.value.message
    assert "regex" not in info.value.message


def test_api_get_405_with_allow_header(lambda_context: Any) -> None:
    event = load_event("api-rest-json.json")
    event["httpMethod"] = "GET"

    result = lambda_handler(event, lambda_context)

    assert result["statusCode"] == 405
    assert result["headers"]["Allow"] == "POST"
    assert json.loads(result["body"])["error"]["code"] == "method_not_allowed"


def test_api_unknown_path_404(lambda_context: Any) -> None:
    event = build_events.http_event("/v1/colors", "{}", content_type="application/json", is_base64=False)

    result = lambda_handler(event, lambda_context)

    error = json.loads(result["body"])["error"]
    assert result["statusCode"] == 404
    assert "/segment or /predict" in error["message"]


@pytest.mark.parametrize(
    "event",
    [
        {"requestContext": {}},
        {**api_json({"images": [FRONT_B64]}), "body": {"images": [FRONT_B64]}},
        {key: value for key, value in api_json({"images": [FRONT_B64]}).items() if key != "rawPath"},
    ],
    ids=["empty requestContext", "body as dict", "v2 without rawPath"],
)
def test_api_malformed_event_400(event: dict[str, Any], lambda_context: Any) -> None:
    result = lambda_handler(event, lambda_context)

    assert result["statusCode"] == 400
    assert json.loads(result["body"])["error"]["code"] == "invalid_request"


def test_api_inline_response_over_lambda_limit_413(
    lambda_context: Any, monkeypatch: pytest.MonkeyPatch, captured_logs: Any
) -> None:
    # GIVEN no OUTPUT_BUCKET and a response limit below the size of one inline result
    monkeypatch.setattr(response, "MAX_RESPONSE_BYTES", 20_000)

    # WHEN a photo is segmented
    result = lambda_handler(api_json({"images": [FRONT_B64]}), lambda_context)

    # THEN the caller gets 413 with the ways out, and the request's logs are still written
    error = json.loads(result["body"])["error"]
    assert result["statusCode"] == 413
    assert error["code"] == "response_too_large"
    assert "OUTPUT_BUCKET" in error["message"]
    messages = [line["message"] for line in captured_logs()]
    assert "request_completed" in messages
    assert "request_rejected" in messages


def test_multipart_bad_image_message_names_field(lambda_context: Any) -> None:
    body = build_events.multipart_body({"file1": "front.jpg"}, {"file3": "not a photo"})
    content_type = f"multipart/form-data; boundary={build_events.MULTIPART_BOUNDARY}"
    event = build_events.http_event(
        "/segment", base64.b64encode(body).decode(), content_type=content_type, is_base64=True
    )

    error = json.loads(lambda_handler(event, lambda_context)["body"])["error"]

    assert error["code"] == "image_not_decodable"
    assert error["message"].startswith("Field file3 (image at index 1) could not be decoded")
