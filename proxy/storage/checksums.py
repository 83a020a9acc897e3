"""A body checked while it streams: its length against what was declared, its digests against what the client sent.

The check of the digests happens when the body ends, before the iterator says so: a writer that
completes only after the last chunk (a rename, a CompleteMultipartUpload) never completes a body
that doesn't match, because the iterator raises instead of ending.
"""

import base64
import binascii
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from proxy.errors import BadRequest
from proxy.storage.errors import ChecksumMismatch, UploadTooLarge


@dataclass(frozen=True)
class ExpectedDigests:
    """The raw digests a client declared (Content-MD5, x-amz-checksum-sha256); empty when it sent none."""

    md5: bytes | None = None
    sha256: bytes | None = None

    @classmethod
    def from_headers(cls, md5: str | None, sha256: str | None) -> "ExpectedDigests":
        """Both headers carry base64 (RFC 1864, and S3's checksum headers); BadRequest if either is malformed."""
        return cls(_decoded("Content-MD5", md5, 16), _decoded("x-amz-checksum-sha256", sha256, 32))


async def verified(chunks: AsyncIterable[bytes], expected: ExpectedDigests, size: int | None,
                   max_size: int) -> AsyncIterator[bytes]:
    """Re-yield `chunks`; raise ChecksumMismatch or UploadTooLarge instead of ending if they don't hold.

    `size`: the declared length (a body that ends short of it was cut off: also a mismatch, so it is
    never stored); `max_size`: the most bytes accepted at all.
    """
    md5 = hashlib.md5(usedforsecurity=False) if expected.md5 is not None else None
    sha256 = hashlib.sha256() if expected.sha256 is not None else None
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > max_size:
            raise UploadTooLarge(f"the body is longer than {max_size} bytes")
        if md5 is not None:
            md5.update(chunk)
        if sha256 is not None:
            sha256.update(chunk)
        yield chunk
    if size is not None and received != size:
        raise ChecksumMismatch(f"the body ended after {received} of {size} bytes")
    if md5 is not None and md5.digest() != expected.md5:
        raise ChecksumMismatch("the body does not match its Content-MD5")
    if sha256 is not None and sha256.digest() != expected.sha256:
        raise ChecksumMismatch("the body does not match its x-amz-checksum-sha256")


def _decoded(name: str, text: str | None, length: int) -> bytes | None:
    if text is None:
        return None
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{name} is not base64") from None
    if len(raw) != length:
        raise BadRequest(f"{name} must be the base64 of {length} bytes")
    return raw
