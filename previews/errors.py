"""Errors of image work. Each carries the HTTP status it means and a one-line public reason.

previews/ knows nothing of HTTP; the status is data here, and proxy.http.middleware renders it, as it does
for proxy.errors.ProxyError.
"""


class PreviewError(Exception):
    """Base of every error raised by URL parsing, limits, decoding and rendering."""

    status = 500
    default_reason = "render failed"

    def __init__(self, reason: str | None = None) -> None:
        lines = (reason or self.default_reason).splitlines()
        self.reason = lines[0] if lines else self.default_reason
        super().__init__(self.reason)


class InvalidOption(PreviewError):
    """An unknown processing option, or one with malformed arguments."""

    status = 400
    default_reason = "invalid option"


class InvalidSource(PreviewError):
    """The source part of a preview URL can't be read (bad base64, empty, bad escape)."""

    status = 400
    default_reason = "invalid source"


class SourceTooLarge(PreviewError):
    """The source file is bigger than IMGPROXY_MAX_SRC_FILE_SIZE."""

    status = 413
    default_reason = "source file is too large"


class UnsupportedImage(PreviewError):
    """The source is corrupt, truncated, or in a format we don't read."""

    status = 415
    default_reason = "unsupported image"


class TooManyPixels(PreviewError):
    """The source's resolution, read from its header, is over IMGPROXY_MAX_SRC_RESOLUTION."""

    status = 422
    default_reason = "source resolution is too large"


class ResultTooLarge(PreviewError):
    """The request would make an image over IMGPROXY_MAX_RESULT_DIMENSION or IMGPROXY_MAX_RESULT_RESOLUTION.

    Raised from the options and the source's header, before any decode: the request is refused, not the image.
    """

    status = 422
    default_reason = "the requested result is too large"


class RenderTimedOut(PreviewError):
    """The render passed its deadline; checked between pipeline steps."""

    status = 504
    default_reason = "render timed out"
