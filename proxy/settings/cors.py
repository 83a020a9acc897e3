"""CORS for pages on other origins: CORS_ALLOW_ORIGINS (imgproxy's IMGPROXY_ALLOW_ORIGIN as an alias)
and CORS_MAX_AGE. Unset, no CORS header is sent and OPTIONS is refused as before."""

import re
from collections.abc import Mapping
from dataclasses import dataclass

from proxy.settings.errors import ConfigError
from proxy.settings.units import read_duration

ORIGINS_FORMS = "'*' or a comma-separated list of origins such as https://app.example.com or http://127.0.0.1:8080"
# An origin as a browser serialises it (RFC 6454 section 6.2): scheme://host[:port], nothing after.
_ORIGIN = re.compile(r"([a-z][a-z0-9+.-]*)://(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:([0-9]{1,5}))?")
# Browsers leave a scheme's default port out of the Origin they send, so a configured one must go too.
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# Chromium keeps a preflight for at most 2 hours (Firefox 24), so a longer default would change nothing.
DEFAULT_MAX_AGE = "2h"


@dataclass(frozen=True)
class CorsConfig:
    """Which origins may read the answers (`any_origin`, or exactly those in `origins`) and how long a
    browser may keep a preflight's answer."""

    origins: frozenset[str] = frozenset()
    any_origin: bool = False
    max_age_seconds: int = 7200

    def describe(self) -> str:
        """The setting as `preview-proxy config` prints it."""
        return "*" if self.any_origin else ",".join(sorted(self.origins))


def read_cors_config(env: Mapping[str, str]) -> CorsConfig | None:
    """The CORS settings, or None when neither variable is set; ConfigError names the variable read."""
    name = "CORS_ALLOW_ORIGINS" if (env.get("CORS_ALLOW_ORIGINS") or "").strip() else "IMGPROXY_ALLOW_ORIGIN"
    text = (env.get(name) or "").strip()
    if not text:
        return None
    max_age = int(read_duration(env, "CORS_MAX_AGE", DEFAULT_MAX_AGE))
    items = [item.strip() for item in text.split(",") if item.strip()]
    if items == ["*"]:
        return CorsConfig(any_origin=True, max_age_seconds=max_age)
    if not items or "*" in items:
        raise ConfigError(f"{name}={text!r}: expected {ORIGINS_FORMS} ('*' stands alone)")
    return CorsConfig(frozenset(_origin(name, item) for item in items), max_age_seconds=max_age)


def _origin(name: str, item: str) -> str:
    """`item` as browsers send it in Origin (lowercase, no default port), or ConfigError."""
    lowered = item.lower()
    match = _ORIGIN.fullmatch(lowered)
    if match is None or (match[5] is not None and not 0 < int(match[5]) < 65536):
        raise ConfigError(f"{name}: {item!r} is not an origin (scheme://host[:port], no path); "
                          f"expected {ORIGINS_FORMS}")
    scheme, host, port = match[1], match[2], match[5]
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{int(port)}"
