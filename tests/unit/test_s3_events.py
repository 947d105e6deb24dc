"""S3 notifications, S3 Batch Operations events and manifests, parsed by handler.s3_events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handler import errors, request, s3_events
from handler.payload import S3Ref
from tests.conftest import build_events, load_event


def parse(event: Any) -> Any:
    return request.parse_event(event, request.detect_source(event))


def s3_record(key: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    event = build_events.s3_notification_event(key)
    event["Records"][0]["eventName"] = event_name
    return event


def test_s3_notification_selects_manifest() -> None:
    parsed = parse(load_event("s3-manifest.json"))

    assert parsed.manifests == (S3Ref(build_events.INPUT_BUCKET, "incoming/sample-001/manifest.json"),)
    assert parsed.ignored == ()


def test_s3_notification_decodes_key() -> None:
    parsed = parse(s3_record("incoming/summer+dress%C3%A9/manifest.json"))

    assert parsed.manifests[0].key == "incoming/summer dressé/manifest.json"


@pytest.mark.parametrize(
    ("key", "event_name"),
    [
        ("results/sample-001/result.json", "ObjectCreated:Put"),
        ("results/sample-001/manifest.json", "ObjectCreated:Put"),
        ("incoming/sample-001/front.jpg", "ObjectCreated:Put"),
        ("incoming/manifest.json", "ObjectCreated:Put"),
        ("incoming/a/b/manifest.json", "ObjectCreated:Put"),
        ("incoming/sample-001/manifest.json", "ObjectRemoved:Delete"),
    ],
)
def test_s3_notification_ignores_other_records(key: str, event_name: str) -> None:
    parsed = parse(s3_record(key, event_name))

    assert parsed.manifests == ()
    assert [ref.key for ref in parsed.ignored] == [key]


def test_s3_notification_input_prefix_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPUT_PREFIX", "uploads/")

    assert parse(s3_record("uploads/p1/manifest.json")).manifests[0].key == "uploads/p1/manifest.json"
    assert parse(s3_record("incoming/p1/manifest.json")).manifests == ()


def test_batch_event_schema_2() -> None:
    parsed = parse(load_event("s3-batch.json"))

    assert parsed.schema_version == "2.0"
    assert parsed.tasks[0].manifest == S3Ref(build_events.INPUT_BUCKET, "incoming/sample-002/manifest.json")


def test_batch_event_schema_1_bucket_arn_and_encoded_key() -> None:
    event = load_event("s3-batch.json")
    event["invocationSchemaVersion"] = "1.0"
    task = event["tasks"][0]
    del task["s3Bucket"]
    task["s3BucketArn"] = "arn:aws:s3:::other-bucket"
    task["s3Key"] = "incoming/my+shirt/manifest.json"

    parsed = parse(event)

    assert parsed.tasks[0].manifest == S3Ref("other-bucket", "incoming/my shirt/manifest.json")


def test_batch_event_unknown_schema_rejected() -> None:
    event = load_event("s3-batch.json")
    event["invocationSchemaVersion"] = "3.0"

    with pytest.raises(errors.InvalidRequestError, match=r"'3\.0'"):
        parse(event)


def test_manifest_resolves_relative_names_and_uris() -> None:
    manifest = S3Ref("in", "incoming/p-1/manifest.json")
    data = json.dumps({"images": ["front.jpg", "views/back.png", "s3://other/x.png"], "category": "Jeans"}).encode()

    parsed = s3_events.parse_manifest(data, manifest)

    assert [image.s3 for image in parsed.images] == [
        S3Ref("in", "incoming/p-1/front.jpg"),
        S3Ref("in", "incoming/p-1/views/back.png"),
        S3Ref("other", "x.png"),
    ]
    assert parsed.product_id == "p-1"
    assert parsed.category == "bottom"
    assert parsed.manifest == manifest


@pytest.mark.parametrize("name", ["../secret.jpg", "/abs.jpg", "a//b.jpg", "https://example.com/a.jpg", ""])
def test_manifest_rejects_unsafe_names(name: str) -> None:
    data = json.dumps({"images": [name]}).encode()

    with pytest.raises(errors.InvalidRequestError) as info:
        s3_events.parse_manifest(data, S3Ref("in", "incoming/p-1/manifest.json"))
    assert info.value.image_index == 0


def test_manifest_unsafe_folder_rejected() -> None:
    with pytest.raises(errors.InvalidRequestError, match="Product id"):
        s3_events.parse_manifest(b'{"images": ["a.jpg"]}', S3Ref("in", "incoming/bad id!/manifest.json"))


def test_manifest_invalid_json_names_uri() -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        s3_events.parse_manifest(b"{nope", S3Ref("in", "incoming/p/manifest.json"))
    assert "s3://in/incoming/p/manifest.json" in info.value.message
