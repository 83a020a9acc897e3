"""The root configuration: read once at start-up from the environment and an optional .env file.

proxy.settings reads each part (the tiers, rendering, conversions, the listen address) and
proxy.storage its own; this module composes them with the server's own settings. Nothing reads
os.environ after start-up.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cache.config import CacheConfig
from previews.conversions.config import ConverterConfig
from proxy.settings.access.private_buckets import PrivateBucketsConfig, read_private_buckets_config
from proxy.settings.admin import AdminConfig, read_admin_config
from proxy.settings.compat.iiif import IiifConfig, read_iiif_config
from proxy.settings.compat.url_forms import UrlFormsConfig, read_url_forms_config
from proxy.settings.conversions import read_converter_config
from proxy.settings.cors import CorsConfig, read_cors_config
from proxy.settings.env_values import read_flag, read_folder
from proxy.settings.environment.reading import read_environment as read_environment  # where callers find it
from proxy.settings.errors import ConfigError
from proxy.settings.listen_address import read_metrics_bind
from proxy.settings.operations.logs import LogConfig, read_log_config
from proxy.settings.previews import PreviewsConfig
from proxy.settings.revalidation import RevalidationConfig, read_revalidation_config
from proxy.settings.tiers import TIER_DEFAULTS, read_cache_config
from proxy.settings.uploads import UploadConfig, read_upload_config
from proxy.storage.config import StorageConfig
from proxy.storage.links.config import LinksConfig

DEFAULT_ORIGINALS_CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class ServerConfig:
    """The HTTP face: where to listen and which caching headers to send."""

    host: str = "127.0.0.1"
    port: int = 8080
    # Supervisely names originals by content hash, so a browser may keep them for a year.
    originals_cache_control: str = DEFAULT_ORIGINALS_CACHE_CONTROL
    sendfile: bool = True
    access_log: bool = True
    # Worker processes on one port (SO_REUSEPORT). 1 serves in the process itself, with no supervisor.
    workers: int = 1
    # Hot preview requests answered before aiohttp (proxy/hot/lane.py), which writes their access lines too.
    hot_lane: bool = True
    # Where /metrics is answered instead of the main port (METRICS_BIND); None: on the main port.
    metrics_bind: tuple[str, int] | None = None


@dataclass(frozen=True)
class Config:
    """Everything the composition root needs, frozen."""

    data_path: Path
    server: ServerConfig
    storage: StorageConfig
    cache: CacheConfig
    previews: PreviewsConfig = field(default_factory=PreviewsConfig)
    links: LinksConfig | None = None  # None: no links file is read (tests that build configs in code)
    converter: ConverterConfig = field(default_factory=ConverterConfig)
    cors: CorsConfig | None = None  # None: no CORS header, OPTIONS refused (proxy/http/cors.py)
    admin: AdminConfig = field(default_factory=AdminConfig)  # no tokens: PURGE refused
    uploads: UploadConfig = field(default_factory=UploadConfig)  # no tokens or keys: PUT refused
    # Cached originals that can change: checked in the background past a period (proxy/tiers/revalidation/).
    revalidation: RevalidationConfig = field(default_factory=RevalidationConfig)
    logs: LogConfig = field(default_factory=LogConfig)  # LOG_FORMAT and LOG_LEVEL
    # Buckets read only by presigned URL or token, previewed only by signed URL (proxy/http/access/private_buckets.py).
    private_buckets: PrivateBucketsConfig = field(default_factory=PrivateBucketsConfig)
    # imgproxy's `local://` sources and path prefix (proxy/settings/compat/url_forms.py).
    url_forms: UrlFormsConfig = field(default_factory=UrlFormsConfig)
    # The buckets the IIIF Image API routes may serve (proxy/settings/compat/iiif.py); none by default.
    iiif: IiifConfig = field(default_factory=IiifConfig)

    @classmethod
    def from_env(cls, env: Mapping[str, str], host: str = "127.0.0.1", port: int = 8080,
                 workers: str | None = None) -> "Config":
        """Parse and validate every setting; raise ConfigError (one line, names the variable).

        `workers` is the --workers flag's text, if given; it wins over SERVER_WORKERS.
        """
        data_path = read_folder(env, "DATA_PATH", "./data")
        revalidation = read_revalidation_config(env)
        server = ServerConfig(
            host=host,
            port=port,
            # Not `immutable` when CACHE_REVALIDATE says the main storage's objects can change.
            originals_cache_control=revalidation.originals_cache_control(env.get("ORIGINALS_CACHE_CONTROL"),
                                                                         DEFAULT_ORIGINALS_CACHE_CONTROL),
            sendfile=read_flag(env, "SENDFILE", default=True),
            access_log=read_flag(env, "ACCESS_LOG", default=True),
            workers=read_workers(env, workers),
            hot_lane=read_flag(env, "HOT_LANE", default=True),
            metrics_bind=read_metrics_bind(env, (host, port)),
        )
        storage = StorageConfig.from_env(env, data_path)
        previews = PreviewsConfig.from_env(env, processes=server.workers)
        admin, uploads = read_admin_config(env), read_upload_config(env)
        private_buckets = read_private_buckets_config(env, bool(admin.tokens or uploads.enabled))
        return cls(data_path, server, storage, read_cache_config(env, data_path), previews,
                   LinksConfig.from_env(env, data_path, storage), read_converter_config(env),
                   cors=read_cors_config(env), admin=admin, revalidation=revalidation,
                   uploads=uploads, private_buckets=private_buckets, logs=read_log_config(env),
                   url_forms=read_url_forms_config(env), iiif=read_iiif_config(env))

    def describe(self) -> dict[str, str]:
        """The effective configuration as `preview-proxy config` prints it, secrets masked."""
        described = {
            "DATA_PATH": str(self.data_path),
            "SERVER_HOST": self.server.host,
            "SERVER_PORT": str(self.server.port),
            "ORIGINALS_CACHE_CONTROL": self.server.originals_cache_control,
            "SENDFILE": str(self.server.sendfile).lower(),
            "ACCESS_LOG": str(self.server.access_log).lower(),
            "SERVER_WORKERS": str(self.server.workers),
            "HOT_LANE": str(self.server.hot_lane).lower(),
            "METRICS_BIND": (f"{self.server.metrics_bind[0]}:{self.server.metrics_bind[1]}"
                             if self.server.metrics_bind else "(the main port)"),
        }
        described.update(self.logs.describe())
        described.update(self.storage.masked())
        described.update(self.previews.describe())
        described.update(self.converter.describe())
        if self.links is not None:
            described.update(self.links.masked())
        described["CORS_ALLOW_ORIGINS"] = self.cors.describe() if self.cors else "(none: no CORS headers)"
        described["CORS_MAX_AGE"] = f"{self.cors.max_age_seconds}s" if self.cors else "(no CORS)"
        described["ADMIN_TOKENS"] = self.admin.describe()
        described.update(self.uploads.describe())
        described.update(self.private_buckets.describe())
        described.update(self.revalidation.describe())
        described.update(self.url_forms.describe())
        described.update(self.iiif.describe())
        described["CACHE_STALE_IF_ERROR"] = str(self.cache.stale_if_error).lower()
        described["CACHE_STALE_GRACE"] = f"{self.cache.storage.stale_seconds:g}s"
        described["CACHE_PATH"] = str(self.cache.previews.path.parent)
        for tier in self.cache.tiers():
            prefix = TIER_DEFAULTS[tier.name][0]
            described[f"{prefix}_SIZE"] = str(tier.size_limit)
            described[f"{prefix}_EXPIRES"] = f"{tier.idle_seconds:g}s"
        return described


def read_workers(env: Mapping[str, str], flag: str | None) -> int:
    """The number of worker processes: --workers, else SERVER_WORKERS, else the cores this process may use."""
    name, text = ("--workers", flag) if flag is not None else ("SERVER_WORKERS", env.get("SERVER_WORKERS") or "")
    text = text.strip()
    if not text and flag is None:
        return len(os.sched_getaffinity(0))  # not os.cpu_count(): a container or taskset may allow fewer
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name}={text!r}: expected a whole number, 1 or more")
    return int(text)
