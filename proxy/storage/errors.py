"""Typed provider errors. "Not found" is an error with a status; "not modified" is a return value.

They derive from proxy.errors' status classes, so they share the one root (previews.errors.PublicError)
and the middleware renders them like any other.
"""

from proxy.errors import BadRequest, NotFound, ServiceUnavailable, UpstreamFailed, UpstreamTimeout


class ObjectNotFound(NotFound):
    """The bucket or key does not exist (or is not reachable through this provider)."""

    default_reason = "no such object"


class LocalFilesOff(ObjectNotFound):
    """A `local://` source while IMGPROXY_LOCAL_FILESYSTEM_ROOT is not set."""

    default_reason = "local:// sources are off: IMGPROXY_LOCAL_FILESYSTEM_ROOT is not set"


class InvalidObjectPath(BadRequest):
    """A bucket or key that no provider may be asked for: traversal, encoded slashes, NUL bytes."""

    default_reason = "invalid object path"


class ProviderFailure(UpstreamFailed):
    """The provider answered with an error, or the connection broke."""


class CircuitOpen(ProviderFailure):
    """The provider failed too often lately; it is not asked until its cool-down ends."""

    default_reason = "storage provider is failing; requests to it are paused"


class OriginalChanged(ProviderFailure):
    """The object's ETag changed between two range reads of the same file."""

    default_reason = "the original changed while it was read"


class ProviderAccessDenied(UpstreamFailed):
    """The provider refused our credentials; the operator must fix them, so it is a 502, not a 403."""

    default_reason = "storage provider denied access"


class PermissionMissing(ProviderAccessDenied):
    """The provider answered AccessDenied to a call that needs one permission; `permission` names it."""

    def __init__(self, permission: str, bucket: str) -> None:
        super().__init__(f"access denied: the credentials lack {permission} on bucket {bucket!r}")
        self.permission = permission


class ProviderTimeout(UpstreamTimeout):
    """The provider did not answer within the configured time."""


class ChecksumMismatch(BadRequest):
    """An upload's body does not match the Content-MD5 or x-amz-checksum-sha256 its client sent."""

    default_reason = "the body does not match its checksum"


class UploadTooLarge(BadRequest):
    """An upload's body is larger than a provider can take in one object, or than its Content-Length said."""

    status = 413
    default_reason = "the body is too large for one object"


class WriteAborted(ServiceUnavailable):
    """A write given up before it completed (the server is shutting down); not the provider's failure."""

    default_reason = "the upload was aborted"


class BodyCutOff(BadRequest):
    """The client's body broke off before its end (a disconnect): the write is aborted, nothing stored."""

    default_reason = "the request body was cut off"


class UpstreamStatus(OSError):
    """A status the plain-HTTP GET (proxy.storage.cloud.spliced_get) did not expect; a ProviderFailure once
    translated, with the upstream's answer in the log."""
