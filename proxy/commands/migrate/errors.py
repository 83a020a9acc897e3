"""What a migration raises: a usage error stops it before any copy; the others fail one object."""


class MigrateUsageError(ValueError):
    """A `--to`, `--bucket` or `--prefix` that can't be used; its message is the one line the operator sees."""


class SourceChanged(RuntimeError):
    """The source object's size changed while it was copied: what went up is not what was listed."""


class DestinationMismatch(RuntimeError):
    """The destination describes the object just written with another size than was sent."""
