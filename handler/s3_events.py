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

from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent, S3Event

from handler import errors
from handler.payload import JSON_FIELDS, S3Ref, SegmentRequest, parse_json_object, parse_payload

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class ManifestEvent:
    """Manifests announced by an S3 notification, and the records that were skipped."""

    manifests: tuple[S3Ref, ...]
    ignored: tuple[S3Ref, ...]


@dataclass(frozen=True)
class BatchTask:
    """One S3 Batch Operations task; its key names a manifest."""

    task_id: str
    manifest: S3Ref


@dataclass(frozen=True)
class BatchEvent:
    """An S3 Batch Operations invocation; the ids are echoed in the response."""

    schema_version: str
    invocation_id: str
    tasks: tuple[BatchTask, ...]


def input_prefix() -> str:
    """Return the key prefix under which manifests are uploaded (env INPUT_PREFIX)."""
    return os.environ.get("INPUT_PREFIX", "incoming/")


def output_prefix() -> str:
    """Return the key prefix under which results are written (env OUTPUT_PREFIX)."""
    return os.environ.get("OUTPUT_PREFIX", "results/")


def parse_s3_notification(event: Mapping[str, Any]) -> ManifestEvent:
    """Pick the manifest uploads out of an S3 notification.

    A record counts only when it is an ObjectCreated event for exactly
    ``<INPUT_PREFIX><product-id>/manifest.json``. Every other record, the function's own
    outputs included, is returned in ``ignored`` so that a write can never trigger a new run.
    Keys arrive URL-encoded ('+' for space, %xx escapes) and are decoded here.
    """
    prefix, results = input_prefix(), output_prefix()
    manifests: list[S3Ref] = []
    ignored: list[S3Ref] = []
    for record in S3Event(dict(event)).records:
        ref = S3Ref(bucket=record.s3.bucket.name, key=unquote_plus(record.s3.get_object.key))
        relative = ref.key[len(prefix) :] if ref.key.startswith(prefix) else ""
        folder, _, name = relative.partition("/")
        is_manifest = bool(folder) and name == MANIFEST_NAME and not ref.key.startswith(results)
        if record.event_name.startswith("ObjectCreated") and is_manifest:
            manifests.append(ref)
        else:
            ignored.append(ref)
    return ManifestEvent(manifests=tuple(manifests), ignored=tuple(ignored))


def parse_batch_event(event: Mapping[str, Any]) -> BatchEvent:
    """Read the tasks of an S3 Batch Operations event (schema 1.0 or 2.0); keys are URL-decoded."""
    batch = S3BatchOperationEvent(dict(event))
    if batch.invocation_schema_version not in ("1.0", "2.0"):
        raise errors.InvalidRequestError(
            f"Unsupported invocationSchemaVersion {errors.quote_value(batch.invocation_schema_version)}; "
            "expected 1.0 or 2.0."
        )
    tasks = tuple(
        BatchTask(task_id=task.task_id, manifest=S3Ref(bucket=task.s3_bucket, key=task.s3_key)) for task in batch.tasks
    )
    return BatchEvent(schema_version=batch.invocation_schema_version, invocation_id=batch.invocation_id, tasks=tasks)


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
