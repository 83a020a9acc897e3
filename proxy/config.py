"""The root configuration: read once at start-up from the environment and an optional .env file.

proxy.settings reads each part (the tiers, rendering, conversions, the listen address) and
proxy.storage its own; this module composes them with the server's own settings. Nothing reads
os.environ after start-up.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from cache.config import CacheConfig
from previews.conversions.config import ConverterConfig
from proxy.settings.admin import AdminConfig, read_admin_config
from proxy.settings.compat.url_forms import UrlFormsConfig, read_url_forms_config
from proxy.settings.conversions import read_converter_config
from proxy.settings.cors import CorsConfig, read_cors_config
from proxy.settings.env_values import read_flag
from proxy.settings.errors import ConfigError
from proxy.settings.previews import PreviewsConfig
from proxy.settings.revalidation import RevalidationConfig, read_revalidation_config
from proxy.settings.tiers import read_cache_config
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
    # Hot preview requests answered before aiohttp (proxy/hot/lane.py); only with the access log off,
    # since the lane writes no access log line.
    hot_lane: bool = True


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
    # imgproxy's `local://` sources and path prefix (proxy/settings/compat/url_forms.py).
    url_forms: UrlFormsConfig = field(default_factory=UrlFormsConfig)

    @classmethod
    def from_env(cls, env: Mapping[str, str], host: str = "127.0.0.1", port: int = 8080,
                 workers: str | None = None) -> "Config":
        """Parse and validate every setting; raise ConfigError (one line, names the variable).

        `workers` is the --workers flag's text, if given; it wins over SERVER_WORKERS.
        """
        data_path = Path(env.get("DATA_PATH") or "./data").absolute()
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
        )
        storage = StorageConfig.from_env(env, data_path)
        previews = PreviewsConfig.from_env(env, processes=server.workers)
        return cls(data_path, server, storage, read_cache_config(env, data_path), previews,
                   LinksConfig.from_env(env, data_path, storage), read_converter_config(env),
                   cors=read_cors_config(env), admin=read_admin_config(env), revalidation=revalidation,
                   uploads=read_upload_config(env), url_forms=read_url_forms_config(env))

    def describe(self) -> dict[str, str]:
        """The effective configuration as `preview-proxy config` prints it, secrets masked."""
        described = {
            "DATA_PATH": str(self.data_path),
            "listen": f"{self.server.host}:{self.server.port}",
            "ORIGINALS_CACHE_CONTROL": self.server.originals_cache_control,
            "SENDFILE": str(self.server.sendfile).lower(),
            "ACCESS_LOG": str(self.server.access_log).lower(),
            "SERVER_WORKERS": str(self.server.workers),
            "HOT_LANE": str(self.server.hot_lane and not self.server.access_log).lower(),
        }
        described.update(self.storage.masked())
        described.update(self.previews.describe())
        described.update(self.converter.describe())
        if self.links is not None:
            described.update(self.links.masked())
        if self.cors is not None:
            described["CORS_ALLOW_ORIGINS"] = self.cors.describe()
            described["CORS_MAX_AGE"] = f"{self.cors.max_age_seconds}s"
        described["ADMIN_TOKENS"] = self.admin.describe()
        described.update(self.uploads.describe())
        described.update(self.revalidation.describe())
        described.update(self.url_forms.describe())
        described["CACHE_STALE_IF_ERROR"] = str(self.cache.stale_if_error).lower()
        for tier in self.cache.tiers():
            described[f"cache {tier.name}"] = (
                f"{tier.path} size={tier.size_limit} bytes, inactive={tier.idle_seconds:g}s, "
                f"kept stale={tier.stale_seconds:g}s")
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


def read_environment(env_file: Path | None) -> dict[str, str]:
    """The process environment over the .env file (`./.env` unless named); real variables win."""
    path = env_file or Path(".env")
    from_file = {k: v for k, v in dotenv_values(path).items() if v is not None} if path.is_file() else {}
    return {**from_file, **os.environ}
