"""Sample files for upload tests."""

from __future__ import annotations

import io

from PIL import Image


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (4, 4)) -> bytes:
    """A real, decodable image: uploads are decoded and re-encoded (metadata stripped), so
    a file that only has the right magic bytes is refused."""
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, fmt)
    return out.getvalue()
