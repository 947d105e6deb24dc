"""Decoding, mode conversion, size limits, PNG encoding and cutouts on generated images."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageCms

from handler.imaging import (
    ACCEPTED_FORMATS,
    ACCEPTED_FORMATS_TEXT,
    ImageTooLargeError,
    UndecodableImageError,
    decode_image,
    encode_png,
    make_cutout,
    read_image_size,
    to_rgb_array,
    to_srgb,
)

RED = (220, 30, 30)
WHITE = (255, 255, 255)
EXIF_ORIENTATION_TAG = 0x0112


def encode(image: Image.Image, file_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=file_format, **options)
    return buffer.getvalue()


def quadrant_photo() -> Image.Image:
    """40 wide x 20 tall, white, with a red block over its top-left quadrant (rows 0-9, columns 0-19)."""
    pixels = np.full((20, 40, 3), 255, dtype=np.uint8)
    pixels[:10, :20] = RED
    return Image.fromarray(pixels)


def jpeg_with_orientation(orientation: int) -> bytes:
    photo = quadrant_photo()
    exif = photo.getexif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    return encode(photo, "JPEG", quality=95, exif=exif.tobytes())


def is_red(pixel: NDArray[np.uint8]) -> bool:
    return bool(np.abs(pixel.astype(int) - RED).max() < 40)


def is_white(pixel: NDArray[np.uint8]) -> bool:
    return bool(pixel.min() > 215)


def test_decode_image_no_orientation_keeps_layout() -> None:
    decoded = decode_image(jpeg_with_orientation(1))

    assert decoded.shape == (20, 40, 3)
    assert decoded.dtype == np.uint8
    assert is_red(decoded[3, 3])
    assert is_white(decoded[15, 35])


# Pixel (row, column) probes of the displayed image: red quadrant and the opposite corner.
@pytest.mark.parametrize(
    ("orientation", "shape", "red_probe", "white_probe"),
    [
        (6, (40, 20, 3), (5, 15), (35, 5)),  # rotate 90 degrees clockwise: red goes top-right
        (8, (40, 20, 3), (35, 5), (5, 15)),  # rotate 90 degrees counter-clockwise: red goes bottom-left
        (3, (20, 40, 3), (15, 35), (3, 3)),  # rotate 180 degrees: red goes bottom-right
    ],
)
def test_decode_image_exif_orientation_applied(
    orientation: int, shape: tuple[int, int, int], red_probe: tuple[int, int], white_probe: tuple[int, int]
) -> None:
    decoded = decode_image(jpeg_with_orientation(orientation))

    assert decoded.shape == shape
    assert is_red(decoded[red_probe])
    assert is_white(decoded[white_probe])


def test_decode_image_rgb_png_exact() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)

    decoded = decode_image(encode(Image.fromarray(pixels), "PNG"))

    np.testing.assert_array_equal(decoded, pixels)


def test_decode_image_grayscale_repeated_over_rgb() -> None:
    gray = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)

    decoded = decode_image(encode(Image.fromarray(gray), "PNG"))

    assert decoded.shape == (16, 16, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[:, :, channel], gray)


def test_decode_image_bilevel_gives_black_and_white() -> None:
    bits = np.zeros((8, 8), dtype=bool)
    bits[:, 4:] = True

    decoded = decode_image(encode(Image.fromarray(bits), "PNG"))

    assert decoded[0, 0].tolist() == [0, 0, 0]
    assert decoded[0, 7].tolist() == [255, 255, 255]


def test_decode_image_rgba_composited_on_white() -> None:
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[:, :2] = (200, 0, 0, 255)  # opaque red
    rgba[:, 2:4] = (200, 0, 0, 0)  # fully transparent
    rgba[:, 4:] = (0, 0, 0, 128)  # half-transparent black

    decoded = decode_image(encode(Image.fromarray(rgba), "PNG"))

    assert decoded[0, 0].tolist() == [200, 0, 0]
    assert decoded[0, 2].tolist() == [255, 255, 255]
    assert np.abs(decoded[0, 4].astype(int) - 127).max() <= 1


def test_decode_image_la_composited_on_white() -> None:
    la = np.zeros((4, 4, 2), dtype=np.uint8)
    la[:, :2] = (50, 255)
    la[:, 2:] = (50, 0)

    decoded = decode_image(encode(Image.fromarray(la, "LA"), "PNG"))

    assert decoded[0, 0].tolist() == [50, 50, 50]
    assert decoded[0, 3].tolist() == [255, 255, 255]


def test_decode_image_palette_transparency_composited_on_white() -> None:
    palette_image = Image.new("P", (6, 4), 0)
    palette_image.putpalette([0, 0, 0] + [0, 128, 0] + [0, 0, 0] * 254)
    palette_image.paste(1, (0, 0, 3, 4))

    decoded = decode_image(encode(palette_image, "PNG", transparency=0))

    assert decoded[0, 0].tolist() == [0, 128, 0]
    assert decoded[0, 5].tolist() == [255, 255, 255]


def test_decode_image_palette_without_transparency_keeps_colors() -> None:
    palette_image = Image.new("P", (6, 4), 0)
    palette_image.putpalette([10, 20, 30] + [0, 128, 0] + [0, 0, 0] * 254)
    palette_image.paste(1, (0, 0, 3, 4))

    decoded = decode_image(encode(palette_image, "GIF"))

    assert decoded[0, 0].tolist() == [0, 128, 0]
    assert decoded[0, 5].tolist() == [10, 20, 30]


def test_decode_image_cmyk_converted_to_rgb() -> None:
    cmyk = np.zeros((4, 4, 4), dtype=np.uint8)
    cmyk[:, 2:] = (0, 255, 255, 0)  # full magenta and yellow: red

    decoded = decode_image(encode(Image.fromarray(cmyk, "CMYK"), "TIFF"))

    assert decoded[0, 0].tolist() == [255, 255, 255]
    assert decoded[0, 3].tolist() == [255, 0, 0]


def test_decode_image_sixteen_bit_gray() -> None:
    levels = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)

    decoded = decode_image(encode(Image.fromarray(levels), "PNG"))

    assert decoded[0, :, 0].tolist() == [0, 100, 255]
    assert decoded[0, 1].tolist() == [100, 100, 100]


def test_decode_image_thirty_two_bit_integer_gray_scaled() -> None:
    levels = np.array([[0, 257 * 100, 65535]], dtype=np.int32)

    decoded = decode_image(encode(Image.fromarray(levels), "TIFF"))

    assert decoded[0, :, 0].tolist() == [0, 100, 255]


def test_to_rgb_array_small_integer_gray() -> None:
    image = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32))

    assert image.mode == "I"
    assert to_rgb_array(image)[0, :, 0].tolist() == [0, 100, 255]


def test_decode_image_float_gray_in_unit_range_scaled() -> None:
    levels = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)

    decoded = decode_image(encode(Image.fromarray(levels), "TIFF"))

    assert decoded[0, :, 0].tolist() == [0, 128, 255]


def test_to_rgb_array_float_gray_above_one() -> None:
    image = Image.fromarray(np.array([[0.0, 100.0, 300.0]], dtype=np.float32))

    assert to_rgb_array(image)[0, :, 0].tolist() == [0, 100, 255]


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_to_rgb_array_float_gray_nan_black() -> None:
    all_nan = Image.fromarray(np.full((2, 3), np.nan, dtype=np.float32))
    partly_nan = Image.fromarray(np.array([[np.nan, 0.5, 1.0]], dtype=np.float32))

    assert to_rgb_array(all_nan).max() == 0
    assert to_rgb_array(partly_nan)[0, :, 0].tolist() == [0, 128, 255]


def test_to_rgb_array_palette_alpha_composited_on_white() -> None:
    image = Image.new("PA", (2, 1))
    image.putpalette([10, 10, 10, 20, 20, 20])
    image.putpixel((0, 0), (0, 0))
    image.putpixel((1, 0), (1, 255))

    decoded = to_rgb_array(image)

    assert image.mode == "PA"
    assert decoded[0, 0].tolist() == [255, 255, 255]
    assert decoded[0, 1].tolist() == [20, 20, 20]


def assert_names_accepted_formats(message: str) -> None:
    for image_format in ("JPEG", "PNG", "WebP", "BMP", "GIF", "TIFF"):
        assert image_format in message


def test_decode_image_empty_bytes_raises() -> None:
    with pytest.raises(UndecodableImageError, match="empty") as caught:
        decode_image(b"")

    assert_names_accepted_formats(str(caught.value))


def test_decode_image_non_image_bytes_raises() -> None:
    with pytest.raises(UndecodableImageError) as caught:
        decode_image(b"this is a text file, not a photo")

    message = str(caught.value)
    assert "not in a recognized image format" in message
    assert "32 bytes" in message
    assert_names_accepted_formats(message)


def test_decode_image_message_omits_object_repr() -> None:
    with pytest.raises(UndecodableImageError) as caught:
        decode_image(b"GIF89a but not really")

    message = str(caught.value)
    assert "object at" not in message
    assert "0x" not in message
    assert "BytesIO" not in message


def test_decode_image_truncated_jpeg_raises() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(pixels), "JPEG", quality=90)

    with pytest.raises(UndecodableImageError, match="JPEG") as caught:
        decode_image(data[: len(data) // 2])

    assert "damaged or truncated" in str(caught.value)
    assert "object at" not in str(caught.value)


def dds_with_unknown_pixel_format(side: int = 64) -> bytes:
    """Build a DDS file whose pixel-format flags name no format Pillow reads."""
    header = struct.pack("<4sIIIIIII44s", b"DDS ", 124, 0x1007, side, side, 0, 0, 0, bytes(44))
    pixel_format = struct.pack("<II4sIIIII", 32, 0x20000000, bytes(4), 0, 0, 0, 0, 0)
    caps = struct.pack("<IIIII", 0x1000, 0, 0, 0, 0)
    return header + pixel_format + caps + bytes(side * side * 4)


def test_decode_image_unsupported_dds_variant_raises() -> None:
    with pytest.raises(UndecodableImageError) as caught:
        decode_image(dds_with_unknown_pixel_format())

    assert_names_accepted_formats(str(caught.value))


def test_read_image_size_unsupported_dds_variant() -> None:
    assert read_image_size(dds_with_unknown_pixel_format()) is None


def test_decode_image_over_pixel_limit_raises() -> None:
    data = encode(Image.new("RGB", (120, 100), WHITE), "PNG")

    with pytest.raises(ImageTooLargeError) as caught:
        decode_image(data, max_pixels=10_000)

    assert "120 x 100 pixels" in str(caught.value)
    assert "0.0 MP are accepted" in str(caught.value)
    assert caught.value.max_pixels == 10_000
    assert caught.value.size_text == "120 x 100 pixels (0.0 MP)"


def test_decode_image_at_pixel_limit_accepted() -> None:
    data = encode(Image.new("RGB", (100, 100), WHITE), "PNG")

    assert decode_image(data, max_pixels=10_000).shape == (100, 100, 3)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but contains no pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_decode_image_declared_huge_size_rejected_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match="Resize the photo"):
        decode_image(png_header_only(30_000, 30_000))


def test_decode_image_header_over_limit() -> None:
    with pytest.raises(ImageTooLargeError, match="12000 x 6000"):
        decode_image(png_header_only(12_000, 6_000), max_pixels=50_000_000)


@pytest.mark.parametrize("shape", [(9, 7), (9, 7, 3), (9, 7, 4)])
def test_encode_png_round_trip_exact(shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)

    with Image.open(io.BytesIO(encode_png(pixels))) as decoded:
        assert decoded.format == "PNG"
        np.testing.assert_array_equal(np.asarray(decoded), pixels)


@pytest.mark.parametrize(
    "array", [np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros(4, np.uint8)]
)
def test_encode_png_unsupported_array_raises(array: NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_png(array)  # type: ignore[arg-type]  # unsupported dtypes on purpose


def test_make_cutout_alpha_attached_and_transparent_color_zeroed() -> None:
    image = np.full((3, 4, 3), 200, dtype=np.uint8)
    alpha = np.array([[0, 128, 255, 255]] * 3, dtype=np.uint8)
    original = image.copy()

    cutout = make_cutout(image, alpha)

    assert cutout.shape == (3, 4, 4)
    np.testing.assert_array_equal(cutout[:, :, 3], alpha)
    assert cutout[0, 0].tolist() == [0, 0, 0, 0]
    assert cutout[0, 1].tolist() == [200, 200, 200, 128]
    np.testing.assert_array_equal(image, original)


def test_make_cutout_mismatched_alpha_raises() -> None:
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        make_cutout(np.zeros((3, 4, 3), np.uint8), np.zeros((4, 3), np.uint8))


@pytest.mark.parametrize(
    "data",
    [
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n%%EOF\n",
        b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n",
    ],
    ids=["eps", "pdf"],
)
def test_decode_image_unlisted_format_rejected(data: bytes) -> None:
    with pytest.raises(UndecodableImageError) as info:
        decode_image(data)

    assert ACCEPTED_FORMATS_TEXT in str(info.value)
    assert "Ghostscript" not in str(info.value)
    assert read_image_size(data) is None


def test_decode_image_icon_rejected() -> None:
    with pytest.raises(UndecodableImageError):
        decode_image(encode(Image.new("RGB", (64, 64), RED), "ICO"))


@pytest.mark.parametrize("file_format", ["TIFF", "BMP", "GIF", "WEBP", "AVIF"])
def test_decode_image_listed_format_accepted(file_format: str) -> None:
    if file_format not in ACCEPTED_FORMATS:
        pytest.skip(f"this Pillow does not read {file_format}")
    decoded = decode_image(encode(Image.new("RGB", (48, 40), RED), file_format))

    assert decoded.shape == (40, 48, 3)


def test_decode_image_multi_picture_jpeg_accepted() -> None:
    # GIVEN a two-frame MPO file, as some cameras write
    buffer = io.BytesIO()
    first, second = Image.new("RGB", (48, 40), RED), Image.new("RGB", (48, 40), WHITE)
    first.save(buffer, format="MPO", save_all=True, append_images=[second])
    with Image.open(io.BytesIO(buffer.getvalue())) as opened:
        assert (opened.format, getattr(opened, "n_frames", 1)) == ("MPO", 2)

    decoded = decode_image(buffer.getvalue())

    # THEN the first frame is decoded
    assert decoded.shape == (40, 48, 3)
    assert decoded[20, 20, 0] > 200
    assert decoded[20, 20, 1] < 60


XYZ = tuple[float, float, float]


def icc_matrix_profile(red: XYZ, green: XYZ, blue: XYZ, gamma: float) -> bytes:
    """Build a minimal ICC v2 RGB display profile: D50 colorants (XYZ) and one gamma curve per channel."""

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(values: XYZ) -> bytes:
        return b"XYZ " + bytes(4) + b"".join(s15(v) for v in values)

    text = b"test wide-gamut RGB\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4) + bytes(4) + bytes(2) + bytes(1) + bytes(67)
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    d50 = (0.9642, 1.0, 0.8249)
    tags = [(b"desc", desc), (b"wtpt", xyz(d50)), (b"rXYZ", xyz(red)), (b"gXYZ", xyz(green)), (b"bXYZ", xyz(blue))]
    tags += [(b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I", size) + bytes(4) + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ " + bytes(12) + b"acsp"
    header += bytes(64 - len(header) + 4) + b"".join(s15(v) for v in d50)
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


# Display P3 colorants adapted to D50, rounded. A 2.2 gamma replaces its sRGB-like tone curve.
WIDE_GAMUT_PROFILE = icc_matrix_profile((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841), 2.2)


def test_decode_image_wide_gamut_profile_converted() -> None:
    # GIVEN an orange PNG tagged with a wide-gamut profile
    data = encode(Image.new("RGB", (40, 40), (200, 100, 50)), "PNG", icc_profile=WIDE_GAMUT_PROFILE)

    red, green, blue = decode_image(data)[20, 20].tolist()

    # THEN it is converted to sRGB, where the same color is more saturated: about (216, 93, 23)
    assert red >= 210
    assert green <= 97
    assert blue <= 35


def test_decode_image_srgb_profile_kept() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(Image.new("RGB", (40, 40), (200, 100, 50)), "PNG", icc_profile=srgb)

    pixel = decode_image(data)[20, 20].astype(int)

    assert np.abs(pixel - [200, 100, 50]).max() <= 2
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert to_srgb(image) is image


def test_decode_image_unreadable_profile_ignored() -> None:
    data = encode(Image.new("RGB", (40, 40), (200, 100, 50)), "PNG", icc_profile=b"not a profile")

    assert decode_image(data)[20, 20].tolist() == [200, 100, 50]


def test_decode_image_rgba_profile_keeps_alpha() -> None:
    image = Image.new("RGBA", (40, 40), (200, 100, 50, 0))
    image.paste((200, 100, 50, 255), (0, 0, 20, 40))
    data = encode(image, "PNG", icc_profile=WIDE_GAMUT_PROFILE)

    decoded = decode_image(data)

    # THEN the transparent half is white and the opaque half converted
    assert decoded[20, 30].tolist() == [255, 255, 255]
    assert decoded[20, 10, 0] >= 210


def test_decode_image_profile_keeps_transparent_color() -> None:
    image = Image.new("RGB", (40, 40), (10, 20, 30))
    image.paste((200, 100, 50), (0, 0, 20, 40))
    data = encode(image, "PNG", icc_profile=WIDE_GAMUT_PROFILE, transparency=(10, 20, 30))

    decoded = decode_image(data)

    assert decoded[20, 30].tolist() == [255, 255, 255]
    assert decoded[20, 10, 0] >= 210


def test_decode_image_palette_profile_converted() -> None:
    image = Image.new("RGB", (40, 40), (200, 100, 50)).convert("P")
    data = encode(image, "PNG", icc_profile=WIDE_GAMUT_PROFILE)

    red, green, blue = decode_image(data)[20, 20].tolist()

    assert red >= 210
    assert green <= 97
    assert blue <= 35


def test_decode_image_linear_srgb_primaries_converted() -> None:
    # GIVEN sRGB's colorants with a linear tone curve, as in linear-light exports
    colorants = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).profile
    linear = icc_matrix_profile(colorants.red_colorant[0], colorants.green_colorant[0], colorants.blue_colorant[0], 1.0)
    data = encode(Image.new("RGB", (40, 40), (128, 128, 128)), "PNG", icc_profile=linear)

    gray = decode_image(data)[20, 20].tolist()

    # THEN linear 0.5 becomes sRGB's encoded 188
    assert all(abs(level - 188) <= 2 for level in gray)
