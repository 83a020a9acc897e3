"""Settings of the three disk tiers, read once from CACHE_* variables."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cache.units import DURATION_FORMS, SIZE_FORMS, parse_duration, parse_size


class ConfigError(ValueError):
    """A setting that can't be used; the message names the variable and the accepted forms."""


@dataclass(frozen=True)
class TierConfig:
    """One tier: where it lives, how big it may grow, and how long an unread entry survives."""

    name: str
    path: Path
    size_limit: int
    idle_seconds: float


# tier name -> (env prefix, default size, default idle time), as in the README's table.
TIER_DEFAULTS = {
    "previews": ("CACHE_PREVIEWS", "1g", "12h"),
    "storage": ("CACHE_STORAGE", "10g", "7d"),
    "image-converter": ("CACHE_IMAGE_CONVERTER", "10g", "7d"),
}


@dataclass(frozen=True)
class CacheConfig:
    """The three tiers, under CACHE_PATH (default DATA_PATH/cache)."""

    previews: TierConfig
    storage: TierConfig
    image_converter: TierConfig

    @classmethod
    def from_env(cls, env: Mapping[str, str], data_path: Path) -> "CacheConfig":
        """Read CACHE_PATH and the six CACHE_*_SIZE / CACHE_*_EXPIRES variables."""
        root = Path(env.get("CACHE_PATH") or data_path / "cache")
        tiers = {name: _tier_from_env(env, root, name) for name in TIER_DEFAULTS}
        return cls(tiers["previews"], tiers["storage"], tiers["image-converter"])

    def tiers(self) -> tuple[TierConfig, ...]:
        """All tiers, in request order."""
        return (self.previews, self.storage, self.image_converter)


def _tier_from_env(env: Mapping[str, str], root: Path, name: str) -> TierConfig:
    prefix, default_size, default_idle = TIER_DEFAULTS[name]
    size_text = env.get(f"{prefix}_SIZE") or default_size
    idle_text = env.get(f"{prefix}_EXPIRES") or default_idle
    try:
        size = parse_size(size_text)
    except ValueError:
        raise ConfigError(f"{prefix}_SIZE={size_text!r}: expected {SIZE_FORMS}") from None
    try:
        idle = parse_duration(idle_text)
    except ValueError:
        raise ConfigError(f"{prefix}_EXPIRES={idle_text!r}: expected {DURATION_FORMS}") from None
    if size <= 0:
        raise ConfigError(f"{prefix}_SIZE={size_text!r}: must be above zero; expected {SIZE_FORMS}")
    if idle <= 0:
        raise ConfigError(f"{prefix}_EXPIRES={idle_text!r}: must be above zero; expected {DURATION_FORMS}")
    return TierConfig(name=name, path=root / name, size_limit=size, idle_seconds=idle)
