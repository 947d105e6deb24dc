"""Lambda entry point: parse the event, segment the photos, store or return the results.

This is the one module that catches exceptions: an ApiError becomes its status code, anything
else a 500 with a generic message while the detail goes to the log. The exception is
errors.TemporaryFailure, which leaves the handler so that Lambda retries an S3 notification.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from numpy.typing import NDArray

from handler import errors, imaging, legacy, payload, pipeline, request, response, results, s3_events, storage
from handler.segmenter import InferenceError, InvalidThreadCountError, ModelContractError, Segmenter, get_segmenter

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "fashion-seg"))

DOUBTFUL_MIN_FRACTION = 0.01
DOUBTFUL_MAX_FRACTION = 0.95
"""Masks covering less or more of the frame than these are returned but logged as WARNING."""

# Peak RSS of one request, measured with /usr/bin/time -v on a 2-core x86-64 machine:
# 4 x 4000x4000 noisy JPEG (64 MP) 1.19 GB, 4 x 4000x4000 flat PNG (64 MP) 0.84 GB.
# 4 x 5000x5000 noisy JPEG (100 MP) took 1.75 GB, too close to the template's default MemorySize of 2048 MB.
# Model 1.2.0 (two passes per set): 4 x 4000x4000 noisy JPEG sent inline as base64, up to the response
# size check, peaked at 1.29 GB.
# Cutouts built one view at a time (ViewResult.cutout): tests/bench/peak_memory.py (4 x 4000x4000 noisy
# JPEG, inline) peaks at 840 MiB, against 1039 MiB when every view kept its cutout.
# NOTE: this fixed constant does not follow MemorySize, so lower it when MemorySize is lowered.
MAX_REQUEST_PIXELS = 64_000_000
"""Largest accepted sum of width x height over a request's photos, read from their headers."""
MIN_IMAGE_SIDE = 32
"""Shortest accepted photo side in pixels. An icon or a broken thumbnail has too few pixels for a
meaningful mask or colors, so it is rejected rather than segmented."""

_model_logged = False


@dataclass(frozen=True)
class Segmentation:
    """Decoded photos of one request and the pipeline's result for them."""

    images: list[NDArray[np.uint8]]
    result: pipeline.SetResult
    timings_ms: dict[str, float]


@dataclass(frozen=True)
class ManifestOutcome:
    """One manifest's entry in the S3 notification reply, and whether a retry could fix its failure."""

    entry: dict[str, Any]
    temporary: bool = False


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Handle API Gateway, S3, S3 Batch Operations and direct invocations; see handler.request.

    Raises:
        TemporaryFailure: an S3 notification's manifest failed with a storage or model error.
    """
    source = request.detect_source(event)
    logger.append_keys(event_source=source.value)
    try:
        parsed = request.parse_event(event, source)

        if isinstance(parsed, s3_events.BatchEvent):
            return run_batch(parsed)
        if isinstance(parsed, s3_events.ManifestEvent):
            return run_notification(parsed)

        # The /predict route returns only a mask grid, so it skips the color clustering.
        segmentation = segment_request(parsed, colors=not parsed.legacy)
        if parsed.legacy:
            return response.png_response(render_legacy(parsed, segmentation))
        return response.reply(source, 200, publish(parsed, segmentation))

    except errors.TemporaryFailure:
        raise
    except errors.ApiError as err:
        log_api_error(err)
        return response.error_reply(source, err)
    except Exception:
        logger.exception("request_failed")
        return response.error_reply(source, errors.InternalError())


def run_notification(notification: s3_events.ManifestEvent) -> dict[str, Any]:
    """Run every manifest of an S3 notification and report each one's result or error.

    Lambda retries an asynchronous invocation that raised, twice by default (MaximumRetryAttempts
    of the function's event invoke config, per the AWS Lambda guide on asynchronous error
    handling). A retry runs every manifest of the event again. Each run replaces its product's
    stored results, so a manifest that succeeded before is only written again.

    Raises:
        TemporaryFailure: after all manifests ran, when any failed with a retryable storage or
            model error (5xx). Errors of the request (4xx), an output bucket that is missing or
            not writable, and unexpected errors are only reported.
    """
    for ignored in notification.ignored:
        logger.info("s3_record_ignored", extra={"bucket": ignored.bucket, "key": ignored.key})
    for problem in notification.malformed:
        logger.warning("s3_record_malformed", extra={"problem": problem})

    outcomes = [run_manifest_safely(manifest) for manifest in notification.manifests]

    retried = [outcome.entry["manifest"] for outcome in outcomes if outcome.temporary]
    if retried:
        logger.error("manifests_failed_temporarily", extra={"manifests": retried, "manifest_count": len(outcomes)})
        raise errors.TemporaryFailure(
            f"{len(retried)} of {len(outcomes)} manifests failed with a storage or model error: {', '.join(retried)}."
        )
    entries = [outcome.entry for outcome in outcomes]
    return response.manifests_reply(entries, len(notification.ignored), len(notification.malformed))


def run_manifest(manifest: payload.S3Ref) -> dict[str, Any]:
    """Read a manifest, segment its photos and store the results; return the result document."""
    data = storage.read_object(manifest, kind="manifest")
    segment = s3_events.parse_manifest(data, manifest)
    return publish(segment, segment_request(segment))


def run_manifest_safely(manifest: payload.S3Ref) -> ManifestOutcome:
    """Run one manifest of an S3 notification, turning its failure into an error entry."""
    try:
        return ManifestOutcome({"manifest": manifest.uri, **run_manifest(manifest)})
    except errors.ApiError as err:
        log_api_error(err, manifest=manifest.uri)
        return ManifestOutcome({"manifest": manifest.uri, **response.error_document(err)}, err.retryable)
    except Exception:
        logger.exception("manifest_failed", extra={"manifest": manifest.uri})
        return ManifestOutcome({"manifest": manifest.uri, **response.error_document(errors.InternalError())})


def run_batch(batch: s3_events.BatchEvent) -> dict[str, Any]:
    """Run every task of an S3 Batch Operations event.

    Tasks without a taskId get no result entry, which the reply's treatMissingKeysAs makes a
    permanent failure.
    """
    for problem in batch.unidentified:
        logger.warning("batch_task_unidentified", extra={"problem": problem})
    return response.batch_reply(batch, [run_batch_task(task) for task in batch.tasks])


def run_batch_task(task: s3_events.BatchTask) -> response.BatchTaskResult:
    """Run one S3 Batch Operations task; retryable errors are temporary (retried), the rest permanent."""
    if task.manifest is None:
        error: errors.ApiError = errors.InvalidRequestError(task.problem or "Task names no manifest.")
        logger.warning("batch_task_malformed", extra={"task_id": task.task_id, "problem": error.message})
        return response.BatchTaskResult(task.task_id, "PermanentFailure", f"{error.code}: {error.message}")
    try:
        document = run_manifest(task.manifest)
        return response.BatchTaskResult(task.task_id, "Succeeded", document["result_uri"])
    except errors.ApiError as err:
        log_api_error(err, manifest=task.manifest.uri)
        outcome: Literal["TemporaryFailure", "PermanentFailure"] = (
            "TemporaryFailure" if err.retryable else "PermanentFailure"
        )
        return response.BatchTaskResult(task.task_id, outcome, f"{err.code}: {err.message}")
    except Exception:
        logger.exception("manifest_failed", extra={"manifest": task.manifest.uri})
        error = errors.InternalError()
        return response.BatchTaskResult(task.task_id, "PermanentFailure", f"{error.code}: {error.message}")


def segment_request(segment: payload.SegmentRequest, *, colors: bool = True) -> Segmentation:
    """Read and decode every photo, then run the pipeline on the set; nothing is written yet.

    Args:
        segment: the parsed request.
        colors: False skips the color clustering; the result then has no colors.
    Raises:
        ImageTooLargeError: the photos' headers add up to more than MAX_REQUEST_PIXELS, checked
            before any photo is decoded, or one photo is over the decoder's own limit.
        ModelError: the model could not be loaded or onnxruntime failed while running it.
        InvalidRequestError: storing the results would overwrite or delete one of the photos.
        ApiError: any other unreadable or undecodable photo, or a pipeline argument out of range.
    """
    bucket = results_bucket(segment)
    if bucket is not None:
        results.check_inputs_kept(segment, bucket)

    started = time.perf_counter()
    encoded = [read_image(source) for source in segment.images]
    read_ms = (time.perf_counter() - started) * 1000
    check_total_pixels(segment.images, encoded)

    images, decode_ms = [], []
    for source, data in zip(segment.images, encoded, strict=True):
        started = time.perf_counter()
        images.append(decode_photo(data, source))
        decode_ms.append((time.perf_counter() - started) * 1000)

    segmenter = load_segmenter()
    try:
        result = pipeline.segment_set(
            images, segmenter, threshold=segment.threshold, category=segment.category, colors=colors
        )
    except pipeline.TooManyImagesError as err:
        raise errors.TooManyImagesError(str(err)) from err
    except (InferenceError, ModelContractError) as err:
        raise errors.ModelError(
            "The segmentation model failed to run on this request; see the function log for the request id."
        ) from err

    for source, view, ms in zip(segment.images, result.views, decode_ms, strict=True):
        log_view(source, view, decode_ms=ms)
    return Segmentation(images=images, result=result, timings_ms={"read": read_ms, "decode": sum(decode_ms)})


def read_image(source: payload.ImageSource) -> bytes:
    """Return a photo's encoded bytes, downloading it when the request named an S3 object."""
    if source.data is not None:
        return source.data
    if source.s3 is None:
        raise errors.InvalidRequestError(
            f"{sentence_start(source.label)} has neither data nor an S3 URI.", image_index=source.index
        )
    return storage.read_object(source.s3, image_index=source.index)


def check_total_pixels(sources: Sequence[payload.ImageSource], encoded: Sequence[bytes]) -> None:
    """Reject a request whose photos together exceed MAX_REQUEST_PIXELS, reading only their headers.

    A photo whose header cannot be read is left out of the sum, because decode_photo then
    raises the reason.

    Raises:
        ImageTooLargeError: the message gives the total, each photo's size and the limit.
    """
    sizes = [(source, imaging.read_image_size(data)) for source, data in zip(sources, encoded, strict=True)]
    known = [(source, size) for source, size in sizes if size is not None]
    total = sum(width * height for _, (width, height) in known)
    if total <= MAX_REQUEST_PIXELS:
        return
    listed = ", ".join(f"{source.label} is {width} x {height}" for source, (width, height) in known)
    raise errors.ImageTooLargeError(
        f"The photos of this request total {total / 1e6:.1f} MP ({listed}); at most "
        f"{MAX_REQUEST_PIXELS / 1e6:.0f} MP are accepted per request. Send fewer photos or downscale them."
    )


def decode_photo(data: bytes, source: payload.ImageSource) -> NDArray[np.uint8]:
    """Decode one photo, translating the decoder's errors into API errors that name the photo.

    Raises:
        ImageTooLargeError, ImageNotDecodableError: from the decoder.
        ImageTooSmallError: a side of the photo is under MIN_IMAGE_SIDE pixels.
    """
    try:
        image = imaging.decode_image(data)
    except imaging.ImageTooLargeError as err:
        raise errors.ImageTooLargeError(err.describe(sentence_start(source.label)), image_index=source.index) from err
    except imaging.UndecodableImageError as err:
        raise errors.ImageNotDecodableError(
            f"{sentence_start(source.label)} could not be decoded: {err}", image_index=source.index
        ) from err
    height, width = image.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise errors.ImageTooSmallError(
            f"{sentence_start(source.label)} is {width} x {height} pixels; photos at least {MIN_IMAGE_SIDE} pixels "
            "wide and high are accepted. Send the full-size photo, not a thumbnail or icon.",
            image_index=source.index,
        )
    return image


def sentence_start(text: str) -> str:
    """Return text with its first letter in upper case, for a label that starts a message."""
    return text[:1].upper() + text[1:]


def load_segmenter() -> Segmenter:
    """Return the process-wide segmenter, logging the model's identity once per cold start."""
    global _model_logged
    try:
        segmenter = get_segmenter()
    except InvalidThreadCountError as err:
        raise errors.ModelNotLoadedError(f"The segmentation model could not be loaded: {err}.") from err
    # onnxruntime's load errors (NoSuchFile, InvalidProtobuf, Fail) derive directly from
    # Exception, so no narrower class covers them all.
    except Exception as err:
        raise errors.ModelNotLoadedError(
            "The segmentation model could not be loaded; check MODEL_PATH and the deployed model file."
        ) from err
    if not _model_logged:
        logger.info(
            "model_loaded",
            extra={"model_name": segmenter.name, "model_version": segmenter.version, "model_sha256": segmenter.sha256},
        )
        _model_logged = True
    return segmenter


def render_legacy(segment: payload.SegmentRequest, segmentation: Segmentation) -> bytes:
    """Encode the older service's 256 x 256 RGBA grid PNG for the /predict route."""
    masks = [view.mask > 0 for view in segmentation.result.views]
    png = imaging.encode_png(legacy.render_legacy_grid(segmentation.images, masks))
    log_request(segment, {**segmentation.result.timings_ms, **segmentation.timings_ms}, upload_ms=0.0)
    return png


def publish(segment: payload.SegmentRequest, segmentation: Segmentation) -> dict[str, Any]:
    """Encode the masks and cutouts, then store them with result.json in S3 or return them inline.

    S3 and Batch Operations requests without OUTPUT_BUCKET write to the manifest's own bucket.

    Returns:
        The result document; for stored results it also carries ``result_uri`` and equals the
        stored result.json.
    Raises:
        ResponseTooLargeError: the inline PNGs and a margin for the rest of the reply would
            exceed Lambda's response limit.
        OutputNotWritableError, StorageError: a write failed; see results.store_results.
    """
    started = time.perf_counter()
    pngs = response.encode_views(segmentation.result)
    timings = {**segmentation.timings_ms, "encode": (time.perf_counter() - started) * 1000}
    bucket = results_bucket(segment)

    if bucket is None:
        # The request is logged before the size check, so a rejected response still has its line.
        log_request(segment, {**segmentation.result.timings_ms, **timings}, upload_ms=0.0)
        response.check_inline_size(pngs)
        locations = [(response.inline_location(png.mask), response.inline_location(png.cutout)) for png in pngs]
        return response.result_document(
            segmentation.result, product_id=segment.product_id, locations=locations, timings_ms=timings
        )

    started = time.perf_counter()
    stored = results.store_results(bucket, segment.product_id, segmentation.result, pngs, timings_ms=timings)
    log_request(segment, stored.document["timings_ms"], upload_ms=(time.perf_counter() - started) * 1000)
    if stored.undeleted:
        logger.warning(
            "stale_results_not_deleted",
            extra={
                "product_id": segment.product_id,
                "uris": [failure.uri for failure in stored.undeleted],
                "error_codes": [failure.code for failure in stored.undeleted],
            },
        )
    return stored.document


def results_bucket(segment: payload.SegmentRequest) -> str | None:
    """Return the bucket publish stores the request's results in, or None when they are returned inline.

    OUTPUT_BUCKET when set, else the manifest's own bucket. The /predict route stores nothing.
    """
    if segment.legacy:
        return None
    return storage.output_bucket() or (segment.manifest.bucket if segment.manifest else None)


def log_view(source: payload.ImageSource, view: pipeline.ViewResult, *, decode_ms: float) -> None:
    """Log one INFO line per photo, or WARNING when its mask covers a doubtful share of the frame."""
    height, width = view.mask.shape
    keys: dict[str, Any] = {
        "image_index": source.index,
        "source": "s3" if source.s3 else "inline",
        "height": int(height),
        "width": int(width),
        "mask_fraction": round(float(view.coverage), 4),
        "confidence": round(float(view.confidence), 3),
        "decode_ms": round(decode_ms, 1),
    }
    if source.s3:
        keys.update(bucket=source.s3.bucket, key=source.s3.key)
    doubtful = not DOUBTFUL_MIN_FRACTION <= view.coverage <= DOUBTFUL_MAX_FRACTION
    (logger.warning if doubtful else logger.info)("image_segmented", extra=keys)


def log_request(segment: payload.SegmentRequest, timings_ms: dict[str, float], *, upload_ms: float) -> None:
    """Log one INFO line per request with its size, options and stage timings."""
    timings = {f"{name}_ms": round(float(value), 1) for name, value in timings_ms.items()}
    logger.info(
        "request_completed",
        extra={
            "product_id": segment.product_id,
            "image_count": len(segment.images),
            "category": segment.category,
            "threshold": segment.threshold,
            "upload_ms": round(upload_ms, 1),
            **timings,
        },
    )


def log_api_error(err: errors.ApiError, *, manifest: str | None = None) -> None:
    """Log a rejected request at INFO (4xx) or with its traceback (5xx)."""
    keys = {"code": err.code, "status_code": err.status_code, "image_index": err.image_index, "manifest": manifest}
    if err.status_code >= 500:
        logger.exception("request_failed", extra=keys)
    else:
        logger.info("request_rejected", extra={**keys, "error_message": err.message})
