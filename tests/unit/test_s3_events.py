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


@pytest.mark.parametrize("output_prefix", ["", "incoming/"])
def test_output_prefix_other_bucket_ignored(monkeypatch: pytest.MonkeyPatch, output_prefix: str) -> None:
    # GIVEN results that go to another bucket, under a prefix that the manifest key also starts with
    monkeypatch.setenv("OUTPUT_BUCKET", "results-bucket")
    monkeypatch.setenv("OUTPUT_PREFIX", output_prefix)

    parsed = parse(s3_record("incoming/p1/manifest.json"))

    assert [ref.key for ref in parsed.manifests] == ["incoming/p1/manifest.json"]


def test_output_prefix_same_bucket_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN manifests at the bucket's top and results written to the same bucket under results/
    monkeypatch.delenv("OUTPUT_BUCKET", raising=False)
    monkeypatch.setenv("INPUT_PREFIX", "")
    monkeypatch.setenv("OUTPUT_PREFIX", "results/")

    assert parse(s3_record("p1/manifest.json")).manifests[0].key == "p1/manifest.json"
    assert parse(s3_record("results/manifest.json")).manifests == ()


def test_input_prefix_matched_as_plain_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPUT_PREFIX", "up-")

    assert parse(s3_record("up-p1/manifest.json")).manifests[0].key == "up-p1/manifest.json"
    assert parse(s3_record("up/p1/manifest.json")).manifests == ()


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


def valid_record(key: str = "incoming/sample-001/manifest.json") -> dict[str, Any]:
    record: dict[str, Any] = build_events.s3_notification_event(key)["Records"][0]
    return record


def without(record: dict[str, Any], *path: str) -> dict[str, Any]:
    """Return a copy of record with the field at path removed."""
    copied = json.loads(json.dumps(record))
    parent = copied
    for name in path[:-1]:
        parent = parent[name]
    del parent[path[-1]]
    return copied


@pytest.mark.parametrize(
    ("broken", "fragment"),
    [
        (without(valid_record(), "s3", "object", "key"), "s3.object.key"),
        (without(valid_record(), "s3", "bucket"), "s3.bucket.name"),
        (without(valid_record(), "eventName"), "eventName"),
        ({**valid_record(), "eventSource": "aws:sqs"}, "'aws:sqs'"),
        ("not a record", "str"),
    ],
)
def test_s3_notification_malformed_record_skipped(broken: object, fragment: str) -> None:
    event = {"Records": [broken, valid_record()]}

    parsed = parse(event)

    assert parsed.manifests == (S3Ref(build_events.INPUT_BUCKET, "incoming/sample-001/manifest.json"),)
    assert len(parsed.malformed) == 1
    assert parsed.malformed[0].startswith("Records[0]")
    assert fragment in parsed.malformed[0]


@pytest.mark.parametrize("records", [[], None, "x", [{"eventSource": "aws:s3"}]])
def test_s3_notification_without_usable_record_invalid(records: object) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        parse({"Records": records})
    assert info.value.status_code == 400
    assert "S3 notification" in info.value.message


@pytest.mark.parametrize(
    ("field", "fragment"),
    [("s3Key", "s3Key"), ("s3Bucket", "s3BucketArn")],
)
def test_batch_task_missing_field_kept_with_problem(field: str, fragment: str) -> None:
    event = load_event("s3-batch.json")
    del event["tasks"][0][field]

    task = parse(event).tasks[0]

    assert task.task_id == event["tasks"][0]["taskId"]
    assert task.manifest is None
    assert task.problem is not None and fragment in task.problem


def test_batch_task_without_task_id_unidentified() -> None:
    event = load_event("s3-batch.json")
    event["tasks"].append({"s3Key": "incoming/x/manifest.json", "s3Bucket": build_events.INPUT_BUCKET})

    parsed = parse(event)

    assert len(parsed.tasks) == 1
    assert parsed.unidentified == ("tasks[1] has no string taskId",)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [({"invocationId": None}, "invocationId"), ({"tasks": {"taskId": "t"}}, "'tasks' must be a list")],
)
def test_batch_event_unusable_structure_invalid(change: dict[str, Any], fragment: str) -> None:
    event = {**load_event("s3-batch.json"), **change}

    with pytest.raises(errors.InvalidRequestError) as info:
        parse(event)
    assert fragment in info.value.message
