"""Parse S3 event notifications, S3 Batch Operations events and the manifests they name.

A product is uploaded as its photos plus ``<INPUT_PREFIX><product-id>/manifest.json``. An
ObjectCreated notification for the manifest, or a Batch Operations task naming it, starts one
segmentation. Nothing here reads S3. ``parse_manifest`` parses bytes that ``storage.py`` fetched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from handler import errors, storage
from handler.payload import JSON_FIELDS, S3Ref, SegmentRequest, is_encodable, parse_json_object, parse_payload

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class ManifestEvent:
    """Manifests announced by an S3 notification, and the records that were skipped.

    Attributes:
        manifests: ObjectCreated records for ``<INPUT_PREFIX><product-id>/manifest.json``.
        ignored: well-formed records for any other key or event.
        malformed: one problem description per record that lacks a field this function reads.
    """

    manifests: tuple[S3Ref, ...]
    ignored: tuple[S3Ref, ...]
    malformed: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchTask:
    """One S3 Batch Operations task; its key names a manifest, or ``problem`` names why it has none."""

    task_id: str
    manifest: S3Ref | None
    problem: str | None = None


@dataclass(frozen=True)
class BatchEvent:
    """An S3 Batch Operations invocation; the ids are echoed in the response.

    Attributes:
        schema_version: "1.0" or "2.0".
        invocation_id: echoed in the response.
        tasks: every task that has a taskId, malformed ones carrying ``problem``.
        unidentified: problem descriptions of tasks without a taskId; they get no entry in the
            response, which Batch Operations counts as a permanent failure (treatMissingKeysAs).
    """

    schema_version: str
    invocation_id: str
    tasks: tuple[BatchTask, ...]
    unidentified: tuple[str, ...] = ()


def input_prefix() -> str:
    """Return the key prefix under which manifests are uploaded (env INPUT_PREFIX).

    The prefix is matched as a plain string, as S3's notification filter matches it: with
    "incoming/" the manifest is incoming/<product-id>/manifest.json, with "up-" it is
    up-<product-id>/manifest.json.
    """
    return os.environ.get("INPUT_PREFIX", "incoming/")


def output_prefix() -> str:
    """Return the key prefix under which results are written (env OUTPUT_PREFIX), a plain string as INPUT_PREFIX."""
    return os.environ.get("OUTPUT_PREFIX", "results/")


def parse_s3_notification(event: Mapping[str, Any]) -> ManifestEvent:
    """Pick the manifest uploads out of an S3 notification.

    A record counts only when it is an ObjectCreated event for exactly
    ``<INPUT_PREFIX><product-id>/manifest.json``. Every other record is returned in ``ignored``.
    The function never writes a file named manifest.json, and a key under ``<OUTPUT_PREFIX>`` in
    the bucket that receives the results is ignored as well, so a write can never trigger a new
    run. Results go to OUTPUT_BUCKET, or to the manifest's own bucket when it is not set.
    Records without eventSource "aws:s3", eventName, bucket name or object key are described in
    ``malformed`` and skipped. Keys arrive URL-encoded ('+' for space, %xx escapes) and are decoded here.

    Raises:
        InvalidRequestError: ``Records`` is not a non-empty list, or no record is usable.
    """
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        raise errors.InvalidRequestError(
            "The S3 notification has no records; expected 'Records' to be a non-empty list of S3 event records."
        )
    prefix, results = input_prefix(), output_prefix()
    result_bucket = storage.output_bucket()
    manifests: list[S3Ref] = []
    ignored: list[S3Ref] = []
    malformed: list[str] = []
    for position, record in enumerate(records):
        event_name, ref, problem = read_notification_record(record)
        if problem is not None or ref is None:
            malformed.append(f"Records[{position}] {problem}")
            continue
        is_manifest = manifest_key_problem(ref.key, prefix) is None and not in_results(ref, results, result_bucket)
        if event_name.startswith("ObjectCreated") and is_manifest:
            manifests.append(ref)
        else:
            ignored.append(ref)
    if not manifests and not ignored:
        raise errors.InvalidRequestError(f"The S3 notification has no usable record: {malformed[0]}.")
    return ManifestEvent(manifests=tuple(manifests), ignored=tuple(ignored), malformed=tuple(malformed))


def manifest_key_problem(key: str, prefix: str) -> str | None:
    """Tell why a key is not a manifest key, <prefix><product-id>/manifest.json, one folder deep.

    Args:
        key: decoded object key.
        prefix: INPUT_PREFIX, matched as a plain string.
    Returns:
        None for a manifest key, else the reason, naming the expected form.
    """
    expected = f"expected {prefix}<product-id>/{MANIFEST_NAME} (INPUT_PREFIX={prefix!r})"
    if not key.startswith(prefix):
        return f"s3Key {errors.quote_value(key)} is outside INPUT_PREFIX; {expected}"
    folder, _, name = key[len(prefix) :].partition("/")
    if not folder or name != MANIFEST_NAME:
        return f"s3Key {errors.quote_value(key)} is not a manifest one folder below INPUT_PREFIX; {expected}"
    return None


def in_results(ref: S3Ref, results: str, result_bucket: str | None) -> bool:
    """Tell whether an object lies under OUTPUT_PREFIX in the bucket that receives results.

    Args:
        ref: the object.
        results: OUTPUT_PREFIX; an empty prefix matches nothing.
        result_bucket: OUTPUT_BUCKET, or None when results go to each manifest's own bucket.
    """
    return bool(results) and ref.key.startswith(results) and ref.bucket == (result_bucket or ref.bucket)


def read_notification_record(record: object) -> tuple[str, S3Ref | None, str | None]:
    """Read eventName, bucket and decoded key of one notification record.

    Returns:
        (event name, the object, None) for a usable record, or ("", None, problem) where
        problem names the missing field.
    """
    if not isinstance(record, Mapping):
        return "", None, f"is a {type(record).__name__}, not an object"
    if record.get("eventSource") != "aws:s3":
        return "", None, f"has eventSource {errors.quote_value(record.get('eventSource'))}, not 'aws:s3'"
    event_name = record.get("eventName")
    s3 = record.get("s3")
    bucket = _nested(s3, "bucket", "name")
    key = _nested(s3, "object", "key")
    for field, value in (("eventName", event_name), ("s3.bucket.name", bucket), ("s3.object.key", key)):
        if not isinstance(value, str) or not value:
            return "", None, f"has no string field {field}"
    return str(event_name), S3Ref(bucket=str(bucket), key=unquote_plus(str(key))), None


def _nested(value: object, *names: str) -> object:
    for name in names:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def parse_batch_event(event: Mapping[str, Any]) -> BatchEvent:
    """Read the tasks of an S3 Batch Operations event (schema 1.0 or 2.0); keys are URL-decoded.

    A task without taskId, s3Key or bucket (s3Bucket in 2.0, s3BucketArn in 1.0) is kept with
    a ``problem`` so that the reply reports it as a permanent failure.

    Raises:
        InvalidRequestError: the schema version is not 1.0 or 2.0, invocationId is missing, or
            tasks is not a list.
    """
    version = event.get("invocationSchemaVersion")
    if version not in ("1.0", "2.0"):
        raise errors.InvalidRequestError(
            f"Unsupported invocationSchemaVersion {errors.quote_value(version)}; expected 1.0 or 2.0."
        )
    invocation_id = event.get("invocationId")
    if not isinstance(invocation_id, str) or not invocation_id:
        raise errors.InvalidRequestError("The S3 Batch Operations event has no string invocationId.")
    entries = event.get("tasks")
    if not isinstance(entries, list):
        raise errors.InvalidRequestError(
            f"The S3 Batch Operations event field 'tasks' must be a list, received {type(entries).__name__}."
        )
    tasks: list[BatchTask] = []
    unidentified: list[str] = []
    for position, entry in enumerate(entries):
        task_id = entry.get("taskId") if isinstance(entry, Mapping) else None
        if not isinstance(task_id, str) or not task_id:
            unidentified.append(f"tasks[{position}] has no string taskId")
            continue
        manifest, problem = read_batch_task(entry)
        tasks.append(BatchTask(task_id=task_id, manifest=manifest, problem=problem))
    return BatchEvent(
        schema_version=version, invocation_id=invocation_id, tasks=tuple(tasks), unidentified=tuple(unidentified)
    )


def read_batch_task(task: Mapping[str, Any]) -> tuple[S3Ref | None, str | None]:
    """Return the manifest a Batch Operations task names, or None and what is wrong with the task.

    The key must have the form of an upload-notified manifest, <INPUT_PREFIX><product-id>/manifest.json,
    and must not lie under OUTPUT_PREFIX in the bucket that receives results.
    """
    key = task.get("s3Key")
    arn = task.get("s3BucketArn")
    bucket = arn.rpartition(":::")[2] if isinstance(arn, str) else task.get("s3Bucket")
    if not isinstance(key, str) or not key:
        return None, "Task has no string s3Key."
    if not isinstance(bucket, str) or not bucket:
        return None, "Task has neither s3Bucket (schema 2.0) nor s3BucketArn (schema 1.0)."
    # The rule of upload notifications: keys of other shapes could name the same product
    # (a/p1/manifest.json and b/p1/manifest.json) and replace each other's results.
    manifest = S3Ref(bucket=bucket, key=unquote_plus(key))
    if not is_encodable(manifest.key) or not is_encodable(manifest.bucket):
        return None, f"s3Key {errors.quote_value(manifest.key)} or its bucket is not valid Unicode (a lone surrogate)."
    problem = manifest_key_problem(manifest.key, input_prefix())
    if problem is not None:
        return None, problem + "."
    # OUTPUT_BUCKET is compared as set. A malformed value fails the task later, when results are stored.
    results = output_prefix()
    if in_results(manifest, results, os.environ.get("OUTPUT_BUCKET") or None):
        return None, (
            f"s3Key {errors.quote_value(manifest.key)} lies under OUTPUT_PREFIX {results!r} of the bucket that"
            " receives results, where keys are never processed; move the manifest or change the prefixes."
        )
    return manifest, None


def parse_manifest(data: bytes, manifest: S3Ref) -> SegmentRequest:
    """Parse a manifest.json fetched from S3; its folder name is the product id.

    Args:
        data: the manifest's bytes: ``{"images": [...], "threshold": ..., "category": ...}`` where each
            image is a key relative to the manifest's folder or an s3:// URI.
        manifest: where the manifest was read.
    Raises:
        InvalidRequestError: the key is not ``<folder>/manifest.json``, the folder is not a safe
            product id, or the JSON is invalid; other ApiErrors as ``parse_payload``.
    """
    folder, _, name = manifest.key.rpartition("/")
    if name != MANIFEST_NAME or not folder:
        raise errors.InvalidRequestError(
            f"{manifest.uri} is not a manifest; expected a key of the form <folder>/<product-id>/{MANIFEST_NAME}."
        )
    product_id = folder.rpartition("/")[2]
    payload = parse_json_object(data, description=f"manifest {manifest.uri}")
    return parse_payload(payload, allowed=JSON_FIELDS, product_id=product_id, manifest=manifest)
