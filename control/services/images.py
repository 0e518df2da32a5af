"""Uploaded images: recognised by their bytes, re-encoded without metadata."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageOps

from control.errors import ValidationFailed

# Magic bytes → file extension; the client's Content-Type is never trusted.
IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
#: an image larger than this many pixels is refused before it is decoded (decompression bombs)
MAX_IMAGE_PIXELS = 25_000_000
PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "gif": "GIF", "webp": "WEBP"}


class PayloadTooLarge(ValidationFailed):
    status = 413
    code = "image_too_large"


def image_extension(data: bytes) -> str | None:
    """The extension matching the image's magic bytes, or None if not PNG/JPEG/GIF/WEBP."""
    for signature, ext in IMAGE_SIGNATURES:
        if data.startswith(signature):
            return ext
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def clean_image(data: bytes, ext: str) -> bytes:
    """The image decoded and re-encoded without any metadata (EXIF with GPS, XMP, comments);
    the EXIF orientation is applied first so the picture stays upright."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.width * probe.height > MAX_IMAGE_PIXELS:
                raise ValidationFailed(
                    "the image has too many pixels",
                    code="unsupported_image",
                    fields={"image": f"at most {MAX_IMAGE_PIXELS} pixels"},
                )
            probe.verify()
        with Image.open(io.BytesIO(data)) as img:
            img.seek(0)  # animated GIF/WEBP: the first frame is the avatar
            upright = ImageOps.exif_transpose(img) or img.copy()
            transparency = upright.info.get("transparency")
            upright.info = {} if transparency is None else {"transparency": transparency}
            fmt = PIL_FORMATS[ext]
            options: dict[str, Any] = {}
            if fmt == "JPEG":
                if upright.mode not in ("RGB", "L"):
                    upright = upright.convert("RGB")
                options = {"quality": 90, "optimize": True}
            out = io.BytesIO()
            upright.save(out, fmt, **options)
            return out.getvalue()
    except ValidationFailed:
        raise
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ValidationFailed(
            "the image could not be read",
            code="unsupported_image",
            fields={"image": "not a readable PNG, JPEG, GIF or WEBP image"},
        ) from exc
