"""Build every response body: result documents, errors and their API Gateway envelopes.

The result document (also stored as result.json) is::

    {"product_id": str, "model": {"name": str, "version": str}, "category": str | None,
     "threshold": float,
     "images": [{"index": int, "width": int, "height": int, "empty": bool, "status": "ok" | "empty",
                 "bbox": [x0, y0, x1, y1] | None, "coverage": float, "confidence": float,
                 "mask": Location, "cutout": Location}, ...],
     "colors": [Color.to_dict(), ...], "timings_ms": {str: float},
     "result_uri": str}

``Location`` is ``{"png_base64": str}`` inline, ``{"s3_uri": str, "key": str}`` in S3, or
``{"path": str}`` for files the CLI wrote. ``bbox`` is in the photo's pixel frame with exclusive
x1, y1. ``confidence`` (0-1) is handler.refine.mask_confidence of the model's map: low values
flag masks worth a person's review. ``index`` is the photo's 0-based position in the request
and the K of mask-K.png and cutout-K.png. Errors are
``{"error": {"code": str, "message": str, "image_index": int | None}}``. ``result_uri``, the URI of
result.json, is present only when results were stored in S3. The stored result.json and the
document returned to the caller are then the same.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.data_classes.s3_batch_operation_event import S3BatchOperationResponseRecord

from handler import errors
from handler.imaging import encode_png
from handler.request import EventSource
from handler.s3_events import BatchEvent

if TYPE_CHECKING:
    from handler.pipeline import SetResult, ViewResult

Location = dict[str, str]
"""Location of a PNG: {"png_base64": ...} inline, {"s3_uri": ..., "key": ...} in S3, or
{"path": ...} beside result.json when the CLI wrote it."""

_API_SOURCES = (EventSource.API_V1, EventSource.API_V2)

MAX_RESPONSE_BYTES = 6 * 1024 * 1024
"""Largest reply a synchronous invoke may return: Lambda's 6 MB response payload quota, as JSON."""

INLINE_RESERVE_BYTES = 16 * 1024
"""Bytes of MAX_RESPONSE_BYTES kept for everything in an inline reply except the base64 PNGs.

That is the result document's other fields and, for API Gateway, the envelope and the escaped
JSON body inside it. A 4-photo reply with 5 colors and a 128-character product id needs about
2 KB of it (tests/unit/test_response.py checks that reply against this constant)."""

BatchTaskResult = S3BatchOperationResponseRecord
"""Outcome of one Batch Operations task: task_id, result_code, result_string."""


@dataclass(frozen=True)
class ViewPngs:
    """One photo's encoded outputs: mask (8-bit L, 255 = product) and cutout (RGBA)."""

    mask: bytes
    cutout: bytes


def encode_views(result: SetResult) -> list[ViewPngs]:
    """Encode each view's mask and cutout as PNG, at the photo's own size."""
    return [ViewPngs(mask=encode_png(view.mask), cutout=encode_png(view.cutout)) for view in result.views]


def inline_location(png: bytes) -> Location:
    """Describe a PNG returned inside the response."""
    return {"png_base64": base64.b64encode(png).decode("ascii")}


def s3_location(bucket: str, key: str) -> Location:
    """Describe a PNG stored in S3."""
    return {"s3_uri": f"s3://{bucket}/{key}", "key": key}


def file_location(name: str) -> Location:
    """Describe a PNG written by the CLI next to result.json."""
    return {"path": name}


def result_document(
    result: SetResult,
    *,
    product_id: str,
    locations: Sequence[tuple[Location, Location]],
    timings_ms: Mapping[str, float],
    result_uri: str | None = None,
) -> dict[str, Any]:
    """Build the result document described in the module docstring.

    Args:
        result: the pipeline's output.
        product_id: the id under which results are stored.
        locations: (mask, cutout) location per view, in view order.
        timings_ms: stage durations in milliseconds, merged over the pipeline's own.
        result_uri: where result.json is stored, or None for results returned inline.
    """
    images = [
        view_document(index, view, mask, cutout)
        for index, (view, (mask, cutout)) in enumerate(zip(result.views, locations, strict=True))
    ]
    timings = {**result.timings_ms, **timings_ms}
    document: dict[str, Any] = {
        "product_id": product_id,
        "model": {"name": result.model_name, "version": result.model_version},
        "category": result.category,
        "threshold": result.threshold,
        "images": images,
        "colors": [color.to_dict() for color in result.colors],
        "timings_ms": {name: round(float(value), 1) for name, value in timings.items()},
    }
    if result_uri is not None:
        document["result_uri"] = result_uri
    return document


def view_document(index: int, view: ViewResult, mask: Location, cutout: Location) -> dict[str, Any]:
    """Describe one photo's result; see the module docstring."""
    height, width = view.mask.shape
    return {
        "index": index,
        "width": int(width),
        "height": int(height),
        "empty": bool(view.empty),
        "status": "empty" if view.empty else "ok",
        "bbox": None if view.bbox is None else [int(value) for value in view.bbox],
        "coverage": round(float(view.coverage), 4),
        "confidence": round(float(view.confidence), 3),
        "mask": mask,
        "cutout": cutout,
    }


def error_document(error: errors.ApiError) -> dict[str, Any]:
    """Render an error as {"error": {"code", "message", "image_index"}}."""
    return {"error": {"code": error.code, "message": error.message, "image_index": error.image_index}}


def reply(source: EventSource, status_code: int, document: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap a document for the caller: an API Gateway response for API events, else the document."""
    if source in _API_SOURCES:
        return http_response(status_code, document)
    return dict(document)


def error_reply(source: EventSource, error: errors.ApiError) -> dict[str, Any]:
    """Render an error for the caller with its status code and the error's own headers (Allow)."""
    if source in _API_SOURCES:
        return http_response(error.status_code, error_document(error), headers=error.headers)
    return error_document(error)


def check_inline_size(pngs: Sequence[ViewPngs]) -> None:
    """Raise if the PNGs, base64-encoded, plus INLINE_RESERVE_BYTES would exceed MAX_RESPONSE_BYTES.

    This runs before the PNGs are base64-encoded and serialized, because those copies of a
    large result take more memory than the function has. The reply is not measured again after
    serialization, so INLINE_RESERVE_BYTES must cover everything in it except the PNGs.

    Raises:
        ResponseTooLargeError: the message gives the size and the two ways to stay under it.
    """
    size = sum(base64_length(png.mask) + base64_length(png.cutout) for png in pngs) + INLINE_RESERVE_BYTES
    if size > MAX_RESPONSE_BYTES:
        raise errors.ResponseTooLargeError(
            f"The inline response would be at least {size / 1e6:.1f} MB, over Lambda's response limit of "
            f"{MAX_RESPONSE_BYTES / 1e6:.1f} MB. Configure OUTPUT_BUCKET so that results are stored in S3, "
            "or send smaller photos."
        )


def base64_length(data: bytes) -> int:
    """Return the length of data once base64-encoded with padding."""
    return 4 * ((len(data) + 2) // 3)



def http_response(
    status_code: int, document: Mapping[str, Any], *, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Build an API Gateway proxy response with a JSON body.

    REST APIs (payload 1.0) and HTTP APIs (payload 2.0) both accept this shape.
    """
    return {
        "statusCode": status_code,
        "headers": {"Content-Type": "application/json", **cors_headers(), **(headers or {})},
        "body": json.dumps(document, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def png_response(png: bytes) -> dict[str, Any]:
    """Build an API Gateway proxy response whose body is one PNG, base64-encoded."""
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "image/png", **cors_headers()},
        "body": base64.b64encode(png).decode("ascii"),
        "isBase64Encoded": True,
    }


def cors_headers() -> dict[str, str]:
    """Return the CORS header when env CORS_ALLOW_ORIGIN is set, else nothing."""
    origin = os.environ.get("CORS_ALLOW_ORIGIN")
    return {"Access-Control-Allow-Origin": origin} if origin else {}


def manifests_reply(entries: Sequence[Mapping[str, Any]], ignored: int, malformed: int = 0) -> dict[str, Any]:
    """Build the return value for an S3 notification: one entry per manifest, and the skipped-record counts.

    Each entry is {"manifest": s3 URI, ...the result document or the error document}. ``ignored``
    counts well-formed records for other keys, ``malformed`` records that lack a required field.
    """
    return {"manifests": [dict(entry) for entry in entries], "ignored": ignored, "malformed": malformed}


def batch_reply(batch: BatchEvent, results: Sequence[BatchTaskResult]) -> dict[str, Any]:
    """Build the S3 Batch Operations response; tasks missing from results count as failed."""
    return {
        "invocationSchemaVersion": batch.schema_version,
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": batch.invocation_id,
        "results": [result.asdict() for result in results],
    }
