"""Decode uploaded photos to RGB arrays and encode results as PNG (pure, Pillow and numpy).

Every decoded photo comes out as (H, W, 3) uint8 RGB in display orientation: the
EXIF orientation is applied, and palette, CMYK, 16-bit, float and grayscale modes
are converted, with any transparency composited on white.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError, features

DEFAULT_MAX_PIXELS = 50_000_000
"""Largest accepted photo, width x height, before any decoding of pixel data."""

PNG_COMPRESS_LEVEL = 2
"""zlib level for encode_png: near level 6 in size at a fraction of its time."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES = {1: 0, 3: 2, 4: 6}
"""PNG color type by channel count: grayscale, truecolor, truecolor with alpha."""

# Pillow raises these for truncated or malformed files, depending on the format plugin.
# Pillow's plugins raise NotImplementedError for format variants they do not read, such as a DDS
# file with unknown pixel-format flags.
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, NotImplementedError)

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF") + (("AVIF",) if features.check("avif") else ())
"""Pillow format names that decode_image opens. JPEG covers the multi-picture JPEG (MPO) of some
cameras. AVIF is included where the installed Pillow reads it (features.check("avif")).

Pillow reads many more formats, some through outside programs: EPS and PostScript through
Ghostscript. A service that decodes uploads from anyone keeps to the photo formats."""

ACCEPTED_FORMATS_TEXT = "a JPEG, PNG, WebP, GIF, BMP, TIFF or AVIF file"
"""The accepted image formats, as named in decode errors."""

# Matches a default object repr such as "<_io.BytesIO object at 0x7f...>".
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


class UndecodableImageError(ValueError):
    """The bytes are empty or are not an image that Pillow can decode."""


class ImageTooLargeError(ValueError):
    """The photo has more pixels than the configured limit."""

    def __init__(self, size_text: str, max_pixels: int) -> None:
        self.size_text = size_text
        self.max_pixels = max_pixels
        super().__init__(self.describe("Image"))

    def describe(self, subject: str) -> str:
        """Write the error as a message about subject, for example "Image at index 1"."""
        return (
            f"{subject} is {self.size_text}; at most {self.max_pixels / 1e6:.1f} MP are accepted. "
            "Resize the photo before uploading it."
        )


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> NDArray[np.uint8]:
    """Decode image bytes into an upright RGB array.

    The pixel count is checked from the header, before the pixel data is decoded,
    so a small file that declares a huge image is rejected cheaply.

    Args:
        data: the encoded file, in one of ACCEPTED_FORMATS.
            Of a multi-frame file, only the first frame is decoded.
        max_pixels: largest accepted width x height.
    Returns:
        (H, W, 3) uint8 RGB, 0-255, rows top to bottom as the photo is displayed.
    Raises:
        UndecodableImageError: data is empty, truncated, or not an image.
        ImageTooLargeError: width x height exceeds max_pixels.
    """
    if not data:
        raise UndecodableImageError(f"Image data is empty (0 bytes); expected {ACCEPTED_FORMATS_TEXT}.")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces Pillow's global size warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as err:
        # Pillow rejects a header declaring over 2 x Image.MAX_IMAGE_PIXELS before our check runs.
        declared = f"over {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} MP according to its header"
        raise ImageTooLargeError(declared, max_pixels) from err
    except _DECODE_ERRORS as err:
        # Pillow's UnidentifiedImageError text only names the BytesIO object, so it is left out.
        raise UndecodableImageError(
            f"Image data ({len(data)} bytes) is not in a recognized image format; expected {ACCEPTED_FORMATS_TEXT}."
        ) from err

    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{width} x {height} pixels ({width * height / 1e6:.1f} MP)", max_pixels)

    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
        return to_rgb_array(to_srgb(upright))
    except _DECODE_ERRORS as err:
        raise UndecodableImageError(
            f"Image data ({len(data)} bytes, format {image.format}) is damaged or truncated: {_describe_error(err)}. "
            "Export or upload the photo again."
        ) from err


def _describe_error(err: BaseException) -> str:
    """Return Pillow's error text without object reprs, or the error's class name when nothing is left."""
    text = _OBJECT_REPR.sub("the data", str(err)).strip()
    return text or type(err).__name__


def to_rgb_array(image: Image.Image) -> NDArray[np.uint8]:
    """Convert a Pillow image of any mode to an RGB array, compositing transparency on white.

    Args:
        image: a loaded Pillow image.
    Returns:
        (H, W, 3) uint8 RGB, 0-255.
    Limitations:
        Pillow does not record the source bit depth, so it is guessed from the values.
        Mode "I" is read as 8-bit when every value is at most 255, else as 16-bit.
        Mode "F" is read as 0-1 when every value is within [0, 1], else as 0-255.
    """
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        return _gray_levels_to_rgb(np.asarray(image), image.mode)
    if image.mode == "RGB" and "transparency" not in image.info:
        return np.array(image, dtype=np.uint8)
    if _has_transparency(image):
        rgba = np.asarray(image.convert("RGBA"))
        return _composite_on_white(rgba)
    return np.array(image.convert("RGB"), dtype=np.uint8)


_SRGB_PROFILE = ImageCms.createProfile("sRGB")

_PROFILE_MODES = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB"}
"""Modes whose embedded ICC profile to_srgb applies, with the mode it converts each to."""

_PROBE_COLORS = [(0, 0, 0), (64, 64, 64), (128, 128, 128), (192, 192, 192), (255, 255, 255), (200, 60, 40), (40, 180, 70), (50, 80, 200)]
"""Colors that to_srgb passes through a profile to tell whether it differs from sRGB."""


def to_srgb(image: Image.Image) -> Image.Image:
    """Convert an image with an embedded ICC profile of another color space to sRGB.

    Phones and cameras often tag photos with a wider space (Display P3, Adobe RGB). Read as
    sRGB, such a photo's colors come out duller, and so would its hex codes. RGB, RGBA,
    CMYK and palette images are converted. A palette or a transparent color becomes RGBA
    first. A profile that maps a few probe colors to within 2 levels of themselves is taken
    as sRGB, and the image is returned unchanged. Many JPEGs embed such a profile, and the
    transform costs about 0.8 s for a 24 MP photo on the development machine under load. An image
    without a profile is taken to be sRGB, as is one whose profile littlecms cannot read or
    does not match the image's mode.

    Args:
        image: a loaded Pillow image.
    Returns:
        The image in sRGB (mode RGB, or RGBA with the alpha kept), or image itself.
    """
    icc = image.info.get("icc_profile")
    if not icc:
        return image
    if image.mode in ("P", "PA") or (image.mode == "RGB" and "transparency" in image.info):
        image = image.convert("RGBA" if _has_transparency(image) else "RGB")
    output_mode = _PROFILE_MODES.get(image.mode)
    if output_mode is None:
        # NOTE: grayscale photos keep their gray profile unapplied.
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        transform = ImageCms.buildTransform(source, _SRGB_PROFILE, image.mode, output_mode)
        if image.mode != "CMYK" and _keeps_probe_colors(transform, image.mode):
            return image
        converted = ImageCms.applyTransform(image, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        # NOTE: such a photo is read as if it were sRGB, so its colors may be off.
        return image
    return converted if converted is not None else image


def _keeps_probe_colors(transform: ImageCms.ImageCmsTransform, mode: str) -> bool:
    """Tell whether an RGB or RGBA transform maps every color of _PROBE_COLORS to within 2 levels of itself."""
    probe = Image.new("RGB", (len(_PROBE_COLORS), 1))
    probe.putdata(_PROBE_COLORS)
    if mode == "RGBA":
        probe = probe.convert("RGBA")
    mapped = ImageCms.applyTransform(probe, transform)
    if mapped is None:
        return False
    difference = np.abs(np.asarray(mapped, np.int16)[..., :3] - np.asarray(probe, np.int16)[..., :3])
    return bool(difference.max() <= 2)


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _gray_levels_to_rgb(levels: NDArray[np.generic], mode: str) -> NDArray[np.uint8]:
    """Scale a single-channel integer or float image to 0-255 and repeat it over RGB."""
    values = levels.astype(np.float64)
    if mode in _SIXTEEN_BIT_MODES:
        full_scale = 65535.0
    elif mode == "I":
        full_scale = 255.0 if values.size == 0 or values.max() <= 255 else 65535.0
    else:
        finite = values[np.isfinite(values)]
        # An image of NaN only has no finite value; it becomes black like the NaN pixels of others.
        inside_unit = finite.size == 0 or (finite.min() >= 0.0 and finite.max() <= 1.0)
        full_scale = 1.0 if inside_unit else 255.0
    scaled = np.nan_to_num(values * (255.0 / full_scale), nan=0.0)
    gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _composite_on_white(rgba: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Blend (H, W, 4) uint8 RGBA over a white background; returns (H, W, 3) uint8."""
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    blended = rgba[:, :, :3].astype(np.uint16) * alpha + 255 * (255 - alpha)
    return ((blended + 127) // 255).astype(np.uint8)


def encode_png(array: NDArray[np.uint8], *, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """Encode an array as PNG.

    Args:
        array: (H, W) uint8 gray, (H, W, 3) uint8 RGB or (H, W, 4) uint8 RGBA.
        compress_level: zlib level 0-9; higher is smaller and slower.
    Returns:
        The PNG file bytes.
    Raises:
        ValueError: array is not uint8 with one of the shapes above.
    """
    channels = 0
    if array.ndim == 2:
        channels = 1
    elif array.ndim == 3:
        channels = array.shape[2]
    if array.dtype != np.uint8 or channels not in (1, 3, 4):
        raise ValueError(f"expected (H, W), (H, W, 3) or (H, W, 4) uint8 array, got {array.shape} {array.dtype}")
    height, width = array.shape[:2]
    rows = np.ascontiguousarray(array).reshape(height, width * channels)

    # Every row uses PNG filter type 2 ("Up": the byte minus the byte above it, modulo 256).
    # Pillow's encoder tries all five filters on every row, which costs more than zlib itself.
    filtered = np.empty((height, 1 + width * channels), dtype=np.uint8)
    filtered[:, 0] = 2
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])

    color_type = _PNG_COLOR_TYPES[channels]
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"".join(
        [
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), compress_level)),
            _png_chunk(b"IEND", b""),
        ]
    )


def _png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    """Frame one PNG chunk: length, type, data, and the CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", zlib.crc32(chunk_type + data))


def make_cutout(image: NDArray[np.uint8], alpha: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Attach an alpha channel to a photo; fully transparent pixels get black RGB.

    Zeroing the color under alpha 0 changes nothing visible and makes the PNG smaller.

    Args:
        image: (H, W, 3) uint8 RGB.
        alpha: (H, W) uint8, 0 transparent to 255 opaque.
    Returns:
        (H, W, 4) uint8 RGBA, a new array.
    Raises:
        ValueError: shapes or dtypes differ from the above.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if alpha.shape != image.shape[:2] or alpha.dtype != np.uint8:
        raise ValueError(f"expected {image.shape[:2]} uint8 alpha, got {alpha.shape} {alpha.dtype}")
    # Pillow interleaves the channels several times faster than a strided numpy copy.
    rgba = Image.fromarray(image)
    rgba.putalpha(Image.fromarray(alpha))
    cutout = np.array(rgba, dtype=np.uint8)
    # Zero whole RGBA pixels through a 32-bit view; their alpha is already 0.
    pixels = cutout.view(np.uint32)[:, :, 0]
    pixels *= alpha != 0
    return cutout


def read_image_size(data: bytes) -> tuple[int, int] | None:
    """Read a photo's width and height from its header without decoding the pixel data.

    Args:
        data: the encoded file.
    Returns:
        (width, height) in pixels as stored, before any EXIF rotation, which keeps the pixel
        count. None when the header cannot be read. decode_image then raises the reason.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                return image.size
    except (Image.DecompressionBombError, *_DECODE_ERRORS):
        return None
