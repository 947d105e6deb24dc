"""Errors that reach the caller, one class per case the caller can act on.

Each class carries the HTTP status and a stable machine-readable ``code``. ``response.py``
renders them as ``{"error": {"code", "message", "image_index"}}``. Pure modules raise
``ValueError`` subclasses instead, and the edge (``request.py``, ``payload.py``, ``storage.py``,
``app.py``) translates those into the classes here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

MAX_VALUE_CHARS = 60
"""Maximum characters of a caller's value quoted in a message."""


def quote_value(value: object, *, limit: int = MAX_VALUE_CHARS) -> str:
    """Format a caller's value for a message: repr, cut to ``limit`` characters.

    Args:
        value: any value taken from the request.
        limit: maximum characters kept before the ellipsis.
    Returns:
        The repr of value, ending in "..." when it was longer than limit.
    """
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        # repr raises ValueError for an int over sys.get_int_max_str_digits() digits,
        # and RecursionError for very deeply nested lists and dicts.
        text = f"<{type(value).__name__} too large to quote>"
    if len(text) <= limit:
        return text
    return text[:limit] + "..."


class ApiError(Exception):
    """Base of every error that is reported to the caller with a status code."""

    status_code: int = 500
    code: str = "internal_error"
    headers: ClassVar[Mapping[str, str]] = {}
    """HTTP headers added to the API Gateway response of this error."""

    def __init__(self, message: str, *, image_index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.image_index = image_index

    @property
    def retryable(self) -> bool:
        """Whether running the same request again could succeed: true for server errors (5xx)."""
        return self.status_code >= 500


class InvalidRequestError(ApiError):
    """The request is malformed: bad JSON, a missing or mistyped field, an unsafe id."""

    status_code = 400
    code = "invalid_request"


class TooManyImagesError(ApiError):
    """The request carries more photos than one model call accepts."""

    status_code = 400
    code = "too_many_images"


class ImageNotFoundError(ApiError):
    """A photo referenced by S3 URI or manifest entry does not exist."""

    status_code = 404
    code = "image_not_found"


class ImageAccessDeniedError(ApiError):
    """The function may not read a photo referenced by S3 URI."""

    status_code = 403
    code = "image_access_denied"


class ImageNotDecodableError(ApiError):
    """A photo is empty or is not in an image format Pillow can read."""

    status_code = 400
    code = "image_not_decodable"


class ImageTooSmallError(ApiError):
    """A photo is narrower or shorter than the handler's minimum side (app.MIN_IMAGE_SIDE)."""

    status_code = 400
    code = "image_too_small"


class ImageTooLargeError(ApiError):
    """A photo exceeds the byte or pixel limit, or the request's photos together exceed the pixel limit."""

    status_code = 413
    code = "image_too_large"


class PayloadTooLargeError(ApiError):
    """The request body exceeds the byte limit."""

    status_code = 413
    code = "payload_too_large"


class ResponseTooLargeError(ApiError):
    """The inline response would exceed Lambda's response size limit."""

    status_code = 413
    code = "response_too_large"


class RouteNotFoundError(ApiError):
    """The API path is neither /segment nor /predict."""

    status_code = 404
    code = "route_not_found"


class MethodNotAllowedError(ApiError):
    """The API request uses an HTTP method other than POST."""

    status_code = 405
    code = "method_not_allowed"
    headers: ClassVar[Mapping[str, str]] = {"Allow": "POST"}


class UnknownCategoryError(ApiError):
    """The category hint is not in the vocabulary and is not a known alias."""

    status_code = 400
    code = "unknown_category"


class InvalidThresholdError(ApiError):
    """The threshold (or legacy minPredictionValue) is not a number in its range."""

    status_code = 400
    code = "invalid_threshold"


class UnsupportedMediaTypeError(ApiError):
    """The request body has a content type other than JSON or multipart/form-data."""

    status_code = 415
    code = "unsupported_media_type"


class StorageError(ApiError):
    """Reading or writing S3 failed for a reason the caller cannot fix by changing the request."""

    status_code = 502
    code = "storage_error"


class OutputNotWritableError(ApiError):
    """The bucket that receives results does not exist, the function may not write to it, or OUTPUT_BUCKET is no bucket name.

    A deployment error: a retry fails the same way until OUTPUT_BUCKET or the function's role
    is fixed, so S3-triggered runs report it without asking Lambda or S3 Batch Operations to retry.
    """

    status_code = 500
    code = "output_not_writable"

    @property
    def retryable(self) -> bool:
        """False: a retry fails the same way until the bucket or the role changes."""
        return False


class ModelError(ApiError):
    """The segmentation model failed to load or to run."""

    status_code = 500
    code = "model_error"


class ModelNotLoadedError(ModelError):
    """The model file or its settings (MODEL_PATH, ORT_THREADS) are unusable; a deployment error."""

    @property
    def retryable(self) -> bool:
        """False: a retry fails the same way until the deployment changes."""
        return False


class InternalError(ApiError):
    """An unexpected failure; the detail is in the function's log only."""

    status_code = 500
    code = "internal_error"

    def __init__(self) -> None:
        super().__init__("Internal error while segmenting the images; see the function log for the request id.")


class TemporaryFailure(Exception):
    """An S3-triggered run failed for a temporary reason; raised out of the handler so that Lambda retries the event."""
