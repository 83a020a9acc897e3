"""Settings of the three disk tiers from CACHE_* variables, parsed once into cache's frozen CacheConfig."""

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from cache.config import CacheConfig, TierConfig
from proxy.settings.env_values import read_flag, read_folder
from proxy.settings.units import read_duration, read_size

# tier name -> (env prefix, default size, default idle time), as in the README's table.
TIER_DEFAULTS = {
    "previews": ("CACHE_PREVIEWS", "1g", "12h"),
    "storage": ("CACHE_STORAGE", "10g", "7d"),
    "image-converter": ("CACHE_IMAGE_CONVERTER", "10g", "7d"),
}



def read_cache_config(env: Mapping[str, str], data_path: Path) -> CacheConfig:
    """Read CACHE_PATH, the six CACHE_*_SIZE / CACHE_*_EXPIRES variables, and stale-if-error's two."""
    root = read_folder(env, "CACHE_PATH", data_path / "cache")
    tiers = {name: _tier_from_env(env, root, name) for name in TIER_DEFAULTS}
    stale_if_error = read_flag(env, "CACHE_STALE_IF_ERROR", default=True)
    grace = read_duration(env, "CACHE_STALE_GRACE", "1d")
    # Only originals are kept stale: a preview is re-rendered from its original, stale or not.
    storage = replace(tiers["storage"], stale_seconds=grace if stale_if_error else 0.0)
    return CacheConfig(tiers["previews"], storage, tiers["image-converter"], stale_if_error)


def _tier_from_env(env: Mapping[str, str], root: Path, name: str) -> TierConfig:
    prefix, default_size, default_idle = TIER_DEFAULTS[name]
    return TierConfig(name=name, path=root / name, size_limit=read_size(env, f"{prefix}_SIZE", default_size),
                      idle_seconds=read_duration(env, f"{prefix}_EXPIRES", default_idle))
