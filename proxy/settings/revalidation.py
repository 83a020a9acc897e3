"""Revalidation of cached originals (CACHE_REVALIDATE, the links file's `revalidate:`) and the
Cache-Control of originals that can change (LINKS_CACHE_CONTROL).

Durations read as everywhere else (proxy.settings.units); `0` or `off` turns revalidation off.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from proxy.settings.errors import ConfigError
from proxy.settings.units import DURATION_FORMS, parse_duration

# The main storage names its objects by content hash: they never change, so nothing is revalidated.
DEFAULT_MAIN_REVALIDATE = "off"
# Linked buckets belong to users, who overwrite files: checked a minute after they were last known good.
DEFAULT_LINK_REVALIDATE = "1m"
# A browser may keep a linked original as long as the proxy would before asking again.
DEFAULT_LINKS_CACHE_CONTROL = "public, max-age=60"
OFF_WORDS = ("0", "off")


@dataclass(frozen=True)
class RevalidationConfig:
    """How old a cached main-storage original may get before it is checked (0: never), and the
    Cache-Control sent for originals that can change."""

    main_revalidate: float = 0.0
    links_cache_control: str = DEFAULT_LINKS_CACHE_CONTROL

    def originals_cache_control(self, configured: str | None, immutable_default: str) -> str:
        """The main storage's Cache-Control: ORIGINALS_CACHE_CONTROL if set; else `immutable_default`
        when nothing is revalidated, or `public, max-age=<revalidate>` when the originals can change."""
        if configured:
            return configured
        if self.main_revalidate > 0:
            return f"public, max-age={int(self.main_revalidate)}"
        return immutable_default

    def describe(self) -> dict[str, str]:
        """The settings as `preview-proxy config` prints them."""
        return {"CACHE_REVALIDATE": describe_revalidate(self.main_revalidate),
                "LINKS_CACHE_CONTROL": self.links_cache_control}


def parse_revalidate(text: str) -> float:
    """Seconds of a revalidation period, 0 for `0`/`off`; ValueError for anything else."""
    compact = text.strip()
    if compact.lower() in OFF_WORDS:
        return 0.0
    return parse_duration(compact)


def describe_revalidate(seconds: float) -> str:
    """`off`, or the period in seconds."""
    return f"{seconds:g}s" if seconds > 0 else "off"


def read_revalidation_config(env: Mapping[str, str]) -> RevalidationConfig:
    """CACHE_REVALIDATE and LINKS_CACHE_CONTROL; ConfigError names the variable."""
    text = (env.get("CACHE_REVALIDATE") or "").strip() or DEFAULT_MAIN_REVALIDATE
    try:
        main = parse_revalidate(text)
    except ValueError:
        raise ConfigError(f"CACHE_REVALIDATE={text!r}: expected off, 0 or {DURATION_FORMS}") from None
    links = (env.get("LINKS_CACHE_CONTROL") or "").strip() or DEFAULT_LINKS_CACHE_CONTROL
    return RevalidationConfig(main, links)
