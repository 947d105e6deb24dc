"""Detect which service sent a Lambda event and parse it into plain request objects.

``parse_event`` is the one entry point for Lambda events. This module reads API Gateway and
direct-invoke events itself and passes S3 events to ``handler.s3_events``, while
``handler.payload`` parses the fields that every shape shares. The accepted shapes are:

- API Gateway REST API (payload 1.0) and HTTP API (payload 2.0) events with a JSON body
  ``{"images": [...], "threshold": 0.5, "category": "top"}`` or a ``multipart/form-data`` body with
  files ``file1``..``file4`` and optional ``threshold`` and ``category`` fields. Each JSON image is
  base64 data, a ``data:`` URI, or an ``s3://bucket/key`` URI.
- The ``/predict`` route of the older service: multipart ``file1``..``file4`` and the query
  parameter ``minPredictionValue`` (see ``payload.parse_min_prediction_value``).
- S3 ObjectCreated notifications for ``<INPUT_PREFIX><product-id>/manifest.json``.
- S3 Batch Operations events (schema 1.0 and 2.0) whose tasks name manifest.json keys.
- A direct invoke whose payload is the JSON body above plus an optional ``product_id``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import multipart

from handler import errors
from handler.payload import (
    JSON_FIELDS,
    MAX_IMAGES,
    ImageSource,
    SegmentRequest,
    check_image_count,
    parse_category,
    parse_json_object,
    parse_min_prediction_value,
    parse_payload,
    parse_product_id,
    parse_threshold,
)
from handler.s3_events import BatchEvent, ManifestEvent, parse_batch_event, parse_s3_notification

MAX_BODY_BYTES = 6 * 1024 * 1024
"""Largest accepted request body after base64 decoding: Lambda's synchronous payload limit."""

LEGACY_ROUTE = "/predict"
ROUTES = ("/segment", LEGACY_ROUTE)
"""API paths the function serves, matched by the last segment of the request path."""

_DIRECT_FIELDS = (*JSON_FIELDS, "product_id")
_FORM_FILES = tuple(f"file{number}" for number in range(1, MAX_IMAGES + 1))
_FORM_FIELDS = ("threshold", "category")


class EventSource(enum.Enum):
    """Which service sent the event; it also decides the shape of the reply."""

    API_V1 = "api_v1"
    API_V2 = "api_v2"
    S3_NOTIFICATION = "s3_notification"
    S3_BATCH = "s3_batch"
    DIRECT = "direct"


def detect_source(event: object) -> EventSource:
    """Tell which service sent the event from its top-level keys.

    Args:
        event: the Lambda event as received.
    Returns:
        The EventSource; anything unrecognized counts as a direct invoke. Any event with a
        ``Records`` key counts as an S3 notification, so that a malformed one is reported as such.
    """
    if not isinstance(event, Mapping):
        return EventSource.DIRECT
    if "invocationSchemaVersion" in event or ("tasks" in event and "invocationId" in event):
        return EventSource.S3_BATCH
    if "Records" in event:
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
    if not isinstance(event, Mapping):
        raise errors.InvalidRequestError(
            f'Expected a JSON object event, received {type(event).__name__}; send {{"images": [...]}}.'
        )
    if source is EventSource.S3_BATCH:
        return parse_batch_event(event)
    if source is EventSource.S3_NOTIFICATION:
        return parse_s3_notification(event)
    if source is EventSource.DIRECT:
        return parse_payload(event, allowed=_DIRECT_FIELDS, product_id=event.get("product_id"))
    return parse_api_event(read_api_call(event, source))


@dataclass(frozen=True)
class ApiCall:
    """The fields of an API Gateway event that this function reads, checked for type.

    Attributes:
        method: HTTP method, upper case.
        path: request path; for HTTP APIs it may start with the stage name.
        body: the body as sent, "" when there is none.
        is_base64: whether API Gateway base64-encoded the body.
        headers: header names in lower case mapped to their values.
        query: query string parameters.
    """

    method: str
    path: str
    body: str
    is_base64: bool
    headers: Mapping[str, str]
    query: Mapping[str, str]


def read_api_call(event: Mapping[str, Any], source: EventSource) -> ApiCall:
    """Read the method, path, body, headers and query of an API Gateway event (payload 1.0 or 2.0).

    Raises:
        InvalidRequestError: a field is missing or has the wrong JSON type.
    """
    if source is EventSource.API_V2:
        context = event.get("requestContext")
        http = context.get("http") if isinstance(context, Mapping) else None
        method = http.get("method") if isinstance(http, Mapping) else None
        method_name, path_name, path = "requestContext.http.method", "rawPath", event.get("rawPath")
    else:
        method_name, path_name = "httpMethod", "path"
        method, path = event.get("httpMethod"), event.get("path")
    _require_api_field(method_name, method, str)
    _require_api_field(path_name, path, str)
    body = event.get("body")
    _require_api_field("body", body, (str, type(None)))
    is_base64 = event.get("isBase64Encoded", False)
    _require_api_field("isBase64Encoded", is_base64, (bool, type(None)))
    headers = event.get("headers")
    _require_api_field("headers", headers, (Mapping, type(None)))
    query = event.get("queryStringParameters")
    _require_api_field("queryStringParameters", query, (Mapping, type(None)))
    return ApiCall(
        method=str(method).upper(),
        path=str(path),
        body=body or "",
        is_base64=bool(is_base64),
        # A header whose value is null is left out, as if it were not sent.
        headers={str(name).lower(): str(value) for name, value in (headers or {}).items() if value is not None},
        query=dict(query or {}),
    )


def _require_api_field(name: str, value: object, expected: type | tuple[type, ...]) -> None:
    if not isinstance(value, expected):
        received = "nothing" if value is None else type(value).__name__
        raise errors.InvalidRequestError(
            f"The API Gateway event field {name!r} is missing or has the wrong type (received {received}); "
            "invoke the function through the API's POST /segment or POST /predict route."
        )


def check_route(call: ApiCall) -> bool:
    """Match the path to a route and the method to POST; return True for the ``/predict`` route.

    The path matches by its last segment, so stage names and custom domain base paths in front of
    /segment or /predict are accepted.

    Raises:
        RouteNotFoundError: the last path segment is neither segment nor predict.
        MethodNotAllowedError: the method is not POST.
    """
    route = "/" + call.path.rstrip("/").rpartition("/")[2]
    if route not in ROUTES:
        raise errors.RouteNotFoundError(
            f"No route for path {errors.quote_value(call.path)}; send POST requests to {' or '.join(ROUTES)}."
        )
    if call.method != "POST":
        raise errors.MethodNotAllowedError(
            f"Method {errors.quote_value(call.method)} is not allowed on {route}; send a POST request."
        )
    return route == LEGACY_ROUTE


def parse_api_event(call: ApiCall) -> SegmentRequest:
    """Parse an API Gateway request after ``read_api_call`` checked its fields.

    Raises:
        RouteNotFoundError, MethodNotAllowedError: see ``check_route``.
        PayloadTooLargeError: the body exceeds MAX_BODY_BYTES.
        UnsupportedMediaTypeError: the content type is neither JSON nor multipart/form-data,
            or ``/predict`` received something other than multipart/form-data.
        ApiError: any other invalid field, from ``parse_payload`` or ``parse_form``.
    """
    is_legacy = check_route(call)
    if not is_legacy:
        # /predict keeps ignoring parameters it does not read, as the older service did.
        check_query(call.query)
    body = read_body(call)
    content_type = call.headers.get("content-type") or ""
    media_type, options = multipart.parse_options_header(content_type) if content_type else ("", {})

    if is_legacy:
        if media_type != "multipart/form-data":
            raise errors.UnsupportedMediaTypeError(
                f"Received content type {errors.quote_value(content_type)} on {LEGACY_ROUTE}; "
                "send multipart/form-data with fields file1 to file4."
            )
        threshold = parse_min_prediction_value(call.query.get("minPredictionValue"))
        return parse_form(body, options.get("boundary", ""), legacy_threshold=threshold)
    if media_type == "multipart/form-data":
        return parse_form(body, options.get("boundary", ""))
    if media_type in ("", "application/json") or media_type.endswith("+json"):
        return parse_payload(parse_json_object(body, description="request body"), allowed=JSON_FIELDS)
    raise errors.UnsupportedMediaTypeError(
        f"Received content type {errors.quote_value(content_type)}; send application/json or multipart/form-data."
    )


def check_query(query: Mapping[str, str]) -> None:
    """Reject query parameters on /segment, so that a misplaced option is not silently ignored.

    The X-Amz-* parameters of a request signed in its query string (SigV4) are allowed.

    Raises:
        InvalidRequestError: a parameter other than X-Amz-* is present.
    """
    unknown = sorted(name for name in query if not name.lower().startswith("x-amz-"))
    if unknown:
        names = ", ".join(errors.quote_value(name) for name in unknown)
        raise errors.InvalidRequestError(
            f"Unknown query parameter {names}: /segment takes none; send threshold and category in the JSON body "
            "or as form fields."
        )


def read_body(call: ApiCall) -> bytes:
    """Return the request body as bytes, base64-decoded when API Gateway encoded it."""
    text = call.body
    if call.is_base64:
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
    # Only file5, file6, ... mean "more photos"; file0 or file01 are misnamed fields.
    numbered = [name for name in unknown if re.fullmatch(r"file[1-9][0-9]*", name)]
    if numbered:
        raise errors.TooManyImagesError(
            f"Received form field {errors.quote_value(numbered[0])}; at most {MAX_IMAGES} images "
            f"(fields file1 to file{MAX_IMAGES}) are accepted per request."
        )
    if unknown:
        raise errors.InvalidRequestError(
            f"Unknown form field {errors.quote_value(unknown[0])}; accepted fields are {', '.join(_FORM_FILES + _FORM_FIELDS)}."
        )
    if legacy_threshold is not None and "threshold" in fields:
        raise errors.InvalidRequestError(
            f"{LEGACY_ROUTE} takes the query parameter minPredictionValue, not a threshold field."
        )

    names = [name for name in _FORM_FILES if name in fields]
    check_image_count(len(names))
    images = [ImageSource(index=index, data=fields[name], field=name) for index, name in enumerate(names)]
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
        raise errors.InvalidRequestError(_describe_form_error(err, boundary, seen_part=current is not None)) from err
    return {name: bytes(content) for name, content in fields.items()}


def _describe_form_error(err: multipart.MultipartError, boundary: str, *, seen_part: bool) -> str:
    """Describe a multipart parser error with what the body lacks and which fields are accepted."""
    accepted = f"Accepted fields: {', '.join(_FORM_FILES + _FORM_FIELDS)}."
    text = str(err)
    if "line break" in text:
        return (
            f"The multipart/form-data body is malformed: {text}; every line of the body's framing must end "
            f"with CRLF (\\r\\n). {accepted}"
        )
    if "segment count" in text:
        return (
            f"The multipart/form-data body has more than {2 * len(_FORM_FILES + _FORM_FIELDS)} parts; "
            f"send each field once. {accepted}"
        )
    if not seen_part and ("Unexpected end" in text or not text):
        return (
            f"The multipart/form-data body has no part delimited by the boundary {boundary!r} from the "
            f"Content-Type header; each part must start with a line --{boundary} ending in CRLF (\\r\\n), "
            f"and the body must end with --{boundary}--. {accepted}"
        )
    if not seen_part:
        # The delimiter was found, so the parser's reason is about the first part's headers.
        return (
            f"The multipart/form-data body has no valid part ({text}). Each part must start with a line "
            f"--{boundary} (the boundary from the Content-Type header) ending in CRLF (\\r\\n), then a "
            f"'Content-Disposition: form-data; name=...' header, and the body must end with --{boundary}--. "
            f"{accepted}"
        )
    if "Unexpected end" in text:
        return f"The multipart/form-data body ends before its closing line --{boundary}--; send the whole body. {accepted}"
    return f"The multipart/form-data body is malformed: {text}. {accepted}"


def _form_text(fields: Mapping[str, bytes], name: str) -> str | None:
    if name not in fields:
        return None
    try:
        return fields[name].decode("utf-8")
    except UnicodeDecodeError as err:
        raise errors.InvalidRequestError(f"Form field {name!r} is not UTF-8 text.") from err
