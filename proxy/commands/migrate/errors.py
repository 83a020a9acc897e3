"""What a migration raises before any copy; an object's own failures are the providers' typed errors."""


class MigrateUsageError(ValueError):
    """A `--to`, `--bucket` or `--prefix` that can't be used; its message is the one line the operator sees."""


class JournalUnavailable(RuntimeError):
    """The journal can't be opened or made (DATA_PATH not writable, a corrupt file): nothing is copied without it."""
