"""Category vocabulary and alias resolution."""

from __future__ import annotations

import json

import pytest

from handler.categories import (
    ACCEPTED_CATEGORIES,
    CATEGORIES_PATH,
    CATEGORY_NAMES,
    UnknownCategoryError,
    category_id,
    resolve_category,
)

DOCUMENT = json.loads(CATEGORIES_PATH.read_text(encoding="utf-8"))


def test_category_names_follow_json_ids() -> None:
    expected = {entry["id"]: entry["name"] for entry in DOCUMENT["categories"]}

    assert tuple(expected[index] for index in range(len(expected))) == CATEGORY_NAMES
    assert CATEGORY_NAMES[0] == "unknown"


def test_accepted_categories_exclude_no_hint_id() -> None:
    assert CATEGORY_NAMES[1:] == ACCEPTED_CATEGORIES
    assert len(ACCEPTED_CATEGORIES) == 7
    assert "unknown" not in ACCEPTED_CATEGORIES


@pytest.mark.parametrize(("alias", "target"), sorted(DOCUMENT["aliases"].items()))
def test_resolve_category_every_alias_maps_to_its_target(alias: str, target: str) -> None:
    assert target in CATEGORY_NAMES
    assert resolve_category(alias) == target


@pytest.mark.parametrize("name", ACCEPTED_CATEGORIES)
def test_resolve_category_vocabulary_name_maps_to_itself(name: str) -> None:
    assert resolve_category(name) == name
    assert category_id(name) == CATEGORY_NAMES.index(name)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("TOP", "top"),
        ("  Shoes  ", "shoes"),
        ("T_Shirt", "top"),
        ("t shirt", "top"),
        ("T-SHIRT", "top"),
        ("tank top", "top"),
        ("Tank__Top", "top"),
        ("\tOuterWear\n", "outerwear"),
    ],
)
def test_resolve_category_case_space_and_separators_ignored(value: str, expected: str) -> None:
    assert resolve_category(value) == expected


@pytest.mark.parametrize("value", [None, "", "   ", "\t"])
def test_resolve_category_missing_value_gives_none(value: str | None) -> None:
    assert resolve_category(value) is None
    assert category_id(value) == 0


def test_category_id_alias_gives_target_id() -> None:
    assert category_id("jeans") == CATEGORY_NAMES.index("bottom")
    assert category_id("Sneakers") == CATEGORY_NAMES.index("shoes")


@pytest.mark.parametrize("value", ["spaceship", "t-shirts-and-more", "tshirtt", "top!"])
def test_resolve_category_unknown_value_raises_listing_vocabulary(value: str) -> None:
    with pytest.raises(UnknownCategoryError) as caught:
        resolve_category(value)

    message = str(caught.value)
    assert repr(value) in message
    for name in ACCEPTED_CATEGORIES:
        assert name in message
    assert isinstance(caught.value, ValueError)
    assert caught.value.accepted == ACCEPTED_CATEGORIES


@pytest.mark.parametrize("value", ["unknown", "Unknown", " UNKNOWN "])
def test_resolve_category_no_hint_name_rejected(value: str) -> None:
    # "unknown" is the model's id 0, which a caller selects by sending no category.
    with pytest.raises(UnknownCategoryError) as caught:
        resolve_category(value)

    listed = str(caught.value).split("expected one of", 1)[1]
    assert "unknown" not in listed
    for name in ACCEPTED_CATEGORIES:
        assert name in listed


def test_resolve_category_long_unknown_value_truncated_in_message() -> None:
    value = "x" * 500

    with pytest.raises(UnknownCategoryError) as caught:
        resolve_category(value)

    assert len(str(caught.value)) < 300
    assert "xxxx..." in str(caught.value)


def test_resolve_category_non_string_raises() -> None:
    with pytest.raises(UnknownCategoryError, match="42"):
        resolve_category(42)  # type: ignore[arg-type]  # a JSON number reaching the resolver


def test_category_id_unknown_value_raises() -> None:
    with pytest.raises(UnknownCategoryError):
        category_id("spaceship")
