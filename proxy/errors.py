"""The one error hierarchy. Each error carries its HTTP status and a one-line public reason.

The status is fixed where the error is raised; `proxy.http.middleware` is the only place that renders
errors into responses. Messages are shown to clients, so they never carry secrets or tracebacks.
"""


class ProxyError(Exception):
    """Base of every error that becomes an HTTP response."""

    status = 500
    default_reason = "internal error"

    def __init__(self, reason: str | None = None) -> None:
        lines = (reason or self.default_reason).splitlines()
        # One line: a body is read by people and by log scrapers, never a multi-line dump.
        self.reason = lines[0] if lines else self.default_reason
        super().__init__(self.reason)


class BadRequest(ProxyError):
    """Malformed path, option or source."""

    status = 400
    default_reason = "bad request"


class Forbidden(ProxyError):
    """Bad or missing signature, expired URL, forbidden bucket."""

    status = 403
    default_reason = "forbidden"


class NotFound(ProxyError):
    """Unknown bucket or key."""

    status = 404
    default_reason = "not found"


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


class UpstreamTimeout(ProxyError):
    """The storage provider or a render took too long."""

    status = 504
    default_reason = "storage provider timed out"
