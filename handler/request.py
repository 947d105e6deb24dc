"""Parse every event shape the function accepts into plain request objects.

This module is the only reader of the Lambda event. It accepts:

- API Gateway REST API (payload 1.0) and HTTP API (payload 2.0) events with a JSON body
  ``{"images": [...], "threshold": 0.5, "category": "top"}`` or a ``multipart/form-data`` body with
  files ``file1``..``file4`` and optional ``threshold`` and ``category`` fields. Each JSON image is
  base64 data, a ``data:`` URI, or an ``s3://bucket/key`` URI.
- The ``/predict`` route of the older service: multipart ``file1``..``file4`` and the query
  parameter ``minPredictionValue`` (see ``parse_min_prediction_value``).
- S3 ObjectCreated notifications for ``<INPUT_PREFIX><product-id>/manifest.json``.
- S3 Batch Operations events (schema 1.0 and 2.0) whose tasks name manifest.json keys.
- A direct invoke whose payload is the JSON body above plus an optional ``product_id``.

Nothing here reads S3: manifests are parsed from bytes that ``storage.py`` fetched.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import multipart
from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
    S3BatchOperationEvent,
    S3Event,
)
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

from handler import categories, errors

MAX_IMAGES = 4
"""Maximum photos per request; equals the model's ``max_views``."""

MAX_BODY_BYTES = 6 * 1024 * 1024
"""Largest accepted request body after base64 decoding: Lambda's synchronous payload limit."""

DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_PREDICTION_VALUE = -0.5
"""Default of the older service's ``minPredictionValue``; it maps to a threshold of 0.75."""

MANIFEST_NAME = "manifest.json"
LEGACY_ROUTE = "/predict"

_PRODUCT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_JSON_FIELDS = ("images", "threshold", "category")
_DIRECT_FIELDS = (*_JSON_FIELDS, "product_id")
_FORM_FILES = tuple(f"file{number}" for number in range(1, MAX_IMAGES + 1))
_FORM_FIELDS = ("threshold", "category")


class EventSource(enum.Enum):
    """Which service sent the event; it also decides the shape of the reply."""

    API_V1 = "api_v1"
    API_V2 = "api_v2"
    S3_NOTIFICATION = "s3_notification"
    S3_BATCH = "s3_batch"
    DIRECT = "direct"


@dataclass(frozen=True)
class S3Ref:
    """One S3 object: bucket name and decoded key."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class ImageSource:
    """One photo of a request: raw encoded bytes, or where to read them. Exactly one is set."""

    index: int
    data: bytes | None = None
    s3: S3Ref | None = None


@dataclass(frozen=True)
class SegmentRequest:
    """One product's photos and options, independent of the event that carried them.

    Attributes:
        images: 1 to MAX_IMAGES photos; ``index`` is their 0-based position.
        threshold: probability cut for the hard mask, 0-1.
        category: resolved vocabulary name, or None for no hint.
        product_id: safe folder name under which results are stored.
        legacy: True for the older service's ``/predict`` route, whose response is one PNG.
        manifest: the manifest the request came from, for S3 and Batch Operations events.
    """

    images: tuple[ImageSource, ...]
    threshold: float
    category: str | None
    product_id: str
    legacy: bool = False
    manifest: S3Ref | None = None


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


def detect_source(event: object) -> EventSource:
    """Tell which service sent the event from its top-level keys.

    Args:
        event: the Lambda event as received.
    Returns:
        The EventSource; anything unrecognized counts as a direct invoke.
    """
    if not isinstance(event, Mapping):
        return EventSource.DIRECT
    if "invocationSchemaVersion" in event and "tasks" in event:
        return EventSource.S3_BATCH
    records = event.get("Records")
    first_record = records[0] if isinstance(records, list) and records else None
    if isinstance(first_record, Mapping) and first_record.get("eventSource") == "aws:s3":
        return EventSource.S3_NOTIFICATION
    if "requestContext" in event or "httpMethod" in event:
        return EventSource.API_V2 if event.get("version") == "2.0" else EventSource.API_V1
    return EventSource.DIRECT


def parse_event(event: object, source: EventSource) -> SegmentRequest | ManifestEvent | BatchEvent:
    """Parse an event of a known source.

    Args:
        event: the Lambda event.
        source: the result of ``detect_source(event)``.
    Returns:
        SegmentRequest for API and direct invokes, ManifestEvent for S3 notifications,
        BatchEvent for S3 Batch Operations.
    Raises:
        ApiError: a subclass from ``handler.errors`` naming the invalid value.
    """
    if source is EventSource.S3_BATCH:
        return parse_batch_event(event)  # type: ignore[arg-type]  # detect_source checked Mapping
    if source is EventSource.S3_NOTIFICATION:
        return parse_s3_notification(event)  # type: ignore[arg-type]  # detect_source checked Mapping
    if source is EventSource.DIRECT:
        if not isinstance(event, Mapping):
            raise errors.InvalidRequestError(
                f'Expected a JSON object event, received {type(event).__name__}; send {{"images": [...]}}.'
            )
        return parse_payload(event, allowed=_DIRECT_FIELDS, product_id=event.get("product_id"))
    api_event = APIGatewayProxyEventV2(event) if source is EventSource.API_V2 else APIGatewayProxyEvent(event)  # type: ignore[arg-type]
    return parse_api_event(api_event)


def parse_api_event(event: BaseProxyEvent) -> SegmentRequest:
    """Parse an API Gateway event of either payload version.

    Raises:
        PayloadTooLargeError: the body exceeds MAX_BODY_BYTES.
        UnsupportedMediaTypeError: the content type is neither JSON nor multipart/form-data,
            or ``/predict`` received something other than multipart/form-data.
        ApiError: any other invalid field, from ``parse_payload`` or ``parse_form``.
    """
    body = read_body(event)
    content_type = event.headers.get("content-type") or ""
    media_type, options = multipart.parse_options_header(content_type) if content_type else ("", {})
    is_legacy = event.path.rstrip("/").endswith(LEGACY_ROUTE)

    if is_legacy:
        if media_type != "multipart/form-data":
            raise errors.UnsupportedMediaTypeError(
                f"Received content type {errors.quote_value(content_type)} on {LEGACY_ROUTE}; "
                "send multipart/form-data with fields file1 to file4."
            )
        threshold = parse_min_prediction_value(event.get_query_string_value("minPredictionValue"))
        return parse_form(body, options.get("boundary", ""), legacy_threshold=threshold)
    if media_type == "multipart/form-data":
        return parse_form(body, options.get("boundary", ""))
    if media_type in ("", "application/json") or media_type.endswith("+json"):
        return parse_payload(parse_json_object(body, description="request body"), allowed=_JSON_FIELDS)
    raise errors.UnsupportedMediaTypeError(
        f"Received content type {errors.quote_value(content_type)}; send application/json or multipart/form-data."
    )


def read_body(event: BaseProxyEvent) -> bytes:
    """Return the request body as bytes, base64-decoded when API Gateway encoded it."""
    text = event.body or ""
    if event.is_base64_encoded:
        try:
            body = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as err:
            raise errors.InvalidRequestError(
                "The request body is flagged isBase64Encoded but is not valid base64."
            ) from err
    else:
        body = text.encode("utf-8")
    if len(body) > MAX_BODY_BYTES:
        raise errors.PayloadTooLargeError(
            f"Received a {len(body)}-byte body; at most {MAX_BODY_BYTES} bytes are accepted. "
            "Upload large photos to S3 and send s3:// URIs instead."
        )
    return body


def parse_json_object(data: bytes, *, description: str) -> Mapping[str, Any]:
    """Decode a JSON object from UTF-8 bytes.

    Args:
        data: the raw JSON text.
        description: what the bytes are, for the message ("request body", "manifest s3://...").
    Raises:
        InvalidRequestError: the bytes are not UTF-8 JSON, or the JSON is not an object.
    """
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise errors.InvalidRequestError(
            f'The {description} is not valid JSON ({err}); send an object such as {{"images": [...]}}.'
        ) from err
    if not isinstance(value, dict):
        raise errors.InvalidRequestError(f"The {description} must be a JSON object, received {type(value).__name__}.")
    return value


def parse_payload(
    payload: Mapping[str, Any],
    *,
    allowed: tuple[str, ...],
    product_id: object = None,
    manifest: S3Ref | None = None,
) -> SegmentRequest:
    """Parse the JSON request shared by API bodies, direct invokes and manifests.

    Args:
        payload: decoded JSON object with ``images`` and optional ``threshold``, ``category``.
        allowed: field names accepted; any other field is rejected so that typos do not pass silently.
        product_id: caller-chosen id, or None to generate a uuid4.
        manifest: the manifest the payload was read from. Relative image names resolve against
            its folder. Without a manifest, every image must be base64 data or an s3:// URI.
    Raises:
        InvalidRequestError, TooManyImagesError, InvalidThresholdError, UnknownCategoryError,
        ImageNotDecodableError: the corresponding field is invalid.
    """
    unknown = sorted(set(payload) - set(allowed))
    if unknown:
        raise errors.InvalidRequestError(
            f"Unknown field {errors.quote_value(unknown[0])}; accepted fields are {', '.join(allowed)}."
        )
    if "images" not in payload:
        raise errors.InvalidRequestError("Missing field 'images'; send a list of 1 to 4 base64 images or s3:// URIs.")
    entries = payload["images"]
    if not isinstance(entries, list):
        raise errors.InvalidRequestError(
            f"Field 'images' must be a list of strings, received {type(entries).__name__}."
        )
    check_image_count(len(entries))
    images = tuple(parse_image_entry(entry, index, manifest=manifest) for index, entry in enumerate(entries))
    return SegmentRequest(
        images=images,
        threshold=parse_threshold(payload.get("threshold")),
        category=parse_category(payload.get("category")),
        product_id=parse_product_id(product_id),
        manifest=manifest,
    )


def check_image_count(count: int) -> None:
    """Raise unless 1 <= count <= MAX_IMAGES."""
    if count > MAX_IMAGES:
        raise errors.TooManyImagesError(f"Received {count} images; at most {MAX_IMAGES} are accepted per request.")
    if count < 1:
        raise errors.InvalidRequestError(f"Received 0 images; send 1 to {MAX_IMAGES} photos of one product.")


def parse_image_entry(entry: object, index: int, *, manifest: S3Ref | None) -> ImageSource:
    """Parse one element of ``images``: an s3:// URI, a manifest-relative key, or base64 data.

    Raises:
        InvalidRequestError: not a string, a malformed URI or key, or invalid base64.
        ImageNotDecodableError: the base64 data decodes to zero bytes.
    """
    if not isinstance(entry, str):
        raise errors.InvalidRequestError(
            f"images[{index}] must be a string, received {type(entry).__name__}.", image_index=index
        )
    if entry.startswith("s3://"):
        return ImageSource(index=index, s3=parse_s3_uri(entry, index))
    if manifest is not None:
        return ImageSource(index=index, s3=resolve_manifest_entry(entry, index, manifest))
    return ImageSource(index=index, data=decode_base64_image(entry, index))


def parse_s3_uri(uri: str, index: int) -> S3Ref:
    """Split ``s3://bucket/key`` into an S3Ref; raise InvalidRequestError if either part is empty."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise errors.InvalidRequestError(
            f"images[{index}] {errors.quote_value(uri)} is not a valid S3 URI; expected s3://bucket/key.",
            image_index=index,
        )
    return S3Ref(bucket=bucket, key=key)


def resolve_manifest_entry(name: str, index: int, manifest: S3Ref) -> S3Ref:
    """Resolve an image name relative to the manifest's folder, in the manifest's bucket.

    Raises:
        InvalidRequestError: the name is empty, absolute, a URL, or contains ".." segments.
    """
    segments = name.split("/")
    if not name or name.startswith("/") or "://" in name or any(part in ("", ".", "..") for part in segments):
        raise errors.InvalidRequestError(
            f"images[{index}] {errors.quote_value(name)} in {manifest.uri} is not a valid image name; "
            "use a key relative to the manifest's folder (no '..', no leading '/') or an s3:// URI.",
            image_index=index,
        )
    folder = manifest.key.rpartition("/")[0]
    return S3Ref(bucket=manifest.bucket, key=f"{folder}/{name}" if folder else name)


def decode_base64_image(text: str, index: int) -> bytes:
    """Decode base64 image data, with or without a ``data:<type>;base64,`` prefix.

    Both the standard and the URL-safe alphabet are accepted; whitespace and missing padding are tolerated.
    """
    if text.startswith("data:"):
        header, separator, text = text.partition(",")
        if not separator or not header.endswith(";base64"):
            raise errors.InvalidRequestError(
                f"images[{index}] is a data URI without ';base64,'; send data:image/jpeg;base64,<data>.",
                image_index=index,
            )
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    altchars = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        data = base64.b64decode(compact, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as err:
        raise errors.InvalidRequestError(
            f"images[{index}] {errors.quote_value(text, limit=24)} is neither valid base64 image data "
            "nor an s3:// URI.",
            image_index=index,
        ) from err
    if not data:
        raise errors.ImageNotDecodableError(
            f"Image {index} is empty (0 bytes); send a JPEG, PNG or WebP photo.", image_index=index
        )
    return data


def parse_threshold(value: object) -> float:
    """Parse ``threshold``: a number (or numeric string) in [0, 1]; None gives DEFAULT_THRESHOLD."""
    if value is None:
        return DEFAULT_THRESHOLD
    return _parse_number(value, "threshold", 0.0, 1.0)


def parse_min_prediction_value(value: str | None) -> float:
    """Convert the older service's ``minPredictionValue`` into a probability threshold.

    The older model produced a tanh map in [-1, 1] where a pixel below minPredictionValue was
    product, so a lower value keeps fewer pixels. A probability p maps onto that scale as
    t = 1 - 2p, so "t < v" becomes "p > (1 - v) / 2".

    Args:
        value: the query parameter as received, or None for the default -0.5.
    Returns:
        The threshold (1 - v) / 2, in [0, 1].
    Raises:
        InvalidThresholdError: value is not a number in [-1, 1].
    Limitations:
        The older service kept pixels strictly above the cut; this one keeps p >= threshold, which
        differs only for probabilities exactly at the threshold.
    """
    number = DEFAULT_MIN_PREDICTION_VALUE if value is None else _parse_number(value, "minPredictionValue", -1.0, 1.0)
    return (1.0 - number) / 2.0


def _parse_number(value: object, name: str, low: float, high: float) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or math.isnan(number) or not low <= number <= high:
        raise errors.InvalidThresholdError(
            f"{name} must be a number between {low:g} and {high:g}; received {errors.quote_value(value)}."
        )
    return number


def parse_category(value: object) -> str | None:
    """Resolve the category hint (aliases included); None or "" means no hint."""
    if value is not None and not isinstance(value, str):
        raise errors.InvalidRequestError(f"Field 'category' must be a string, received {type(value).__name__}.")
    try:
        return categories.resolve_category(value)
    except categories.UnknownCategoryError as err:
        raise errors.UnknownCategoryError(str(err)) from err


def parse_product_id(value: object) -> str:
    """Validate a product id as a safe folder name; None generates a random uuid4 hex."""
    if value is None:
        return uuid.uuid4().hex
    if not isinstance(value, str) or not _PRODUCT_ID.fullmatch(value):
        raise errors.InvalidRequestError(
            f"Product id {errors.quote_value(value)} is invalid; use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return value


def parse_form(body: bytes, boundary: str, *, legacy_threshold: float | None = None) -> SegmentRequest:
    """Parse a multipart/form-data body with files file1..file4 and fields threshold, category.

    Args:
        body: the raw body.
        boundary: the boundary parameter of the Content-Type header.
        legacy_threshold: for ``/predict``, the threshold from ``minPredictionValue``; the form
            may then not set ``threshold`` itself.
    Returns:
        SegmentRequest whose images follow the file number order (file1 first); gaps are closed up.
    Raises:
        InvalidRequestError: no boundary, a malformed body, a repeated or unknown field.
        TooManyImagesError: a file field numbered above MAX_IMAGES.
    """
    if not boundary:
        raise errors.InvalidRequestError("The multipart/form-data Content-Type has no boundary parameter.")
    fields = read_form_fields(body, boundary)

    unknown = sorted(name for name in fields if name not in _FORM_FILES + _FORM_FIELDS)
    numbered = [name for name in unknown if re.fullmatch(r"file[0-9]+", name)]
    if numbered:
        raise errors.TooManyImagesError(
            f"Received form field {errors.quote_value(numbered[0])}; at most {MAX_IMAGES} images "
            f"(file1 to file{MAX_IMAGES}) "
            "are accepted per request."
        )
    if unknown:
        raise errors.InvalidRequestError(
            f"Unknown form field {errors.quote_value(unknown[0])}; accepted fields are "
            f"{', '.join(_FORM_FILES + _FORM_FIELDS)}."
        )
    if legacy_threshold is not None and "threshold" in fields:
        raise errors.InvalidRequestError(
            f"{LEGACY_ROUTE} takes the query parameter minPredictionValue, not a threshold field."
        )

    files = [fields[name] for name in _FORM_FILES if name in fields]
    check_image_count(len(files))
    images = []
    for index, data in enumerate(files):
        if not data:
            raise errors.ImageNotDecodableError(
                f"Image {index} is empty (0 bytes); send a JPEG, PNG or WebP photo.", image_index=index
            )
        images.append(ImageSource(index=index, data=data))
    threshold = legacy_threshold if legacy_threshold is not None else parse_threshold(_form_text(fields, "threshold"))
    return SegmentRequest(
        images=tuple(images),
        threshold=threshold,
        category=parse_category(_form_text(fields, "category")),
        product_id=parse_product_id(None),
        legacy=legacy_threshold is not None,
    )


def read_form_fields(body: bytes, boundary: str) -> dict[str, bytes]:
    """Split a multipart body into {field name: content bytes} with the ``multipart`` parser."""
    fields: dict[str, bytearray] = {}
    current: bytearray | None = None
    parser = multipart.PushMultipartParser(
        boundary, content_length=len(body), max_segment_count=2 * len(_FORM_FILES + _FORM_FIELDS)
    )
    try:
        with parser:
            # The empty chunk marks the end of input, which releases the parser's last buffered bytes.
            for chunk in (body, b""):
                for event in parser.parse(chunk):
                    if isinstance(event, multipart.MultipartSegment):
                        if event.name in fields:
                            raise errors.InvalidRequestError(
                                f"Form field {errors.quote_value(event.name)} appears more than once."
                            )
                        current = fields.setdefault(event.name, bytearray())
                    elif event and current is not None:
                        current += event
    except multipart.MultipartError as err:
        raise errors.InvalidRequestError(f"The multipart/form-data body is malformed: {err}.") from err
    return {name: bytes(content) for name, content in fields.items()}


def _form_text(fields: Mapping[str, bytes], name: str) -> str | None:
    if name not in fields:
        return None
    try:
        return fields[name].decode("utf-8")
    except UnicodeDecodeError as err:
        raise errors.InvalidRequestError(f"Form field {name!r} is not UTF-8 text.") from err


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
    return parse_payload(payload, allowed=_JSON_FIELDS, product_id=product_id, manifest=manifest)
