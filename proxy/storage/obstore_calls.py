"""What every obstore-backed provider shares: typed errors, timeouts, and streaming with a deadline.

obstore raises its own exception classes; here they become the provider errors of
proxy.storage.errors, and the original text (which can name URLs) goes only to the log, redacted.
"""

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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
# Backoff between attempts of a read: full jitter over an exponential ceiling (AWS's "Exponential
# Backoff And Jitter"), so instances that failed together do not retry together.
BACKOFF_FIRST = 0.1
BACKOFF_CAP = 2.0
# obstore 0.12 raises GenericError for every transport failure, a timeout included; only the
# message tells them apart, where object_store's HttpErrorKind appears (checked 2026-11-22 against
# obstore 0.12.1: connect and read timeouts both show `kind: Timeout`).
TIMEOUT_MARKER = "kind: Timeout"


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every secret in `text`, so a provider's error message can be logged."""
    for secret in secrets:
        text = text.replace(secret, "********")
    return text


class ObstoreCalls:
    """Runs obstore calls for one provider with its timeout, turning failures into typed errors."""

    def __init__(self, provider_id: str, timeout: float, secrets: tuple[str, ...], retries: int = 0) -> None:
        self.provider_id = provider_id
        self.timeout = timeout
        self.secrets = secrets
        self.retries = retries

    async def call(self, ref: ObjectRef, operation: str, awaitable: Awaitable[T]) -> T:
        """Await one obstore call within the read timeout (never retried: writes go here)."""
        with self.translated(ref, operation):
            async with asyncio.timeout(self.timeout):
                return await awaitable

    async def read(self, ref: ObjectRef, operation: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """A read up to its response headers, retried with backoff on failures and timeouts.

        Only this phase is retried: once the headers are back, bytes may already be on their way to
        a client, so a body that breaks off fails the response instead (obstore's own retries, which
        would resume a body with a Range request, are switched off: see retry_config).
        """
        for attempt_number in range(self.retries + 1):
            try:
                return await self.call(ref, operation, attempt())
            except (ProviderFailure, ProviderTimeout):
                if attempt_number == self.retries:
                    raise
            ceiling = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** attempt_number)
            await asyncio.sleep(random.uniform(0, ceiling))
        raise AssertionError("unreachable: the last attempt returns or raises")

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
            self._log(ref, operation, error, " -- access denied: check the credentials and the bucket's policy")
            raise ProviderAccessDenied() from None
        except TimeoutError:
            log.warning("%s: %s of %s/%s timed out after %gs", self.provider_id, operation, ref.bucket,
                        ref.key, self.timeout)
            raise ProviderTimeout() from None
        except obstore_errors.GenericError as error:
            self._log(ref, operation, error)
            if TIMEOUT_MARKER in str(error):
                raise ProviderTimeout() from None
            raise ProviderFailure() from None
        except (obstore_errors.BaseError, OSError) as error:
            self._log(ref, operation, error)
            raise ProviderFailure() from None

    def _log(self, ref: ObjectRef, operation: str, error: BaseException, hint: str = "") -> None:
        cause = redact(str(error), self.secrets).replace("\n", " ")[:500]
        log.warning("%s: %s of %s/%s failed: %s: %s%s", self.provider_id, operation, ref.bucket, ref.key,
                    type(error).__name__, cause, hint)


async def answers(provider: Any, bucket: str) -> None:
    """Readiness: HEAD a key that needn't exist. "Not found" means the provider answered."""
    with suppress(ObjectNotFound):
        await provider.head(ObjectRef(bucket, READINESS_PROBE_KEY))


def info_from_obstore(meta: Any, attributes: Any) -> ObjectInfo:
    """ObjectInfo from obstore's ObjectMeta and Attributes."""
    content_type = (attributes or {}).get("Content-Type") or "application/octet-stream"
    etag = quote_etag(meta.get("e_tag") or f"{meta['size']:x}-{int(meta['last_modified'].timestamp()):x}")
    return ObjectInfo(int(meta["size"]), etag, meta["last_modified"].timestamp(), str(content_type))
