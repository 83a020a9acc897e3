"""Multipart uploads left open on S3: list them (ListMultipartUploads, page by page) and abort one by its id.

obstore starts, completes and aborts its own multipart uploads, but can neither list the open ones
nor abort one by id; these calls are made here over aiohttp, signed by proxy.storage.cloud.signed_s3.sigv4,
with the settings the S3 provider is built from (endpoint, region, static keys or an IAM role's from the
instance metadata service, CA file, timeouts).
Requests are path-style, as the provider's are.
"""

import ssl
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from yarl import URL

from proxy.storage.cloud.signed_s3.instance_credentials import instance_keys
from proxy.storage.cloud.signed_s3.sigv4 import SigningKeys, canonical_path, canonical_query, sign
from proxy.storage.config import StorageConfig
from proxy.storage.errors import PermissionMissing, ProviderFailure, ProviderTimeout

LIST_PERMISSION = "s3:ListBucketMultipartUploads"
ABORT_PERMISSION = "s3:AbortMultipartUpload"
LIST_BUCKETS_PERMISSION = "s3:ListAllMyBuckets"
PAGE_SIZE = 1000  # S3's largest page
MAX_PAGES = 100_000  # a bound on a listing whose markers never end (a broken server), not a real limit


@dataclass(frozen=True)
class OpenUpload:
    """One multipart upload that was started and neither completed nor aborted."""

    bucket: str
    key: str
    upload_id: str
    initiated: datetime


class S3MultipartUploads:
    """ListBuckets, ListMultipartUploads and AbortMultipartUpload on one S3 endpoint (an async context manager)."""

    def __init__(self, config: StorageConfig, page_size: int = PAGE_SIZE) -> None:
        self._config = config
        self._keys: SigningKeys | None = None  # static keys, or an IAM role's fetched on entering
        if config.access_key and config.secret_key:
            self._keys = SigningKeys(config.access_key, config.secret_key, config.region)
        self._base = (config.endpoint or f"https://s3.{config.region}.amazonaws.com").rstrip("/")
        self._page_size = page_size
        context = ssl.create_default_context(cafile=str(config.ca_file)) if config.ca_file else None
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context) if context else None,
            timeout=aiohttp.ClientTimeout(sock_connect=config.connect_timeout, sock_read=config.read_timeout))

    async def __aenter__(self) -> "S3MultipartUploads":
        if self._keys is None:
            try:
                self._keys = await instance_keys(self._session, self._config.metadata_endpoint, self._config.region)
            except BaseException:
                await self._session.close()
                raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._session.close()

    async def buckets(self) -> list[str]:
        """Every bucket the credentials can see (ListBuckets)."""
        root = await self._call("GET", "/", [], LIST_BUCKETS_PERMISSION, "(all buckets)")
        return [text for text in (node.text for node in root.iterfind(".//{*}Bucket/{*}Name")) if text]

    async def open_uploads(self, bucket: str) -> AsyncIterator[OpenUpload]:
        """The bucket's open multipart uploads, oldest pages first as S3 orders them (by key, then time)."""
        markers: list[tuple[str, str]] = []
        for _ in range(MAX_PAGES):
            query = [("uploads", ""), ("max-uploads", str(self._page_size)), *markers]
            root = await self._call("GET", f"/{bucket}", query, LIST_PERMISSION, bucket)
            for node in root.iterfind("{*}Upload"):
                yield OpenUpload(bucket, _text(node, "Key"), _text(node, "UploadId"),
                                 _timestamp(_text(node, "Initiated")))
            if _text(root, "IsTruncated").lower() != "true":
                return
            markers = [("key-marker", _text(root, "NextKeyMarker")),
                       ("upload-id-marker", _text(root, "NextUploadIdMarker"))]
        raise ProviderFailure(f"listing the multipart uploads of {bucket!r} did not end after {MAX_PAGES} pages")

    async def abort(self, upload: OpenUpload) -> bool:
        """Abort `upload`; False if the provider no longer knows it (completed or aborted meanwhile)."""
        status, body = await self._request("DELETE", f"/{upload.bucket}/{upload.key}",
                                           [("uploadId", upload.upload_id)], upload.bucket)
        if status == 404 and _error_code(body) == "NoSuchUpload":
            return False
        _check(status, body, "DELETE", ABORT_PERMISSION, upload.bucket)
        return True

    async def _call(self, method: str, path: str, query: list[tuple[str, str]], permission: str,
                    bucket: str) -> ElementTree.Element:
        """One signed request; its XML answer, or the typed error its status and code mean."""
        status, body = await self._request(method, path, query, bucket)
        _check(status, body, method, permission, bucket)
        return ElementTree.fromstring(body) if body.strip() else ElementTree.Element("Empty")

    async def _request(self, method: str, path: str, query: list[tuple[str, str]], bucket: str) -> tuple[int, bytes]:
        """Send one signed request: the status and body, or ProviderTimeout/ProviderFailure if none came."""
        url = f"{self._base}{canonical_path(path)}" + (f"?{canonical_query(query)}" if query else "")
        assert self._keys is not None, "used outside `async with`"
        headers = sign(method, url, self._keys, datetime.now(UTC))
        try:
            async with self._session.request(method, URL(url, encoded=True), headers=headers) as response:
                return response.status, await response.read()
        except TimeoutError:
            raise ProviderTimeout(f"{method} on bucket {bucket!r}: no answer in time") from None
        except aiohttp.ClientError as error:
            raise ProviderFailure(f"{method} on bucket {bucket!r}: {type(error).__name__}") from None


def _check(status: int, body: bytes, method: str, permission: str, bucket: str) -> None:
    """Nothing for a success; PermissionMissing for AccessDenied (naming `permission`); ProviderFailure else."""
    if status < 300:
        return
    code = _error_code(body)
    if code == "AccessDenied" or (status == 403 and not code):
        raise PermissionMissing(permission, bucket)
    raise ProviderFailure(f"{method} on bucket {bucket!r}: HTTP {status} {code or '(no error code)'}")


def _error_code(body: bytes) -> str:
    """The <Code> of an S3 error document, or "" if the body is not one."""
    try:
        return ElementTree.fromstring(body).findtext("{*}Code") or ""
    except ElementTree.ParseError:
        return ""


def _text(node: ElementTree.Element, tag: str) -> str:
    return node.findtext(f"{{*}}{tag}") or ""


def _timestamp(text: str) -> datetime:
    """S3's ISO 8601 time (`2026-12-04T05:06:07.000Z`) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
