"""What every obstore-backed provider shares: typed errors, timeouts, and streaming with a deadline.

obstore raises its own exception classes; here they become the provider errors of
proxy.storage.errors, and the original text (which can name URLs) goes only to the log, redacted.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import obstore.exceptions as obstore_errors

from proxy.storage.errors import ObjectNotFound, ProviderAccessDenied, ProviderFailure, ProviderTimeout
from proxy.storage.provider import ObjectInfo, ObjectRef, quote_etag

log = logging.getLogger(__name__)
T = TypeVar("T")
STREAM_CHUNK = 1024 * 1024
READINESS_PROBE_KEY = ".preview-proxy-readiness"
READINESS_PROBE_BUCKET = "preview-proxy-readiness"


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every secret in `text`, so a provider's error message can be logged."""
    for secret in secrets:
        text = text.replace(secret, "********")
    return text


class ObstoreCalls:
    """Runs obstore calls for one provider with its timeout, turning failures into typed errors."""

    def __init__(self, provider_id: str, timeout: float, secrets: tuple[str, ...]) -> None:
        self.provider_id = provider_id
        self.timeout = timeout
        self.secrets = secrets

    async def call(self, ref: ObjectRef, operation: str, awaitable: Awaitable[T]) -> T:
        """Await one obstore call within the read timeout."""
        with self.translated(ref, operation):
            async with asyncio.timeout(self.timeout):
                return await awaitable

    async def stream(self, ref: ObjectRef, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Re-yield a body stream; each chunk must arrive within the read timeout."""
        with self.translated(ref, "read body"):
            while True:
                async with asyncio.timeout(self.timeout):
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        return
                yield bytes(chunk)

    @contextmanager
    def translated(self, ref: ObjectRef, operation: str) -> Iterator[None]:
        """Map obstore and timeout errors to provider errors, logging the redacted cause once."""
        try:
            yield
        except obstore_errors.NotModifiedError:
            raise  # a value for the caller, not a failure
        except (obstore_errors.NotFoundError, FileNotFoundError):
            # obstore 0.12 raises the builtin FileNotFoundError for a missing object, not its own class.
            raise ObjectNotFound() from None
        except (obstore_errors.PermissionDeniedError, obstore_errors.UnauthenticatedError, PermissionError) as error:
            self._log(ref, operation, error)
            raise ProviderAccessDenied() from None
        except TimeoutError:
            log.warning("%s: %s of %s/%s timed out after %gs", self.provider_id, operation, ref.bucket,
                        ref.key, self.timeout)
            raise ProviderTimeout() from None
        except (obstore_errors.BaseError, OSError) as error:
            self._log(ref, operation, error)
            raise ProviderFailure() from None

    def _log(self, ref: ObjectRef, operation: str, error: BaseException) -> None:
        cause = redact(str(error), self.secrets).replace("\n", " ")[:500]
        log.warning("%s: %s of %s/%s failed: %s: %s", self.provider_id, operation, ref.bucket, ref.key,
                    type(error).__name__, cause)


async def answers(provider: Any, bucket: str) -> None:
    """Readiness: HEAD a key that needn't exist. "Not found" means the provider answered."""
    with suppress(ObjectNotFound):
        await provider.head(ObjectRef(bucket, READINESS_PROBE_KEY))


def info_from_obstore(meta: Any, attributes: Any) -> ObjectInfo:
    """ObjectInfo from obstore's ObjectMeta and Attributes."""
    content_type = (attributes or {}).get("Content-Type") or "application/octet-stream"
    etag = quote_etag(meta.get("e_tag") or f"{meta['size']:x}-{int(meta['last_modified'].timestamp()):x}")
    return ObjectInfo(int(meta["size"]), etag, meta["last_modified"].timestamp(), str(content_type))
