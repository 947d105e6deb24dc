"""Batch manifest checks for ``fashion-seg batch``: the manifest format and its validation.

A manifest is a JSON list of ``{"id": str, "images": [path, ...], "category": str}`` objects,
one per product; BATCH_DESCRIPTION explains it for ``fashion-seg batch --help``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from handler import errors, payload
from handler.categories import ACCEPTED_CATEGORIES

MANIFEST_FIELDS = ("id", "images", "category")
"""Fields of one batch manifest entry."""

BATCH_DESCRIPTION = f"""\
Segment every product listed in a manifest file.

The manifest is a JSON list with one object per product, for example:

  [
    {{"id": "sku-123", "images": ["sku-123/front.jpg", "sku-123/back.jpg"], "category": "shoes"}},
    {{"id": "sku-456", "images": ["/data/photos/sku-456.png"]}}
  ]

  id        required. Names the output folder OUT/<id>/, so it must be unique in the manifest:
            1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.
  images    required. 1 to {payload.MAX_IMAGES} photo paths, relative to the manifest's folder
            unless absolute.
  category  optional. One of {", ".join(ACCEPTED_CATEGORIES)},
            or a shop alias such as jeans or sneakers. Omit it when unknown.

A product's results go to OUT/<id>/ as mask-K.png, cutout-K.png and result.json. A product
that fails gets OUT/<id>/error.json instead, the run goes on, and the exit code is 1. A
manifest that is not a list, is empty, or has an entry without a valid, unique id is
rejected before any product runs, with exit code 2."""


class ManifestError(ValueError):
    """A batch manifest, or one of its entries, is malformed.

    Attributes:
        image_index: 0-based index of the photo path at fault, or None when the error is not about one.
    """

    def __init__(self, message: str, *, image_index: int | None = None) -> None:
        super().__init__(message)
        self.image_index = image_index


def check_manifest(path: Path, sets: object) -> list[dict[str, Any]]:
    """Check that a loaded manifest is a non-empty list of objects with unique, safe ids.

    The other fields are checked per entry by check_entry_fields while the batch runs, so that a
    bad entry fails only its own set.

    Args:
        path: the manifest file, named in messages.
        sets: the manifest's parsed JSON.
    Returns:
        sets, typed as a list of entry objects.
    Raises:
        ManifestError: sets is not a non-empty list, or an entry is not an object or has a
            missing, invalid or repeated id. The message names the entry's index.
    """
    if not isinstance(sets, list):
        raise ManifestError(f'{path}: expected a JSON list of {{"id", "images"}} objects, got {type(sets).__name__}')
    if not sets:
        raise ManifestError(f'{path}: the manifest lists no products; add {{"id", "images"}} objects to the list')
    seen: set[str] = set()
    for position, entry in enumerate(sets):
        set_id = read_entry_id(path, position, entry)
        if set_id in seen:
            raise ManifestError(
                f"{path}: entry {position} repeats the id {set_id!r}; ids name output folders and must be unique"
            )
        seen.add(set_id)
    return sets


def read_entry_id(path: Path, position: int, entry: object) -> str:
    """Return a manifest entry's id after checking that it is a safe folder name."""
    if not isinstance(entry, dict):
        raise ManifestError(
            f'{path}: entry {position} must be a JSON object with "id" and "images", got {type(entry).__name__}'
        )
    if entry.get("id") is None:
        raise ManifestError(f'{path}: entry {position} has no "id"; each entry needs a unique id that names its folder')
    try:
        return payload.parse_product_id(entry["id"])
    except errors.InvalidRequestError as err:
        raise ManifestError(f"{path}: entry {position}: {err.message}") from err


def check_entry_fields(entry: Mapping[str, Any]) -> None:
    """Check a manifest entry's fields other than its id.

    Raises:
        ManifestError: an unknown field, "images" missing or not a non-empty list of non-empty
            strings, or "category" present but not a string.
    """
    unknown = sorted(str(name) for name in entry if name not in MANIFEST_FIELDS)
    if unknown:
        raise ManifestError(f"Unknown field {', '.join(map(repr, unknown))}; an entry has only {', '.join(MANIFEST_FIELDS)}.")
    images = entry.get("images")
    if images is None:
        raise ManifestError(f'Field "images" is missing; expected a list of 1 to {payload.MAX_IMAGES} photo paths.')
    if not isinstance(images, list) or not images:
        raise ManifestError(
            f'Field "images" must be a list of 1 to {payload.MAX_IMAGES} photo paths; '
            f"received {errors.quote_value(images)}."
        )
    for index, name in enumerate(images):
        if not isinstance(name, str) or not name.strip():
            raise ManifestError(
                f'Field "images" entry at index {index} must be a non-empty path string; received {errors.quote_value(name)}.',
                image_index=index,
            )
    category = entry.get("category")
    if category is not None and not isinstance(category, str):
        raise ManifestError(f'Field "category" must be a string; received {errors.quote_value(category)}.')
