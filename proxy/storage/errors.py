"""Typed provider errors. "Not found" is an error with a status; "not modified" is a return value."""

from proxy.errors import BadRequest, NotFound, UpstreamFailed, UpstreamTimeout


class ObjectNotFound(NotFound):
    """The bucket or key does not exist (or is not reachable through this provider)."""

    default_reason = "no such object"


class InvalidObjectPath(BadRequest):
    """A bucket or key that no provider may be asked for: traversal, encoded slashes, NUL bytes."""

    default_reason = "invalid object path"


class ProviderFailure(UpstreamFailed):
    """The provider answered with an error, or the connection broke."""


class ProviderAccessDenied(UpstreamFailed):
    """The provider refused our credentials; the operator must fix them, so it is a 502, not a 403."""

    default_reason = "storage provider denied access"


class ProviderTimeout(UpstreamTimeout):
    """The provider did not answer within the configured time."""
