"""S3 reads and writes; the only module that imports boto3.

Reads translate botocore errors into ``handler.errors`` classes that name the object. Writes are
all-or-nothing from the reader's view. ``replace_result_set`` deletes the old completion marker
(result.json) first and writes the files in order with the marker last. If any write fails, it
deletes what it wrote. Only after success does it remove the earlier run's files that the new
set does not contain.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from handler import errors
from handler.payload import S3Ref

MAX_OBJECT_BYTES = 30 * 1024 * 1024
"""Largest photo or manifest read from S3; bigger objects are rejected before download."""

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket"})
_ACCESS_DENIED_CODES = frozenset({"AccessDenied", "403", "AllAccessDisabled", "InvalidObjectState"})
_UNWRITABLE_BUCKET_CODES = frozenset({"NoSuchBucket", "InvalidBucketName", "AccessDenied", "403", "AllAccessDisabled"})
"""S3 error codes of a write or delete that fails the same way until the bucket or the role changes."""
_RETRYABLE_CLIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "ExpiredToken",
        "OperationAborted",
        "SlowDown",
        "TooManyRequests",
        "TooManyRequestsException",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
    }
)
"""S3 error codes with a 4xx status that a later attempt can get past (time-outs, clock skew, throttling).

Any reply with HTTP status 429 (too many requests) counts as throttling as well."""


@dataclass(frozen=True)
class OutputFile:
    """One object to write: key, bytes and content type."""

    key: str
    body: bytes
    content_type: str


@dataclass(frozen=True)
class DeleteFailure:
    """An object that could not be deleted, the S3 error code and the botocore exception."""

    uri: str
    code: str
    error: ClientError | BotoCoreError


BUCKET_NAME = re.compile(r"[A-Za-z0-9._-]{3,255}|arn:aws(-cn|-us-gov)?:s3:[a-z0-9-]+:[0-9]{12}:accesspoint/[a-z0-9-]{3,50}")
"""A bucket name, loose enough for the older names of us-east-1, or an access point ARN.

Bucket names created since 2018 are stricter: 3-63 lowercase letters, digits, dots and hyphens.
This pattern only catches values that are no bucket at all, such as an s3:// URI, a path or a
bucket's own ARN, which boto3 does not accept as a bucket."""


def output_bucket() -> str | None:
    """Return the bucket for results (env OUTPUT_BUCKET), or None to return them inline.

    Raises:
        OutputNotWritableError: OUTPUT_BUCKET is set to something that is neither a bucket name
            nor an access point ARN.
    """
    name = os.environ.get("OUTPUT_BUCKET") or None
    if name is not None and not BUCKET_NAME.fullmatch(name):
        raise errors.OutputNotWritableError(
            f"OUTPUT_BUCKET={errors.quote_value(name)} is not a bucket name; set it to the bare name of the"
            " results bucket, such as 'my-results', without s3://, a path or spaces, or to an access point ARN."
        )
    return name


@functools.cache
def s3_client() -> Any:
    """Create the S3 client once per process; tests clear the cache between mocks."""
    return boto3.client("s3", config=Config(retries={"max_attempts": 4, "mode": "standard"}))


def read_object(ref: S3Ref, *, image_index: int | None = None, kind: str = "image") -> bytes:
    """Download one object.

    Args:
        ref: bucket and decoded key.
        image_index: position of the photo in the request, carried by the error; None for manifests.
        kind: "image" or "manifest", for messages.
    Returns:
        The object's bytes.
    Raises:
        ImageNotFoundError: the bucket or key does not exist.
        ImageAccessDeniedError: the function's role may not read the object.
        ImageTooLargeError: the object is larger than MAX_OBJECT_BYTES.
        InvalidRequestError: botocore rejected the bucket name or key before sending the request.
        StorageError: any other S3 or network failure.
    """
    try:
        response = s3_client().get_object(Bucket=ref.bucket, Key=ref.key)
        size = int(response.get("ContentLength", 0))
        if size > MAX_OBJECT_BYTES:
            response["Body"].close()
            raise errors.ImageTooLargeError(
                f"The {kind} {ref.uri} is {size} bytes; at most {MAX_OBJECT_BYTES} bytes are accepted.",
                image_index=image_index,
            )
        return bytes(response["Body"].read())
    except ClientError as err:
        raise _read_error(err, ref, image_index=image_index, kind=kind) from err
    except ParamValidationError as err:
        # botocore checks bucket names and keys before sending; its report quotes the regex it used.
        raise errors.InvalidRequestError(
            f"The {kind} location {errors.quote_value(ref.uri)} is not a valid S3 bucket and key; expected "
            "s3://bucket/key with a bucket name of 3 to 63 lowercase letters, digits, '.' or '-'.",
            image_index=image_index,
        ) from err
    except BotoCoreError as err:
        raise errors.StorageError(f"Reading {ref.uri} failed: {err}.", image_index=image_index) from err


def _read_error(err: ClientError, ref: S3Ref, *, image_index: int | None, kind: str) -> errors.ApiError:
    code = str(err.response.get("Error", {}).get("Code", ""))
    if code in _NOT_FOUND_CODES:
        return errors.ImageNotFoundError(
            f"The {kind} {ref.uri} was not found; check the bucket and key.", image_index=image_index
        )
    if code in _ACCESS_DENIED_CODES:
        return errors.ImageAccessDeniedError(
            f"Access to the {kind} {ref.uri} was denied ({code}); grant the function s3:GetObject on it or copy it into the input bucket.",
            image_index=image_index,
        )
    return errors.StorageError(f"Reading {ref.uri} failed with S3 error {code}.", image_index=image_index)


def write_objects(bucket: str, files: Sequence[OutputFile]) -> list[S3Ref]:
    """Write the files in order; on the first failure, delete those already written and raise.

    Args:
        bucket: destination bucket.
        files: objects in write order; put the file that marks completion (result.json) last.
    Returns:
        Where each file was written, in the same order.
    Raises:
        OutputNotWritableError: the write failed in a way a retry does not fix
            (is_permanent_write_error); the files written before were deleted again, as for StorageError.
        StorageError: a write failed; the files written before it were deleted again, as far
            as S3 allowed (a failed delete is named in the message).
    """
    written: list[S3Ref] = []
    for file in files:
        ref = S3Ref(bucket=bucket, key=file.key)
        try:
            s3_client().put_object(Bucket=bucket, Key=file.key, Body=file.body, ContentType=file.content_type)
        except (ClientError, BotoCoreError) as err:
            leftovers = delete_objects(written)
            detail = f" Could not delete {describe_failures(leftovers)}." if leftovers else ""
            if is_permanent_write_error(err):
                raise _unwritable(bucket, error_code(err), f"writing {ref.uri}", detail) from err
            raise errors.StorageError(f"Writing {ref.uri} failed: {err}.{detail}") from err
        written.append(ref)
    return written


def replace_result_set(
    bucket: str, files: Sequence[OutputFile], *, marker_key: str, stale_keys: Sequence[str]
) -> list[DeleteFailure]:
    """Replace one product's stored result set so that the marker is present only when the set is complete.

    The steps are: delete the old marker, write ``files`` in order (the marker last, by the
    caller's ordering), then delete ``stale_keys``, the earlier run's files that the new set
    does not contain. If a write fails, the files this run wrote are deleted again, so no
    marker is left and the earlier run's remaining files are listed by nothing.

    Args:
        bucket: destination bucket.
        files: objects in write order, ending with the marker (result.json).
        marker_key: key of the marker, whose presence means "this result set is complete".
        stale_keys: keys to remove after the marker is written; deleting a missing key succeeds.
    Returns:
        The stale objects that could not be deleted; the new result set is complete and
        consistent either way.
    Raises:
        OutputNotWritableError: a delete or write failed in a way a retry does not fix
            (is_permanent_write_error).
        StorageError: the old marker could not be deleted, or a write failed. When the marker
            stays, nothing was written, the message gives the S3 error code, and the botocore
            error is the exception's cause.
    """
    marker = S3Ref(bucket=bucket, key=marker_key)
    marker_failures = delete_objects([marker])
    if marker_failures:
        failure = marker_failures[0]
        if is_permanent_write_error(failure.error):
            step = f"deleting the previous {marker.uri}"
            raise _unwritable(bucket, failure.code, step, " Nothing was written.") from failure.error
        raise errors.StorageError(
            f"Deleting the previous {marker.uri} failed with S3 error {failure.code}; nothing was written."
        ) from failure.error
    write_objects(bucket, files)
    return delete_objects([S3Ref(bucket=bucket, key=key) for key in stale_keys])


def is_permanent_write_error(err: ClientError | BotoCoreError) -> bool:
    """Tell whether a failed put or delete would fail the same way when tried again.

    True for a missing bucket, denied access and any other client error (HTTP 4xx, such as
    a disabled KMS key or invalid credentials) except time-outs, clock skew and throttling.
    True as well for parameters that botocore rejects before sending, such as an unusable
    bucket value. False for server errors (5xx) and for network errors without an S3 reply.
    """
    if isinstance(err, ParamValidationError):
        return True
    if not isinstance(err, ClientError):
        return False
    code = error_code(err)
    if code in _UNWRITABLE_BUCKET_CODES:
        return True
    if code in _RETRYABLE_CLIENT_CODES:
        return False
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return isinstance(status, int) and 400 <= status < 500 and status != 429


def _unwritable(bucket: str, code: str, step: str, detail: str) -> errors.OutputNotWritableError:
    """Build the error for a result bucket that the function cannot write to, naming where the bucket came from."""
    source = "OUTPUT_BUCKET" if os.environ.get("OUTPUT_BUCKET") == bucket else "the manifest's bucket, as OUTPUT_BUCKET is unset"
    return errors.OutputNotWritableError(
        f"The function cannot write results to bucket {bucket!r} ({source}): {step} failed with S3 error"
        f" {code}, which a retry does not fix.{detail} Check that the bucket exists and that the function's"
        " role may put and delete objects in it (and use its KMS key, if any)."
    )


def delete_objects(refs: Sequence[S3Ref]) -> list[DeleteFailure]:
    """Delete objects one by one; return those that could not be deleted, with their errors."""
    failed = []
    for ref in refs:
        try:
            s3_client().delete_object(Bucket=ref.bucket, Key=ref.key)
        except (ClientError, BotoCoreError) as err:
            failed.append(DeleteFailure(uri=ref.uri, code=error_code(err), error=err))
    return failed


def error_code(err: ClientError | BotoCoreError) -> str:
    """Return the S3 error code of a ClientError, or the class name of a botocore error without one."""
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", "")) or "unknown"
    return type(err).__name__


def describe_failures(failures: Sequence[DeleteFailure]) -> str:
    """Format failed deletes for a message: "s3://b/k (AccessDenied), ..."."""
    return ", ".join(f"{failure.uri} ({failure.code})" for failure in failures)
