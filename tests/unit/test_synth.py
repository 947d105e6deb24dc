"""Training-set synthesis on a drawn stand-in photo (no dataset needed)."""

import numpy as np
import pytest

from model.training.synth import MAX_VIEWS, TARGET_CODE, Photo, render_background_crop, render_empty, render_packshot, synthesize_set

SIZE = 64
TOP, TROUSERS = 5, 7
LABEL_CATEGORIES = {0: 0, TOP: 1, TROUSERS: 2}


def person_photo() -> Photo:
    """A 200 x 120 street photo: a red top above blue trousers on grey, with CCP-style labels."""
    rgb = np.full((200, 120, 3), 128, np.uint8)
    labels = np.zeros((200, 120), np.uint8)
    rgb[30:100, 30:90], labels[30:100, 30:90] = (200, 30, 30), TOP
    rgb[100:190, 40:80], labels[100:190, 40:80] = (30, 40, 200), TROUSERS
    return Photo("0001", rgb, labels)


def test_render_empty_has_no_product() -> None:
    rgb, codes = render_empty(np.random.default_rng(0))

    assert rgb.dtype == np.uint8
    assert rgb.shape[2] == 3
    assert codes.shape == rgb.shape[:2]
    assert 240 <= rgb.shape[0] <= 480
    assert 240 <= rgb.shape[1] <= 480
    assert not codes.any()
    assert rgb.mean() > 150


def test_empty_view_rate_one_replaces_a_view() -> None:
    rng = np.random.default_rng(3)

    product = synthesize_set(person_photo(), LABEL_CATEGORIES, SIZE, rng, view_types=["studio", "packshot"], empty_view_rate=1.0)

    assert product is not None
    assert list(product.view_types).count("empty") == 1
    slot = product.view_types.index("empty")
    assert product.valid[slot]
    assert not product.masks[slot].any()
    assert not product.others[slot].any()
    product_slot = 1 - slot
    assert product.masks[product_slot].any()
    assert len(product.view_types) == MAX_VIEWS


def test_empty_view_rate_zero_draws_no_extra_numbers() -> None:
    """At rate 0 the sets are those drawn before the option existed, view for view."""
    plain = synthesize_set(person_photo(), LABEL_CATEGORIES, SIZE, np.random.default_rng(8))
    with_option = synthesize_set(person_photo(), LABEL_CATEGORIES, SIZE, np.random.default_rng(8), empty_view_rate=0.0)

    assert plain is not None
    assert with_option is not None
    assert "empty" not in plain.view_types
    assert plain.view_types == with_option.view_types
    np.testing.assert_array_equal(plain.images, with_option.images)
    np.testing.assert_array_equal(plain.masks, with_option.masks)


def test_background_crop_shows_no_person() -> None:
    crops = [render_background_crop(person_photo(), np.random.default_rng(seed)) for seed in range(20)]

    found = [crop for crop in crops if crop is not None]
    assert len(found) >= 5
    for rgb, codes in found:
        assert not codes.any()
        assert codes.shape == rgb.shape[:2]
        # The stand-in's background is plain grey; the top and trousers are red and blue.
        # A box may graze the person by less than 0.5% of its pixels.
        assert (rgb != 128).any(axis=2).mean() < 0.005


def test_background_crop_none_when_person_fills() -> None:
    photo = person_photo()
    filled = Photo(photo.photo_id, photo.rgb, np.full_like(photo.labels, 5))

    assert render_background_crop(filled, np.random.default_rng(0)) is None


def test_busy_empty_frame_from_background() -> None:
    product = synthesize_set(
        person_photo(), LABEL_CATEGORIES, SIZE, np.random.default_rng(3), view_types=["studio"], empty_view_rate=1.0, busy_empty_rate=1.0
    )

    assert product is not None
    assert product.view_types[0] == "empty"
    assert not product.masks[0].any()
    # A crop of the grey street background, not a light studio backdrop, after jitter and letterboxing.
    frame = product.images[0].astype(np.float32)
    assert frame.mean() < 200


def test_inverted_empty_mirrors_light() -> None:
    light, _ = render_empty(np.random.default_rng(5))
    dark, codes = render_empty(np.random.default_rng(5), backdrop="inverted")

    assert dark.shape == light.shape
    assert not codes.any()
    assert dark.mean() < 100
    # Same draws, inverted before noise with a standard deviation of at most 3 levels is added.
    assert np.abs(255.0 - light.astype(np.float32) - dark.astype(np.float32)).mean() < 6


def _is_light(pixel: np.ndarray) -> bool:
    """Return True for a near-white, low-saturation pixel such as _light_background draws."""
    return bool(pixel.min() > 200 and pixel.max() - pixel.min() < 30)


def test_dark_empty_not_light() -> None:
    for seed in range(12):
        rgb, codes = render_empty(np.random.default_rng(seed), backdrop="dark")

        assert not codes.any()
        assert not _is_light(rgb.reshape(-1, 3).mean(axis=0))


def test_empty_unknown_backdrop_rejected() -> None:
    with pytest.raises(ValueError, match="light, dark or inverted"):
        render_empty(np.random.default_rng(0), backdrop="black")


def test_dark_packshot_keeps_product() -> None:
    photo = person_photo()
    codes = np.where(photo.labels == TOP, TARGET_CODE, 0).astype(np.uint8)

    for seed in range(8):
        light_rgb, light_codes = render_packshot(photo, codes, np.random.default_rng(seed))
        dark_rgb, dark_codes = render_packshot(photo, codes, np.random.default_rng(seed), dark_rate=1.0)

        assert _is_light(light_rgb[0, 0])
        assert not _is_light(dark_rgb[0, 0])
        # Away from the frame's border the product keeps its red on average; only its soft
        # alpha edge mixes in some of the backdrop.
        inside = dark_codes == TARGET_CODE
        inside[:2], inside[-2:], inside[:, :2], inside[:, -2:] = False, False, False, False
        assert np.abs(dark_rgb[inside].astype(int) - (200, 30, 30)).max(axis=1).mean() < 20
        assert light_codes.any()


def test_dark_rate_zero_draws_nothing() -> None:
    plain = synthesize_set(person_photo(), LABEL_CATEGORIES, SIZE, np.random.default_rng(4), empty_view_rate=0.5)
    with_option = synthesize_set(
        person_photo(), LABEL_CATEGORIES, SIZE, np.random.default_rng(4), empty_view_rate=0.5, dark_backdrop_rate=0.0
    )

    assert plain is not None
    assert with_option is not None
    np.testing.assert_array_equal(plain.images, with_option.images)


def test_dark_rate_one_darkens_views() -> None:
    product = synthesize_set(
        person_photo(), LABEL_CATEGORIES, SIZE, np.random.default_rng(6), view_types=["packshot", "studio"], dark_backdrop_rate=1.0
    )

    assert product is not None
    for slot in range(2):
        view = product.images[slot]
        # Letterboxing pads with pure white; the median of the other pixels is the backdrop.
        content = view[(view != 255).any(axis=2)]
        assert not _is_light(np.median(content, axis=0))
