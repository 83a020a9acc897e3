"""Private buckets: PRIVATE_BUCKETS (names or globs), READ_TOKENS and PRIVATE_CACHE_CONTROL, read once.

A private bucket's originals, conversions and links answer only a presigned GET (SIGNING_KEYS) or a
bearer token of READ_TOKENS (or of ADMIN_TOKENS or UPLOAD_TOKENS: their holders may already purge or
write); its previews only a signed URL (IMGPROXY_KEY). proxy/http/access/private_buckets.py applies this.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from proxy.settings.admin import AdminConfig, read_tokens
from proxy.settings.errors import ConfigError

# Bucket names hold letters, digits, '.', '_' and '-' (proxy.http.object_path); a glob adds * ? [ ] !.
_PATTERN = re.compile(r"[A-Za-z0-9._\-*?\[\]!]{1,255}")
# Revalidated on every reuse: an expired presigned URL or a revoked token stops showing the bytes.
DEFAULT_CACHE_CONTROL = "private, no-cache"
# Directives that let a shared cache (a CDN, a corporate proxy) keep an answer, or keep it unchecked.
_SHARED_DIRECTIVES = ("public", "s-maxage", "immutable")


@dataclass(frozen=True)
class PrivateBucketsConfig:
    """Which buckets are private, the read tokens, and the Cache-Control of their answers.

    No patterns (the default): no bucket is private and nothing changes.
    """

    patterns: tuple[str, ...] = ()
    read_tokens: AdminConfig = field(default_factory=AdminConfig)
    cache_control: str = DEFAULT_CACHE_CONTROL

    def is_private(self, bucket: str) -> bool:
        """Whether `bucket` (a main-storage bucket or a link's, as the URL names it) matches a pattern.

        Case-insensitive, so a provider that folds case can't be reached around a pattern by capitals.
        """
        if not self.patterns:
            return False
        name = bucket.lower()
        return any(fnmatchcase(name, pattern) for pattern in self.patterns)

    def secrets(self) -> tuple[str, ...]:
        """The read tokens, for the redaction registry."""
        return self.read_tokens.tokens

    def describe(self) -> dict[str, str]:
        """What `preview-proxy config` shows: the patterns, how many tokens (never the tokens)."""
        return {"PRIVATE_BUCKETS": ", ".join(self.patterns) or "(none)",
                "READ_TOKENS": f"{len(self.read_tokens.tokens)} token(s)",
                "PRIVATE_CACHE_CONTROL": self.cache_control}


def read_private_buckets_config(env: Mapping[str, str], can_open: bool) -> PrivateBucketsConfig:
    """The settings; ConfigError (one line, naming the variable) for a bad pattern, a weak token, a
    Cache-Control a shared cache may keep, or private buckets that nothing could open (`can_open`:
    whether SIGNING_KEYS, ADMIN_TOKENS or UPLOAD_TOKENS are set)."""
    patterns = tuple(part.lower() for part in re.split(r"[,\s]+", env.get("PRIVATE_BUCKETS") or "") if part)
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern):
            raise ConfigError(f"PRIVATE_BUCKETS: {pattern[:40]!r} is not a bucket name or glob "
                              "(letters, digits, '.', '_', '-', and * ? [ ])")
    tokens = read_tokens(env, "READ_TOKENS")
    cache_control = (env.get("PRIVATE_CACHE_CONTROL") or DEFAULT_CACHE_CONTROL).strip()
    directives = {part.split("=", 1)[0].strip().lower() for part in cache_control.split(",")}
    if directives & set(_SHARED_DIRECTIVES) or not directives & {"private", "no-store"}:
        raise ConfigError("PRIVATE_CACHE_CONTROL: must say private (or no-store), and not public, s-maxage "
                          "or immutable")
    if patterns and not (tokens.tokens or can_open):
        raise ConfigError("PRIVATE_BUCKETS is set but nothing can open those buckets: set SIGNING_KEYS "
                          "(presigned URLs) or READ_TOKENS (bearer tokens)")
    return PrivateBucketsConfig(patterns, tokens, cache_control)
