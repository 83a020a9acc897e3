"""What every obstore-backed provider shares: typed errors, timeouts, and streaming with a deadline.

obstore raises its own exception classes; here they become the provider errors of
proxy.storage.errors, and the original text (which can name URLs, and quote an upstream's error
body that echoes the signed request) goes only to the log: whole, once per failed call, and masked
by the log filter (proxy.runtime.log_redaction), which knows this provider's secrets from its constructor.
"""

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import obstore.exceptions as obstore_errors

from proxy.secrets.registry import SECRETS
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
MAX_CAUSES = 8  # a chain of causes is short; a loop or a runaway chain must not make a line endless


class ObstoreCalls:
    """Runs obstore calls for one provider with its timeout, turning failures into typed errors."""

    def __init__(self, provider_id: str, timeout: float, secrets: tuple[str, ...], retries: int = 0) -> None:
        # Every provider's secrets are known to the log filter from the moment it exists, whichever
        # process built it and whenever (a links reload builds new ones).
        SECRETS.add(*secrets)
        self.provider_id = provider_id
        self.timeout = timeout
        self.retries = retries

    async def call(self, ref: ObjectRef, operation: str, awaitable: Awaitable[T], quiet: bool = False,
                   attempt: str = "") -> T:
        """Await one obstore call within the read timeout (never retried: writes go here).

        `quiet`: log a failure at DEBUG only, as `attempt` (an attempt that will be retried; the last
        one logs its failure as a warning, once for the request).
        """
        with self.translated(ref, operation, quiet, attempt):
            async with asyncio.timeout(self.timeout):
                return await awaitable

    async def read(self, ref: ObjectRef, operation: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """A read up to its response headers, retried with backoff on failures and timeouts.

        Only this phase is retried: once the headers are back, bytes may already be on their way to
        a client, so a body that breaks off fails the response instead (obstore's own retries, which
        would resume a body with a Range request, are switched off: see retry_config).
        """
        attempts = self.retries + 1
        for attempt_number in range(attempts):
            retried = attempt_number < self.retries
            try:
                return await self.call(ref, operation, attempt(), quiet=retried,
                                       attempt=f"attempt {attempt_number + 1} of {attempts}" if retried else "")
            except (ProviderFailure, ProviderTimeout):
                if not retried:
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
    def translated(self, ref: ObjectRef, operation: str, quiet: bool = False, attempt: str = "") -> Iterator[None]:
        """Map obstore and timeout errors to provider errors, logging the whole cause (at DEBUG if `quiet`,
        naming the `attempt`)."""
        level = logging.DEBUG if quiet else logging.WARNING
        retried = f" ({attempt}; retried)" if attempt else ""
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
            log.log(level, "%s: %s of %s/%s timed out after %gs%s", self.provider_id, operation, ref.bucket,
                    ref.key, self.timeout, retried)
            raise ProviderTimeout() from None
        except obstore_errors.GenericError as error:
            self._log(ref, operation, error, retried, level)
            if TIMEOUT_MARKER in str(error):
                raise ProviderTimeout() from None
            raise ProviderFailure() from None
        except (obstore_errors.BaseError, OSError) as error:
            self._log(ref, operation, error, retried, level)
            raise ProviderFailure() from None

    def _log(self, ref: ObjectRef, operation: str, error: BaseException, hint: str = "",
             level: int = logging.WARNING) -> None:
        # The whole cause on one line, never cut: obstore's text ends with the upstream's answer or the
        # transport's reason (a certificate it refused, say), the useful part.
        log.log(level, "%s: %s of %s/%s failed: %s%s", self.provider_id, operation, ref.bucket, ref.key,
                whole_cause(error), hint)


def whole_cause(error: BaseException) -> str:
    """`error` and the errors it was raised from or during, each as `Type: text`, on one line."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(parts) < MAX_CAUSES:
        seen.add(id(current))
        text = " ".join(str(current).split())
        parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return " <- ".join(parts)


async def answers(provider: Any, bucket: str) -> None:
    """Readiness: HEAD a key that needn't exist. "Not found" means the provider answered."""
    with suppress(ObjectNotFound):
        await provider.head(ObjectRef(bucket, READINESS_PROBE_KEY))


def info_from_obstore(meta: Any, attributes: Any) -> ObjectInfo:
    """ObjectInfo from obstore's ObjectMeta and Attributes."""
    content_type = (attributes or {}).get("Content-Type") or "application/octet-stream"
    etag = quote_etag(meta.get("e_tag") or f"{meta['size']:x}-{int(meta['last_modified'].timestamp()):x}")
    return ObjectInfo(int(meta["size"]), etag, meta["last_modified"].timestamp(), str(content_type))
