"""The one place log text is redacted: a filter on the root handlers that masks every known secret.

Whatever a logger quotes (obstore's error text with the request it sent, an upstream's error body
echoing that request, a traceback's exception message) passes the filter on its way to a handler,
so no call site has to remember to redact. The secrets come from proxy.secrets.registry, which
config readers fill, including the links file's readers on every SIGHUP reload.
"""

import logging
import traceback

from proxy.config import Config
from proxy.secrets.registry import SECRETS, SecretRegistry


class RedactingFilter(logging.Filter):
    """Masks the secrets of `registry` in a record's message, traceback and stack; drops nothing."""

    def __init__(self, registry: SecretRegistry = SECRETS) -> None:
        super().__init__()
        self.registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place (handlers share it), only where a secret was found."""
        registry = self.registry
        if registry.empty:
            return True
        try:
            message = record.getMessage()
        except Exception:
            # A call whose arguments don't fit its format: logging would print both raw to stderr.
            message = record.msg = f"{record.msg} (arguments that did not fit: {record.args!r})"
            record.args = ()
        redacted = registry.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            # Formatted here, once, so the handler's formatter finds exc_text set and prints this.
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = registry.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = registry.redact(record.stack_info)
        return True


def register_config_secrets(config: Config, registry: SecretRegistry = SECRETS) -> None:
    """Add every secret `config` holds: the storage's, the admin, upload and read tokens, the presigning
    keys, the signature keys and salts, the links file's.

    Each process calls it at start-up; a spawned worker gets its config pickled, not the
    supervisor's registry.
    """
    registry.add(*config.storage.secrets())
    registry.add(*config.admin.tokens)  # ADMIN_TOKENS: a token quoted in a log line or error is masked
    registry.add(*config.uploads.secrets())  # UPLOAD_TOKENS and SIGNING_KEYS, the same way
    registry.add(*config.private_buckets.secrets())  # READ_TOKENS
    registry.add_keys(*(part for pair in config.previews.signature.pairs for part in pair))
    if config.links is not None:
        registry.add(*config.links.secrets())


def install_redaction(registry: SecretRegistry = SECRETS) -> None:
    """Put the filter on every handler of the root logger (once each; call after configuring logging)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(registry))
