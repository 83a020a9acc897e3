"""What the tiers raise to their callers; proxy/ turns each into a client's answer.

Not PublicErrors: cache/ imports nothing from previews/ or proxy/, and a caller decides what a client sees.
"""


class FillFailed(Exception):
    """The fill stopped before its last byte; what a reader already sent is all it will get."""


class LockTimeout(TimeoutError):
    """Another process held the key's lock for longer than the caller would wait."""
