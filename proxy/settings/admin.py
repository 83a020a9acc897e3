"""Admin actions (PURGE): ADMIN_TOKENS, the bearer tokens that may use them, and how a request's is matched."""

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from proxy.settings.errors import ConfigError

# A token shorter than this is too easy to guess; 16 characters of a random alphabet is about 96 bits.
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class AdminConfig:
    """The admin tokens, in the order configured (a log line names one by its place, `token #2`).

    Several at once let an operator rotate: add the new one, move clients over, drop the old one.
    None configured: admin methods are refused (403).
    """

    tokens: tuple[str, ...] = ()

    def token_number(self, authorization: str) -> int | None:
        """The 1-based place of the bearer token in an `Authorization` header, or None if it is none of them.

        Every token is compared, each in constant time (hmac.compare_digest), so the time taken says
        neither which one matched nor how much of a wrong one was right.
        """
        scheme, _, given = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        offered = given.strip().encode()
        found = None
        for number, token in enumerate(self.tokens, start=1):
            if hmac.compare_digest(offered, token.encode()) and found is None:
                found = number
        return found

    def describe(self) -> str:
        """The setting as `preview-proxy config` prints it: how many, never the tokens."""
        return f"{len(self.tokens)} token(s)" if self.tokens else "(none: PURGE refused)"


def read_admin_config(env: Mapping[str, str]) -> AdminConfig:
    """ADMIN_TOKENS, comma-separated; ConfigError for a token that is short or holds spaces."""
    return read_tokens(env, "ADMIN_TOKENS")


def read_tokens(env: Mapping[str, str], name: str) -> AdminConfig:
    """The bearer tokens of the setting `name`, comma-separated, checked as ADMIN_TOKENS' are."""
    tokens = tuple(part.strip() for part in (env.get(name) or "").split(",") if part.strip())
    for number, token in enumerate(tokens, start=1):
        if len(token) < MIN_TOKEN_LENGTH or not token.isascii() or not token.isprintable() or " " in token:
            raise ConfigError(f"{name}: token #{number} must be at least {MIN_TOKEN_LENGTH} printable "
                              "ASCII characters with no spaces")
    return AdminConfig(tokens)
