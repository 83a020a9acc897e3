"""Settings of the previews route: rendering, signatures, the render pool and the response headers.

Names follow imgproxy's where imgproxy has the setting (IMGPROXY_*); the cache tier's own bounds
are CACHE_PREVIEWS_SIZE and CACHE_PREVIEWS_EXPIRES (proxy.settings.tiers).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from previews.config import RenderConfig
from proxy.http.access.signature import SignatureConfig
from proxy.render.heap import DEFAULT_HEAP_KEEP
from proxy.render.memory import DEFAULT_TOGETHER, MIB, default_memory_limit
from proxy.runtime.cores import usable_cores
from proxy.settings.env_values import read_count, read_flag, read_number
from proxy.settings.errors import ConfigError
from proxy.settings.render import read_render_config
from proxy.settings.units import read_duration, read_size

DEFAULT_PREVIEWS_CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class PreviewsConfig:
    """Everything the previews route needs besides the tiers."""

    render: RenderConfig = field(default_factory=RenderConfig)
    signature: SignatureConfig = field(default_factory=SignatureConfig)
    # The cores within the cgroup's CPU limit, as SERVER_WORKERS=auto counts them: a container's `--cpus`.
    workers: int = field(default_factory=usable_cores)
    queue_size: int = 256
    timeout: float = 10.0
    auto_webp: bool = False
    auto_avif: bool = False
    cache_control: str = DEFAULT_PREVIEWS_CACHE_CONTROL
    memory_bytes: int = 64 * 1024 * 1024
    memory_entry_max: int = 256 * 1024
    source_info_ttl: float = 10.0
    # Freed heap each process keeps for the next render instead of handing it back (proxy.render.heap).
    heap_keep: int = DEFAULT_HEAP_KEEP
    # Bytes the renders and conversions of one process may hold at once, by their estimates.
    memory_limit: int = field(default_factory=lambda: default_memory_limit(1))
    # Bytes they hold together, by their estimates: one over it runs alone (0: up to memory_limit).
    memory_concurrent: int = DEFAULT_TOGETHER

    @classmethod
    def from_env(cls, env: Mapping[str, str], processes: int = 1) -> "PreviewsConfig":
        """Read and check every setting; ConfigError names the variable.

        IMGPROXY_WORKERS counts the renders the server runs at once (by default one per core), as
        imgproxy's counts its one process's. Each of the `processes` serving has that many render
        threads, and they take turns on a count of that many cores that every process shares
        (proxy.render.shared_bounds): a process whose clients keep it busy uses the cores the others
        leave idle, while more renders than cores would only share them, each slower and each holding
        its images longer (small renders get a lane of their own when large ones hold every core,
        proxy.render.pool).
        """
        workers = read_count(env, "IMGPROXY_WORKERS", usable_cores())
        if workers < 1:
            raise ConfigError("IMGPROXY_WORKERS=0: expected 1 or more")
        memory_text = (env.get("CACHE_PREVIEWS_MEMORY") or "").strip()
        limit_text = (env.get("RENDER_MEMORY_LIMIT") or "").strip()
        concurrent_text = (env.get("RENDER_MEMORY_CONCURRENT") or "").strip()
        ttl_text = (env.get("CACHE_SOURCE_INFO_TTL") or "").strip()
        return cls(
            render=read_render_config(env),
            signature=SignatureConfig.from_env(env),
            workers=workers,
            queue_size=read_count(env, "IMGPROXY_REQUESTS_QUEUE_SIZE", cls.queue_size),
            timeout=read_number(env, "IMGPROXY_TIMEOUT", cls.timeout, 0.1, 3600),
            auto_webp=read_flag(env, "IMGPROXY_AUTO_WEBP", default=False),
            auto_avif=read_flag(env, "IMGPROXY_AUTO_AVIF", default=False),
            cache_control=env.get("PREVIEWS_CACHE_CONTROL") or _ttl_cache_control(env),
            memory_bytes=0 if memory_text == "0" else read_size(env, "CACHE_PREVIEWS_MEMORY", "64m"),
            memory_limit=(read_size(env, "RENDER_MEMORY_LIMIT", limit_text) if limit_text
                          else default_memory_limit(processes)),
            memory_concurrent=0 if concurrent_text == "0"
            else read_size(env, "RENDER_MEMORY_CONCURRENT", f"{DEFAULT_TOGETHER // MIB}m"),
            source_info_ttl=0.0 if ttl_text in ("0", "0s") else read_duration(env, "CACHE_SOURCE_INFO_TTL", "10s"),
            heap_keep=0 if (env.get("RENDER_HEAP_KEEP") or "").strip() == "0"
            else read_size(env, "RENDER_HEAP_KEEP", f"{DEFAULT_HEAP_KEEP // MIB}m"),
        )

    def describe(self) -> dict[str, str]:
        """For `preview-proxy config`; signature keys are masked."""
        return {
            **self.signature.masked(),
            "IMGPROXY_WORKERS": str(self.workers),
            "IMGPROXY_REQUESTS_QUEUE_SIZE": str(self.queue_size),
            "IMGPROXY_TIMEOUT": f"{self.timeout:g}s",
            "IMGPROXY_MAX_SRC_RESOLUTION": f"{self.render.max_src_resolution / 1e6:g} MP",
            "IMGPROXY_MAX_SRC_FILE_SIZE": str(self.render.max_src_file_size or "unlimited"),
            "IMGPROXY_MAX_RESULT_DIMENSION": str(self.render.max_result_dimension or "unlimited"),
            "IMGPROXY_MAX_RESULT_RESOLUTION": f"{self.render.max_result_resolution / 1e6:g} MP",
            "RENDER_MEMORY_LIMIT": str(self.memory_limit),
            "RENDER_HEAP_KEEP": str(self.heap_keep) if self.heap_keep else "0 (the C library's own thresholds)",
            "RENDER_MEMORY_CONCURRENT": str(self.memory_concurrent or self.memory_limit),
            "IMGPROXY_AUTO_WEBP": str(self.auto_webp).lower(),
            "IMGPROXY_AUTO_AVIF": str(self.auto_avif).lower(),
            "IMGPROXY_PRESETS": ", ".join(self.render.presets) or "(none)",
            "IMGPROXY_QUALITY": str(self.render.quality),
            "IMGPROXY_FORMAT_QUALITY": ",".join(f"{name}={quality}"
                                                for name, quality in sorted(self.render.format_quality.items())),
            # As the default preset leaves them: a preset may turn one off.
            "IMGPROXY_AUTO_ROTATE": str(self.render.defaults.auto_rotate).lower(),
            "IMGPROXY_STRIP_METADATA": str(self.render.defaults.strip_metadata).lower(),
            "IMGPROXY_STRIP_COLOR_PROFILE": str(self.render.defaults.strip_color_profile).lower(),
            "PREVIEWS_CACHE_CONTROL": self.cache_control,
            "CACHE_PREVIEWS_MEMORY": str(self.memory_bytes),
            "CACHE_SOURCE_INFO_TTL": f"{self.source_info_ttl:g}s",
        }


def _ttl_cache_control(env: Mapping[str, str]) -> str:
    """imgproxy's IMGPROXY_TTL (seconds) as the previews' max-age, when PREVIEWS_CACHE_CONTROL is not given.

    imgproxy sends `max-age=<ttl>, public` for it, without `immutable`: a TTL is a promise of freshness
    for that long only. Unset, the default stays a year and `immutable` (the URL names the render).
    """
    if not (env.get("IMGPROXY_TTL") or "").strip():
        return DEFAULT_PREVIEWS_CACHE_CONTROL
    return f"public, max-age={read_count(env, 'IMGPROXY_TTL', 0)}"
