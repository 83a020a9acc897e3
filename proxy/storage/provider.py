"""The provider interface every backend implements, and the values it trades in."""

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

# What a HEAD tells, and what a GET's stream describes: the one description of an object that
# the tiers store too, so it is defined in cache/ (which may not import proxy/).
from cache.entry import ObjectInfo
from cache.fill import FileBody
from proxy.storage.writes import WritePlan, WriteResult

__all__ = ["ByteSpan", "NotModified", "ObjectInfo", "ObjectRef", "ObjectStream", "StorageProvider",
           "absolute_span", "quote_etag"]


@dataclass(frozen=True)
class ObjectRef:
    """A checked bucket and key (see proxy.http.object_path for the checks)."""

    bucket: str
    key: str


@dataclass(frozen=True)
class ByteSpan:
    """A byte range to fetch: [start, end) when `suffix` is None, else the last `suffix` bytes."""

    start: int = 0
    end: int | None = None
    suffix: int | None = None


@dataclass
class ObjectStream:
    """A GET in progress: the object's info, the bytes [start, end) it carries, and their chunks.

    `file_body`, when a provider has one, is the same body as something that moves itself into a
    file (cache.fill.FileBody: splice(2) from the socket); read either it or `chunks`, not both.
    """

    info: ObjectInfo
    start: int
    end: int
    chunks: AsyncIterator[bytes]
    file_body: FileBody | None = None


@dataclass(frozen=True)
class NotModified:
    """`get` with `if_none_match` found the same version: no body was sent."""

    etag: str


class StorageProvider(Protocol):
    """One storage backend. Errors are the typed ones in proxy.storage.errors."""

    provider_id: str

    async def head(self, ref: ObjectRef) -> ObjectInfo:
        """Size, ETag, modification time and media type of an object."""
        ...

    async def get(
        self, ref: ObjectRef, span: ByteSpan | None = None, if_none_match: str | None = None
    ) -> ObjectStream | NotModified:
        """Stream an object, or part of it."""
        ...

    async def put(self, ref: ObjectRef, chunks: AsyncIterable[bytes], content_type: str) -> None:
        """Write an object; large ones go up in parts."""
        ...

    async def write(self, ref: ObjectRef, chunks: AsyncIterable[bytes], plan: WritePlan) -> WriteResult:
        """Write an object as `plan` says (one request or parts): it appears whole or not at all.

        If `chunks` raise or the call is cancelled, nothing becomes visible and no multipart upload
        stays open on the provider (proxy.storage.writes).
        """
        ...

    async def check(self) -> None:
        """Raise a ProxyError unless the backend answers; used by /readyz."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def quote_etag(raw: str) -> str:
    """An ETag as HTTP wants it: a quoted string (S3 already quotes, some backends don't)."""
    if raw.startswith(('"', 'W/"')):
        return raw
    return f'"{raw}"'


def absolute_span(span: ByteSpan | None, size: int) -> tuple[int, int]:
    """[start, end) of a span within an object of `size` bytes (a suffix counts from the end)."""
    if span is None:
        return 0, size
    if span.suffix is not None:
        return max(0, size - span.suffix), size
    return span.start, min(size, span.end if span.end is not None else size)
