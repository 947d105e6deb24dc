"""Stored result sets: the S3 keys of one product's outputs and how a new run replaces them.

A product's results live under ``<OUTPUT_PREFIX><product_id>/``: mask-K.png and cutout-K.png
for each photo K, and result.json, which lists them. A run deletes the old result.json first
and writes the new one last, so a reader that finds result.json finds every file it lists,
unless two runs of the same product overlap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from handler import errors, response, storage
from handler.payload import MAX_IMAGES, S3Ref, SegmentRequest
from handler.pipeline import SetResult
from handler.s3_events import output_prefix

RESULT_NAME = "result.json"
"""Name of the result document, the last file of a result set to be written."""


@dataclass(frozen=True)
class StoredResults:
    """The document stored as result.json, and the earlier run's files that could not be deleted."""

    document: dict[str, Any]
    undeleted: list[storage.DeleteFailure]


def store_results(
    bucket: str,
    product_id: str,
    result: SetResult,
    pngs: Sequence[response.ViewPngs],
    *,
    timings_ms: Mapping[str, float],
) -> StoredResults:
    """Store one product's masks, cutouts and result.json, replacing the previous run's set.

    storage.replace_result_set deletes the old result.json first, writes mask-K and cutout-K
    and then result.json, and deletes this run's files again if a write fails. Last, it
    deletes mask-K and cutout-K for K from len(pngs) up to MAX_IMAGES - 1, which an earlier
    run with more photos left behind.

    Args:
        bucket: destination bucket.
        product_id: names the folder ``<OUTPUT_PREFIX><product_id>/``.
        result: the pipeline's result.
        pngs: encoded mask and cutout per view of result, in view order.
        timings_ms: stage durations merged into the document's timings.
    Returns:
        StoredResults whose document, ``result_uri`` included, equals the stored result.json.
    Raises:
        OutputNotWritableError: the bucket is missing, or S3 rejected the request in a way
            that a retry does not fix (see storage.write_objects).
        StorageError: the old result.json could not be deleted or a write failed; no
            result.json is left in the folder either way.
    """
    folder = result_folder(product_id)
    files, locations = [], []
    for index, png in enumerate(pngs):
        mask_key, cutout_key = view_keys(folder, index)
        files += [
            storage.OutputFile(mask_key, png.mask, "image/png"),
            storage.OutputFile(cutout_key, png.cutout, "image/png"),
        ]
        locations.append((response.s3_location(bucket, mask_key), response.s3_location(bucket, cutout_key)))

    marker_key = f"{folder}{RESULT_NAME}"
    document = response.result_document(
        result, product_id=product_id, locations=locations, timings_ms=timings_ms, result_uri=S3Ref(bucket, marker_key).uri
    )
    files.append(storage.OutputFile(marker_key, json.dumps(document, indent=2).encode("utf-8"), "application/json"))

    stale_keys = [key for index in range(len(pngs), MAX_IMAGES) for key in view_keys(folder, index)]
    undeleted = storage.replace_result_set(bucket, files, marker_key=marker_key, stale_keys=stale_keys)
    return StoredResults(document=document, undeleted=undeleted)


def check_inputs_kept(segment: SegmentRequest, bucket: str) -> None:
    """Reject a request whose photos store_results would overwrite or delete.

    A run writes or deletes mask-K.png and cutout-K.png for every K below MAX_IMAGES, and
    result.json, in ``<OUTPUT_PREFIX><product_id>/`` of bucket. A photo stored under one of
    those keys, such as a manifest in that folder listing "mask-0.png", would be lost.

    Args:
        segment: the parsed request; only its S3 photos can collide.
        bucket: the bucket the results go to.
    Raises:
        InvalidRequestError: a photo's key is one of the keys the run writes or deletes.
    """
    folder = result_folder(segment.product_id)
    replaced = {f"{folder}{RESULT_NAME}"} | {key for index in range(MAX_IMAGES) for key in view_keys(folder, index)}
    for source in segment.images:
        if source.s3 is not None and source.s3.bucket == bucket and source.s3.key in replaced:
            raise errors.InvalidRequestError(
                f"The {source.label} is {source.s3.uri}, which this product's results would overwrite or delete; "
                f"store photos outside {S3Ref(bucket, folder).uri} or give them names other than mask-K.png, "
                f"cutout-K.png and {RESULT_NAME}.",
                image_index=source.index,
            )


def result_folder(product_id: str) -> str:
    """Return the key prefix ``<OUTPUT_PREFIX><product_id>/`` of a product's result set."""
    return f"{output_prefix()}{product_id}/"


def view_keys(folder: str, index: int) -> tuple[str, str]:
    """Return the S3 keys of photo index's mask and cutout PNGs in folder."""
    return folder + view_file_name("mask", index), folder + view_file_name("cutout", index)


def view_file_name(kind: str, index: int) -> str:
    """Return the file name of photo index's PNG of kind "mask" or "cutout": mask-K.png or cutout-K.png."""
    return f"{kind}-{index}.png"
