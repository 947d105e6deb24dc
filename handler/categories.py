"""Product category vocabulary and the shop aliases that map onto it.

The vocabulary lives in ``handler/data/categories.json``. A category's id is its
index in ``CATEGORY_NAMES`` and is what the model's ``category`` input receives.
Id 0 (``unknown``) is the model's "no hint" value, so callers cannot send its name:
they omit the category instead. ``ACCEPTED_CATEGORIES`` lists the names they can send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from handler.errors import quote_value

CATEGORIES_PATH = Path(__file__).parent / "data" / "categories.json"

_SEPARATORS = re.compile(r"[\s_-]+")


class UnknownCategoryError(ValueError):
    """A category value is neither a vocabulary name nor a known alias."""

    def __init__(self, value: object, accepted: tuple[str, ...]) -> None:
        super().__init__(
            f"Unknown category {quote_value(value)}; expected one of {', '.join(accepted)} "
            "or a common shop alias such as 'jeans' or 't-shirt'."
        )
        self.accepted = accepted


def normalize_category_key(value: str) -> str:
    """Normalize a category string for lookup: trimmed, lower case, '-' between words.

    Underscores, spaces and hyphens, in runs of any length, all become one '-', so
    "T_Shirt", " t shirt " and "t-shirt" share the key "t-shirt".
    """
    return _SEPARATORS.sub("-", value.strip().lower()).strip("-")


def _load_vocabulary(path: Path) -> tuple[tuple[str, ...], dict[str, str]]:
    """Read the category names and the alias table, and check they agree.

    Returns:
        (names indexed by id, alias key -> vocabulary name). The alias table also
        maps every vocabulary name except id 0's to itself.
    Raises:
        ValueError: ids are not 0..n-1 in order, or an alias names no category or id 0's.
    """
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    entries = document["categories"]
    ids = [int(entry["id"]) for entry in entries]
    if ids != list(range(len(entries))):
        raise ValueError(f"{path}: category ids must be 0..{len(entries) - 1} in order, got {ids}")
    names = tuple(str(entry["name"]) for entry in entries)

    # Id 0 is reached by sending no category, so its name is not an accepted value.
    aliases = {normalize_category_key(name): name for name in names[1:]}
    for alias, target in document.get("aliases", {}).items():
        if target not in names[1:]:
            raise ValueError(f"{path}: alias {alias!r} maps to {target!r}, which is not an accepted category name")
        aliases[normalize_category_key(alias)] = target
    return names, aliases


_NAMES, _ALIASES = _load_vocabulary(CATEGORIES_PATH)

CATEGORY_NAMES: tuple[str, ...] = _NAMES
"""Model vocabulary; the index of a name is its category id, and id 0 means no hint."""

ACCEPTED_CATEGORIES: tuple[str, ...] = _NAMES[1:]
"""Category names a caller can send: every vocabulary name except id 0's."""

CATEGORY_ALIASES: Mapping[str, str] = MappingProxyType(_ALIASES)
"""Normalized alias key -> vocabulary name; includes every name in ACCEPTED_CATEGORIES."""


def resolve_category(value: str | None) -> str | None:
    """Map a caller's category string onto the vocabulary.

    Args:
        value: a vocabulary name or shop alias in any case, with '_', ' ' or '-'
            between words; None, or a string of only whitespace, means no category.
    Returns:
        The vocabulary name, or None when no category was given.
    Raises:
        UnknownCategoryError: value is not a string, or matches no accepted name or
            alias. The name of id 0 ("unknown") is rejected too.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise UnknownCategoryError(value, ACCEPTED_CATEGORIES)
    key = normalize_category_key(value)
    if not key:
        return None
    name = CATEGORY_ALIASES.get(key)
    if name is None:
        raise UnknownCategoryError(value, ACCEPTED_CATEGORIES)
    return name


def category_id(name: str | None) -> int:
    """Return the model's category id for a name or alias; None gives 0 (no hint).

    Raises:
        UnknownCategoryError: name matches no accepted name or alias.
    """
    resolved = resolve_category(name)
    if resolved is None:
        return 0
    return CATEGORY_NAMES.index(resolved)
