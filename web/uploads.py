"""Multipart uploads, streamed once: the CSRF field first, then the file.

A browser form posted without JavaScript cannot set the ``X-CSRF-Token`` header, so its token
travels as the form's ``csrf_token`` field. Browsers send fields in document order and the
templates put that field first, so the CSRF middleware reads only the first part (a few dozen
bytes), leaves the reader positioned on the next one and hands it to the handler through
``request[MULTIPART_READER]``: the upload itself is read once, by the handler, in chunks and
under its size limit (``read_image``). Clients that set the header are not read ahead.
"""

from __future__ import annotations

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from control.errors import ValidationFailed
from control.services.images import PayloadTooLarge

#: the multipart reader, once the CSRF middleware has consumed the token part
MULTIPART_READER = web.RequestKey("multipart_reader", MultipartReader)
#: multipart framing and headers around the image, beyond the image bytes themselves
MULTIPART_OVERHEAD = 64 * 1024
#: a CSRF token is 43 characters; anything much longer is not one
TOKEN_PART_MAX = 256
CHUNK = 64 * 1024
#: what malformed multipart bodies raise inside aiohttp's reader (HttpProcessingError: a
#: part's headers do not parse)
MALFORMED = (ValueError, AssertionError, RuntimeError, HttpProcessingError)


async def multipart_reader(request: web.Request) -> MultipartReader:
    """The body's multipart reader, where the CSRF middleware left it (or a fresh one)."""
    reader = request.get(MULTIPART_READER)
    return reader if reader is not None else await request.multipart()


async def leading_field(request: web.Request, name: str) -> str | None:
    """The text of the body's first part if it is the field ``name`` (at most
    ``TOKEN_PART_MAX`` bytes), else None; the reader is kept for the handler either way."""
    try:
        reader = await request.multipart()
        request[MULTIPART_READER] = reader
        part = await reader.next()
        if not isinstance(part, BodyPartReader) or part.name != name or part.filename:
            return None
        data = bytearray()
        while chunk := await part.read_chunk(TOKEN_PART_MAX + 1):
            data.extend(chunk)
            if len(data) > TOKEN_PART_MAX:
                return None
        return data.decode("utf-8", errors="replace").strip()
    except MALFORMED:
        return None


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the image is larger than {limit} bytes", fields={"image": f"at most {limit} bytes"}
    )


async def read_image(request: web.Request, limit: int) -> tuple[bytes, str | None]:
    """The bytes and declared type of the multipart field ``image``, read in chunks and
    refused as soon as they pass ``limit`` (the API's and the profile page's upload)."""
    if not request.content_type.startswith("multipart/"):
        raise ValidationFailed(
            "send the image as multipart/form-data field 'image'",
            code="expected_multipart",
            fields={"image": "required"},
        )
    if request.content_length and request.content_length > limit + MULTIPART_OVERHEAD:
        raise _too_large(limit)
    try:
        reader = await multipart_reader(request)
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or part.name != "image":
                continue
            data = bytearray()
            while chunk := await part.read_chunk(CHUNK):
                data.extend(chunk)
                if len(data) > limit:
                    raise _too_large(limit)
            return bytes(data), part.headers.get("Content-Type")
    except MALFORMED:
        raise ValidationFailed("malformed multipart body", code="invalid_multipart") from None
    raise ValidationFailed("no image uploaded", code="image_missing", fields={"image": "required"})
