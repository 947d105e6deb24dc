"""Lambda entry point: parse the event, segment the photos, store or return the results.

This is the one module that catches exceptions: an ApiError becomes its status code, anything
else a 500 with a generic message while the detail goes to the log.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from numpy.typing import NDArray

from handler import errors, imaging, legacy, payload, pipeline, request, response, s3_events, storage
from handler.segmenter import Segmenter, get_segmenter

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "fashion-seg"))

DOUBTFUL_MIN_FRACTION = 0.01
DOUBTFUL_MAX_FRACTION = 0.95
"""Masks covering less or more of the frame than these are returned but logged as WARNING."""

_model_logged = False


@dataclass(frozen=True)
class Segmentation:
    """Decoded photos of one request and the pipeline's result for them."""

    images: list[NDArray[np.uint8]]
    result: pipeline.SetResult
    timings_ms: dict[str, float]


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Handle API Gateway, S3, S3 Batch Operations and direct invocations; see handler.request."""
    source = request.detect_source(event)
    logger.append_keys(event_source=source.value)
    try:
        parsed = request.parse_event(event, source)

        if isinstance(parsed, s3_events.BatchEvent):
            return response.batch_reply(parsed, [run_batch_task(task) for task in parsed.tasks])
        if isinstance(parsed, s3_events.ManifestEvent):
            for ignored in parsed.ignored:
                logger.info("s3_record_ignored", extra={"bucket": ignored.bucket, "key": ignored.key})
            return response.manifests_reply([run_manifest_safely(ref) for ref in parsed.manifests], len(parsed.ignored))

        segmentation = segment_request(parsed)
        if parsed.legacy:
            return response.png_response(render_legacy(parsed, segmentation))
        document = publish(parsed, segmentation)
        return response.reply(source, 200, document)

    except errors.ApiError as err:
        log_api_error(err)
        return response.error_reply(source, err)
    except Exception:
        logger.exception("request_failed")
        return response.error_reply(source, errors.InternalError())


def run_manifest(manifest: payload.S3Ref) -> dict[str, Any]:
    """Read a manifest, segment its photos and store the results; return the result document."""
    data = storage.read_object(manifest, kind="manifest")
    segment = s3_events.parse_manifest(data, manifest)
    return publish(segment, segment_request(segment))


def run_manifest_safely(manifest: payload.S3Ref) -> dict[str, Any]:
    """Run one manifest of an S3 notification, turning its failure into an error entry."""
    try:
        return {"manifest": manifest.uri, **run_manifest(manifest)}
    except errors.ApiError as err:
        log_api_error(err, manifest=manifest.uri)
        return {"manifest": manifest.uri, **response.error_document(err)}
    except Exception:
        logger.exception("manifest_failed", extra={"manifest": manifest.uri})
        return {"manifest": manifest.uri, **response.error_document(errors.InternalError())}


def run_batch_task(task: s3_events.BatchTask) -> response.BatchTaskResult:
    """Run one S3 Batch Operations task; 5xx errors are temporary (retried), the rest permanent."""
    try:
        document = run_manifest(task.manifest)
        return response.BatchTaskResult(task.task_id, "Succeeded", document["result_uri"])
    except errors.ApiError as err:
        log_api_error(err, manifest=task.manifest.uri)
        outcome: Literal["TemporaryFailure", "PermanentFailure"] = (
            "TemporaryFailure" if err.status_code >= 500 else "PermanentFailure"
        )
        return response.BatchTaskResult(task.task_id, outcome, f"{err.code}: {err.message}")
    except Exception:
        logger.exception("manifest_failed", extra={"manifest": task.manifest.uri})
        error = errors.InternalError()
        return response.BatchTaskResult(task.task_id, "PermanentFailure", f"{error.code}: {error.message}")


def segment_request(segment: payload.SegmentRequest) -> Segmentation:
    """Read and decode every photo, then run the pipeline on the set; nothing is written yet."""
    started = time.perf_counter()
    encoded = [read_image(source) for source in segment.images]
    read_ms = (time.perf_counter() - started) * 1000

    images, decode_ms = [], []
    for source, data in zip(segment.images, encoded, strict=True):
        started = time.perf_counter()
        images.append(decode_photo(data, source.index))
        decode_ms.append((time.perf_counter() - started) * 1000)

    segmenter = load_segmenter()
    try:
        result = pipeline.segment_set(images, segmenter, threshold=segment.threshold, category=segment.category)
    except pipeline.TooManyImagesError as err:
        raise errors.TooManyImagesError(str(err)) from err
    except pipeline.InvalidThresholdError as err:
        raise errors.InvalidThresholdError(str(err)) from err

    for source, view, ms in zip(segment.images, result.views, decode_ms, strict=True):
        log_view(source, view, decode_ms=ms)
    return Segmentation(images=images, result=result, timings_ms={"read": read_ms, "decode": sum(decode_ms)})


def read_image(source: payload.ImageSource) -> bytes:
    """Return a photo's encoded bytes, downloading it when the request named an S3 object."""
    if source.data is not None:
        return source.data
    if source.s3 is None:
        raise errors.InvalidRequestError(
            f"Image {source.index} has neither data nor an S3 URI.", image_index=source.index
        )
    return storage.read_object(source.s3, image_index=source.index)


def decode_photo(data: bytes, index: int) -> NDArray[np.uint8]:
    """Decode one photo, translating the decoder's errors into API errors that carry its index."""
    try:
        return imaging.decode_image(data)
    except imaging.ImageTooLargeError as err:
        raise errors.ImageTooLargeError(f"Image {index}: {err}", image_index=index) from err
    except imaging.UndecodableImageError as err:
        raise errors.ImageNotDecodableError(f"Image {index} could not be decoded: {err}", image_index=index) from err


def load_segmenter() -> Segmenter:
    """Return the process-wide segmenter, logging the model's identity once per cold start."""
    global _model_logged
    try:
        segmenter = get_segmenter()
    # onnxruntime's load errors (NoSuchFile, InvalidProtobuf, Fail) derive directly from
    # Exception, so no narrower class covers them all.
    except Exception as err:
        raise errors.ModelError(
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
    """Encode the masks and cutouts, store them with result.json (written last) or inline them.

    S3 and Batch Operations requests without OUTPUT_BUCKET write to the manifest's own bucket.
    Returns:
        The result document; for stored results it also carries ``result_uri``.
    """
    started = time.perf_counter()
    pngs = response.encode_views(segmentation.result)
    timings = {**segmentation.timings_ms, "encode": (time.perf_counter() - started) * 1000}
    bucket = storage.output_bucket() or (segment.manifest.bucket if segment.manifest else None)

    if bucket is None:
        locations = [(response.inline_location(png.mask), response.inline_location(png.cutout)) for png in pngs]
        document = response.result_document(
            segmentation.result, product_id=segment.product_id, locations=locations, timings_ms=timings
        )
        log_request(segment, document["timings_ms"], upload_ms=0.0)
        return document

    folder = f"{s3_events.output_prefix()}{segment.product_id}/"
    files, locations = [], []
    for index, png in enumerate(pngs):
        mask_key, cutout_key = f"{folder}mask-{index}.png", f"{folder}cutout-{index}.png"
        files += [
            storage.OutputFile(mask_key, png.mask, "image/png"),
            storage.OutputFile(cutout_key, png.cutout, "image/png"),
        ]
        locations.append((response.s3_location(bucket, mask_key), response.s3_location(bucket, cutout_key)))
    document = response.result_document(
        segmentation.result, product_id=segment.product_id, locations=locations, timings_ms=timings
    )
    files.append(
        storage.OutputFile(f"{folder}result.json", json.dumps(document, indent=2).encode("utf-8"), "application/json")
    )

    started = time.perf_counter()
    storage.write_objects(bucket, files)
    log_request(segment, document["timings_ms"], upload_ms=(time.perf_counter() - started) * 1000)
    return {**document, "result_uri": f"s3://{bucket}/{folder}result.json"}


def log_view(source: payload.ImageSource, view: pipeline.ViewResult, *, decode_ms: float) -> None:
    """Log one INFO line per photo, or WARNING when its mask covers a doubtful share of the frame."""
    height, width = view.mask.shape
    keys: dict[str, Any] = {
        "image_index": source.index,
        "source": "s3" if source.s3 else "inline",
        "height": int(height),
        "width": int(width),
        "mask_fraction": round(float(view.coverage), 4),
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
