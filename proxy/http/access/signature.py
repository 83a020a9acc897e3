"""imgproxy-compatible URL signatures: HMAC-SHA256 over salt + path, base64url, truncated.

https://docs.imgproxy.net/usage/signing_url. Several key/salt pairs may be valid at once, so keys
can be rotated without breaking URLs already handed out.
"""

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from proxy.errors import Forbidden
from proxy.settings.errors import ConfigError

# Accepted in place of a signature when no key is set (imgproxy's and Supervisely's placeholders).
PLACEHOLDERS = ("q", "_", "insecure", "unsafe")
DEFAULT_SIGNATURE_SIZE = 32


@dataclass(frozen=True)
class SignatureConfig:
    """Key/salt pairs (raw bytes) and how many bytes of the digest a signature carries."""

    pairs: tuple[tuple[bytes, bytes], ...] = ()
    size: int = DEFAULT_SIGNATURE_SIZE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "SignatureConfig":
        """IMGPROXY_KEY and IMGPROXY_SALT (hex, comma-separated for several), IMGPROXY_SIGNATURE_SIZE."""
        keys = _hex_list(env, "IMGPROXY_KEY")
        salts = _hex_list(env, "IMGPROXY_SALT")
        if len(keys) != len(salts):
            raise ConfigError(f"IMGPROXY_KEY and IMGPROXY_SALT: {len(keys)} key(s) but {len(salts)} salt(s); "
                              "give them in pairs")
        size_text = (env.get("IMGPROXY_SIGNATURE_SIZE") or str(DEFAULT_SIGNATURE_SIZE)).strip()
        if not size_text.isdigit() or not 1 <= int(size_text) <= 32:
            raise ConfigError(f"IMGPROXY_SIGNATURE_SIZE={size_text!r}: expected a whole number from 1 to 32")
        return cls(tuple(zip(keys, salts, strict=True)), int(size_text))

    def masked(self) -> dict[str, str]:
        """What `preview-proxy config` shows: how many pairs, never the keys."""
        return {"IMGPROXY_KEY": f"{len(self.pairs)} key/salt pair(s)" if self.pairs else "(unsigned URLs)",
                "IMGPROXY_SIGNATURE_SIZE": str(self.size)}


def sign(key: bytes, salt: bytes, path: str, size: int = DEFAULT_SIGNATURE_SIZE) -> str:
    """The signature of `path` (everything after the signature segment, with its leading /)."""
    digest = hmac.new(key, salt + path.encode(), hashlib.sha256).digest()[:size]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(config: SignatureConfig, signature: str, path: str) -> None:
    """Raise Forbidden unless `signature` matches `path` under one of the pairs (or no key is set)."""
    if not config.pairs:
        return
    if not signature or signature in PLACEHOLDERS:
        raise Forbidden("missing signature")
    given = signature.encode()
    matched = False
    # Every pair is tried, match or not, and compare_digest takes the same time for equal-length
    # inputs, so the time taken tells nothing about the right signature.
    for key, salt in config.pairs:
        matched |= hmac.compare_digest(given, sign(key, salt, path, config.size).encode())
    if not matched:
        raise Forbidden("invalid signature")


def _hex_list(env: Mapping[str, str], name: str) -> list[bytes]:
    text = (env.get(name) or "").strip()
    if not text:
        return []
    try:
        values = [bytes.fromhex(part.strip()) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"{name}: expected hex values, comma-separated") from None
    if any(not value for value in values):
        raise ConfigError(f"{name}: an empty value in the list")
    return values
