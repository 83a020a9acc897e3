"""The HTTP face's typed errors. Each carries its HTTP status and a one-line public reason.

They derive from previews.errors.PublicError, the one root of errors that become responses. The status
is fixed where the error is raised; `proxy.http.middleware` is the only place that renders errors
into responses. Messages are shown to clients, so they never carry secrets or tracebacks.
"""

from previews.errors import PublicError


class ProxyError(PublicError):
    """Base of the HTTP face's errors (requests, render bounds, shutdown); the providers' derive from it too."""


class BadRequest(ProxyError):
    """Malformed path, option or source."""

    status = 400
    default_reason = "bad request"


class Forbidden(ProxyError):
    """Bad or missing signature, expired URL, forbidden bucket."""

    status = 403
    default_reason = "forbidden"


class AdminUnauthorized(ProxyError):
    """An admin method (PURGE) without a bearer token, or with one that is not in ADMIN_TOKENS.

    The answer carries `WWW-Authenticate: Bearer` (RFC 6750 section 3), added by the middleware.
    """

    status = 401
    default_reason = "PURGE needs Authorization: Bearer <one of ADMIN_TOKENS>"


class AdminDisabled(ProxyError):
    """An admin method (PURGE) while no ADMIN_TOKENS are configured."""

    status = 403
    default_reason = "PURGE is off: no ADMIN_TOKENS are configured"


class NotFound(ProxyError):
    """Unknown bucket or key."""

    status = 404
    default_reason = "not found"


class PreconditionFailed(ProxyError):
    """If-Match or If-Unmodified-Since did not hold."""

    status = 412
    default_reason = "precondition failed"


class PayloadTooLarge(ProxyError):
    """Source file too large."""

    status = 413
    default_reason = "source file is too large"


class UnsupportedMedia(ProxyError):
    """Unreadable or unsupported image."""

    status = 415
    default_reason = "unsupported or unreadable image"


class RangeNotSatisfiable(ProxyError):
    """A Range that lies outside the object; the response must name the size."""

    status = 416
    default_reason = "range not satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for an object of {size} bytes")
        self.size = size


class Unprocessable(ProxyError):
    """Too many pixels or frames."""

    status = 422
    default_reason = "image is too large to process"


class RenderMemoryExceeded(Unprocessable):
    """One render's estimated peak is over RENDER_MEMORY_LIMIT: it could never run."""

    default_reason = "the render needs more memory than RENDER_MEMORY_LIMIT allows"


class TooManyRequests(ProxyError):
    """Render queue full."""

    status = 429
    default_reason = "too many requests in the render queue"


class UpstreamFailed(ProxyError):
    """The storage provider failed or refused us."""

    status = 502
    default_reason = "storage provider failed"


class ServiceUnavailable(ProxyError):
    """A passing condition keeps the request from being served; the client may retry."""

    status = 503
    default_reason = "temporarily unavailable, try again"


class ShuttingDown(ServiceUnavailable):
    """The server is draining."""

    default_reason = "shutting down"


class RenderProcessEnded(ServiceUnavailable):
    """The render host (proxy.render.host) ended while it ran this request's render; another is starting."""

    default_reason = "the render process restarted, try again"


class UpstreamTimeout(ProxyError):
    """The storage provider or a render took too long."""

    status = 504
    default_reason = "storage provider timed out"


class RenderWaitTimedOut(UpstreamTimeout):
    """The request's deadline passed while it waited for a render.

    It waited for a worker, for another process's render or for the render in flight; that render may
    go on (threads can't be stopped). Compare previews.errors.RenderDeadlinePassed: the render itself
    stopping at its deadline.
    """

    default_reason = "render timed out"


class RenderMemoryTimeout(UpstreamTimeout):
    """The deadline passed while the render waited for memory."""

    default_reason = "render timed out waiting for memory"


class UploadUnauthorized(AdminUnauthorized):
    """A PUT with neither a bearer token of UPLOAD_TOKENS nor a valid presigned query.

    An AdminUnauthorized, so the middleware adds `WWW-Authenticate: Bearer` to it as well.
    """

    default_reason = "PUT needs Authorization: Bearer <one of UPLOAD_TOKENS> or a presigned URL"


class UploadsDisabled(Forbidden):
    """A PUT while neither UPLOAD_TOKENS nor UPLOAD_SIGNING_KEYS is configured."""

    default_reason = "uploads are off: no UPLOAD_TOKENS or UPLOAD_SIGNING_KEYS are configured"


class PrivateBucketForbidden(Forbidden):
    """A read of a private bucket (PRIVATE_BUCKETS) with neither a bearer token nor a presigned URL."""

    default_reason = "this bucket is private: it needs a presigned URL or Authorization: Bearer <token>"


class PrivateBucketUnauthorized(AdminUnauthorized):
    """A read of a private bucket with a bearer token that is none of READ_TOKENS, UPLOAD_TOKENS, ADMIN_TOKENS.

    An AdminUnauthorized, so the middleware adds `WWW-Authenticate: Bearer` to it, as to a PUT's.
    """

    default_reason = "this bucket is private: the bearer token is not one of READ_TOKENS"


class PrivatePreviewUnsigned(Forbidden):
    """A preview of a private bucket's image while IMGPROXY_KEY is unset, so no preview URL is signed."""

    default_reason = "previews of a private bucket need a signed URL, and IMGPROXY_KEY is not set"


class IiifBucketNotServed(NotFound):
    """An IIIF identifier in a bucket IIIF_BUCKETS does not list (none, by default)."""

    default_reason = "this bucket is not served over IIIF (IIIF_BUCKETS does not list it)"


class IiifPrivateBucket(Forbidden):
    """An IIIF identifier in a private bucket (PRIVATE_BUCKETS): IIIF URLs carry no signature or token."""

    default_reason = "this bucket is private: it is never served over IIIF"
