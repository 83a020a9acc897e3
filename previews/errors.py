"""The one root of errors that become responses, and the errors of image work.

Every error a client may see derives from PublicError: it carries the HTTP status it means and a
one-line public reason, fixed where it is raised, and proxy.http.middleware is the only place that
renders it. The root lives here because it is the one place every package that raises may import:
previews/ may not import proxy/, so the root can't be in proxy/; cache/ could hold it, but cache/ is
the tiers and raises nothing a client sees (proxy/ translates its lock and fill errors), so a class
about HTTP statuses would be a stranger there. previews/ already gives its errors a status as data
(it knows nothing else of HTTP), and proxy/ already imports it.

Each package keeps its own family under the root: PreviewError here, proxy.errors.ProxyError for the
HTTP face, proxy.storage.errors for the providers.
"""


class PublicError(Exception):
    """Root of every error that becomes a response: `status` and a one-line `reason` shown to the client."""

    status = 500
    default_reason = "internal error"

    def __init__(self, reason: str | None = None) -> None:
        lines = (reason or self.default_reason).splitlines()
        # One line: a body is read by people and by log scrapers, never a multi-line dump.
        self.reason = lines[0] if lines else self.default_reason
        super().__init__(self.reason)


class PreviewError(PublicError):
    """Base of every error raised by URL parsing, limits, decoding and rendering."""

    default_reason = "render failed"


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


class RenderDeadlinePassed(PreviewError):
    """The render stopped itself at its deadline, checked between pipeline steps.

    Compare proxy.errors.RenderWaitTimedOut: the request giving up waiting for a render.
    """

    status = 504
    default_reason = "render timed out"


class UncutJpeg(Exception):
    """Something previews.imaging.dc_scans does not handle in a progressive JPEG (another coding process,
    a truncated scan, too many segments): never shown to a client, the whole file is decoded instead,
    and that decode reports any damage."""


class DecodeNotKept(Exception):
    """A render asked to start from a kept decode (previews.render.PreparedRender.kept_only) finds none:
    never shown to a client, the worker reserves the whole render's memory and asks again."""
