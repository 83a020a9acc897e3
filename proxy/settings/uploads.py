"""Uploads (PUT): who may write (UPLOAD_TOKENS, SIGNING_KEYS) and how bodies go up (STORAGE_MULTIPART_THRESHOLD,
STORAGE_PART_SIZE, STORAGE_UPLOAD_CONCURRENCY).

SIGNING_KEYS sign every presigned URL, a PUT's and a private bucket's GET alike (the method is signed,
so one can't stand in for the other); UPLOAD_SIGNING_KEYS, its first name, is read when it is unset.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from proxy.settings.admin import MIN_TOKEN_LENGTH, AdminConfig
from proxy.settings.env_values import read_count
from proxy.settings.errors import ConfigError
from proxy.settings.units import read_size

# A signing key shorter than this is guessable offline from one presigned URL.
MIN_SIGNING_KEY_LENGTH = 32
# S3 refuses parts under 5 MiB (all but the last), so a smaller part size could never complete there.
MIN_PART_SIZE = 5 * 1024 * 1024
SIGNING_KEYS = "SIGNING_KEYS"
OLDER_SIGNING_KEYS = "UPLOAD_SIGNING_KEYS"  # still read: SIGNING_KEYS' name while only uploads were signed


@dataclass(frozen=True)
class UploadConfig:
    """Bearer tokens for PUT, the presigning keys, and the shape of the writes (proxy.storage.writes.WritePlan).

    A separate key from IMGPROXY_KEY: a preview key lets its holder read resized images, a presigning
    key lets its holder write (and read private buckets); each can then be handed out, and rotated,
    without the other.
    """

    tokens: AdminConfig = field(default_factory=AdminConfig)
    signing_keys: tuple[bytes, ...] = ()  # the first signs (`presign`), any of them verifies
    multipart_threshold: int = 64 * 1024 * 1024
    part_size: int = 16 * 1024 * 1024
    concurrency: int = 4

    @property
    def enabled(self) -> bool:
        """Whether any PUT can be allowed at all."""
        return bool(self.tokens.tokens or self.signing_keys)

    def secrets(self) -> tuple[str, ...]:
        """The tokens and keys as text, for the redaction registry."""
        return self.tokens.tokens + tuple(key.decode() for key in self.signing_keys)

    def describe(self) -> dict[str, str]:
        """What `preview-proxy config` shows: counts and sizes, never the tokens or keys."""
        keys = f"{len(self.signing_keys)} key(s)" if self.signing_keys else "(no presigned URLs)"
        return {"UPLOAD_TOKENS": f"{len(self.tokens.tokens)} token(s)", SIGNING_KEYS: keys,
                "STORAGE_MULTIPART_THRESHOLD": str(self.multipart_threshold),
                "STORAGE_PART_SIZE": str(self.part_size),
                "STORAGE_UPLOAD_CONCURRENCY": str(self.concurrency)}


def read_upload_config(env: Mapping[str, str]) -> UploadConfig:
    """The upload settings; ConfigError (one line, naming the variable) for a weak token or key, or a part under 5m."""
    tokens = _list(env, "UPLOAD_TOKENS")
    for number, token in enumerate(tokens, start=1):
        if len(token) < MIN_TOKEN_LENGTH or not token.isascii() or not token.isprintable():
            raise ConfigError(f"UPLOAD_TOKENS: token #{number} must be at least {MIN_TOKEN_LENGTH} printable "
                              "ASCII characters with no spaces")
    keys = _signing_keys(env)
    part_size = read_size(env, "STORAGE_PART_SIZE", "16m")
    if part_size < MIN_PART_SIZE:
        raise ConfigError("STORAGE_PART_SIZE: at least 5m (S3 refuses smaller parts)")
    concurrency = read_count(env, "STORAGE_UPLOAD_CONCURRENCY", 4)
    if concurrency < 1:
        raise ConfigError("STORAGE_UPLOAD_CONCURRENCY: at least 1")
    return UploadConfig(AdminConfig(tokens), tuple(key.encode() for key in keys),
                        read_size(env, "STORAGE_MULTIPART_THRESHOLD", "64m"), part_size, concurrency)


def _signing_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    """SIGNING_KEYS, or UPLOAD_SIGNING_KEYS when it is unset; both set with different values is an error."""
    keys, older = _list(env, SIGNING_KEYS), _list(env, OLDER_SIGNING_KEYS)
    if keys and older and keys != older:
        raise ConfigError(f"{SIGNING_KEYS} and {OLDER_SIGNING_KEYS} differ: {OLDER_SIGNING_KEYS} is the older "
                          f"name of {SIGNING_KEYS}; set one of them")
    name = SIGNING_KEYS if keys else OLDER_SIGNING_KEYS
    for number, key in enumerate(keys or older, start=1):
        if len(key) < MIN_SIGNING_KEY_LENGTH or not key.isascii() or not key.isprintable():
            raise ConfigError(f"{name}: key #{number} must be at least {MIN_SIGNING_KEY_LENGTH} "
                              "printable ASCII characters with no spaces")
    return keys or older


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    values = tuple(part.strip() for part in (env.get(name) or "").split(","))
    if any(" " in value for value in values):
        raise ConfigError(f"{name}: a value holds a space")
    return tuple(value for value in values if value)
