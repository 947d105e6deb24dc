"""Parse the request fields shared by API bodies, forms, direct invokes and manifests.

API Gateway JSON bodies, direct invokes and S3 manifests all carry the same JSON object,
``{"images": [...], "threshold": 0.5, "category": "top"}``, which ``parse_payload`` reads into
a SegmentRequest. The multipart form parser in ``request.py`` reuses the single-field parsers.
Nothing here reads S3. An image named by an S3 URI or a manifest-relative key becomes an S3Ref,
which ``storage.py`` fetches later.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handler import categories, errors

MAX_IMAGES = 4
"""Maximum photos per request; equals the model's ``max_views``."""

DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_PREDICTION_VALUE = -0.5
"""Default of the older service's ``minPredictionValue``; it maps to a threshold of 0.75."""

JSON_FIELDS = ("images", "threshold", "category")
"""Fields accepted in a JSON request body and in a manifest."""

_PRODUCT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

# S3 general purpose bucket naming rules: 3-63 characters of lowercase letters, digits, '.' and '-',
# starting and ending with a letter or digit, no '..', and not shaped like an IPv4 address.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_ADDRESS = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}")

# A decimal number as JSON or a form writes it. Python's float() also reads "1_0", "inf" and "nan".
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


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
    """One photo of a request: raw encoded bytes, or where to read them. Exactly one is set.

    Attributes:
        index: 0-based position of the photo in the request.
        data: the encoded file, for base64 and multipart photos.
        s3: where to read the file, for s3:// URIs and manifest entries.
        field: the multipart form field that carried the photo ("file1".."file4"), else None.
    """

    index: int
    data: bytes | None = None
    s3: S3Ref | None = None
    field: str | None = None

    @property
    def label(self) -> str:
        """Name the photo for messages by its 0-based index, as in the error's image_index.

        "image at index 1" is the second photo; form uploads add their field:
        "field file4 (image at index 1)".
        """
        if self.field is None:
            return f"image at index {self.index}"
        return f"field {self.field} (image at index {self.index})"


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


def parse_json_object(data: bytes, *, description: str) -> Mapping[str, Any]:
    """Decode a JSON object from UTF-8 bytes.

    Args:
        data: the raw JSON text; a leading UTF-8 byte order mark, as some Windows editors
            write, is skipped.
        description: what the bytes are, for the message ("request body", "manifest s3://...").
    Raises:
        InvalidRequestError: the bytes are empty, are not UTF-8 JSON, or the JSON is not an object.
    """
    if not data.strip():
        raise errors.InvalidRequestError(f'The {description} is empty; send a JSON object such as {{"images": [...]}}.')
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise errors.InvalidRequestError(
            f'The {description} is not valid JSON ({err}); send an object such as {{"images": [...]}}.'
        ) from err
    except RecursionError as err:
        raise errors.InvalidRequestError(
            f'The {description} nests JSON arrays or objects too deeply to parse; send a flat object such as {{"images": [...]}}.'
        ) from err
    except ValueError as err:
        # json.loads raises a plain ValueError for an integer literal longer than
        # sys.get_int_max_str_digits() digits (4300 by default).
        raise errors.InvalidRequestError(
            f"The {description} contains a number with more than {sys.get_int_max_str_digits()} digits; "
            "send numbers such as thresholds as short decimals (0.5)."
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
        InvalidRequestError, TooManyImagesError, InvalidThresholdError, UnknownCategoryError:
            the corresponding field is invalid.
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
    """
    if not isinstance(entry, str):
        raise errors.InvalidRequestError(
            f"images[{index}] must be a string, received {type(entry).__name__}.", image_index=index
        )
    if not is_encodable(entry):
        raise errors.InvalidRequestError(
            f"images[{index}] {errors.quote_value(entry)} is not valid Unicode (a lone surrogate such as \\ud800); "
            "send base64 data, or an S3 URI or key in UTF-8.",
            image_index=index,
        )
    if entry.startswith("s3://"):
        return ImageSource(index=index, s3=parse_s3_uri(entry, index))
    if manifest is not None:
        return ImageSource(index=index, s3=resolve_manifest_entry(entry, index, manifest))
    return ImageSource(index=index, data=decode_base64_image(entry, index))


def is_encodable(text: str) -> bool:
    """Tell whether text can be encoded as UTF-8: JSON admits lone surrogates (\\ud800) that S3 keys cannot hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_s3_uri(uri: str, index: int) -> S3Ref:
    """Split ``s3://bucket/key`` into an S3Ref.

    Raises:
        InvalidRequestError: the bucket or key is empty, or the bucket is not a valid S3 bucket
            name (access point ARNs and aliases are not accepted).
    """
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise errors.InvalidRequestError(
            f"images[{index}] {errors.quote_value(uri)} is not a valid S3 URI; expected s3://bucket/key.",
            image_index=index,
        )
    if not is_valid_bucket_name(bucket):
        raise errors.InvalidRequestError(
            f"images[{index}] {errors.quote_value(uri)} has an invalid bucket name {errors.quote_value(bucket)}; "
            "expected s3://bucket/key where bucket is 3 to 63 lowercase letters, digits, '.' or '-', "
            "starting and ending with a letter or digit. Access point ARNs are not accepted.",
            image_index=index,
        )
    return S3Ref(bucket=bucket, key=key)


def is_valid_bucket_name(name: str) -> bool:
    """Check a general purpose bucket name against the S3 naming rules."""
    return bool(_BUCKET_NAME.fullmatch(name)) and ".." not in name and not _IPV4_ADDRESS.fullmatch(name)


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
    if text[:5].lower() == "data:":
        header, separator, text = text.partition(",")
        # Any letter case is accepted in the scheme, the media type and the base64 token.
        if not separator or not header.lower().endswith(";base64"):
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
            f"images[{index}] {errors.quote_value(text, limit=24)} is neither valid base64 image data nor an s3:// URI.",
            image_index=index,
        ) from err
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
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
            number = float(value.strip())
    # float() raises OverflowError for an int beyond the float range (about 1.8e308) and
    # ValueError for a string that is not a number.
    except (OverflowError, ValueError):
        number = None
    if number is None or math.isnan(number) or not low <= number <= high:
        raise errors.InvalidThresholdError(
            f"{name} must be a number between {low:g} and {high:g}; received {errors.quote_value(value)}."
        )
    # Adding 0.0 turns -0.0 into 0.0, so the response never echoes a negative zero.
    number += 0.0
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
