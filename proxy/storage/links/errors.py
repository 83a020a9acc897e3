"""What reading the links file raises about one entry, before it becomes a ConfigError naming the entry."""


class LinkFieldError(ValueError):
    """A field of one entry is missing or wrong; `field` names it, the message says why (no secret)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
