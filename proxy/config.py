"""The root configuration: read once at start-up from the environment and an optional .env file.

proxy.settings reads each part (the tiers, rendering, conversions, the listen address) and
proxy.storage its own; this module composes them with the server's own settings. Nothing reads
os.environ after start-up.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from cache.config import CacheConfig
from previews.conversions.config import ConverterConfig
from proxy.runtime.cores import usable_cores
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
WORKERS_AUTO = "auto"  # SERVER_WORKERS's default: one worker per two usable cores (read_workers)


@dataclass(frozen=True)
class ServerConfig:
    """The HTTP face: where to listen and which caching headers to send."""

    host: str = "127.0.0.1"
    port: int = 8080
    # Supervisely names originals by content hash, so a browser may keep them for a year.
    originals_cache_control: str = DEFAULT_ORIGINALS_CACHE_CONTROL
    sendfile: bool = True
    access_log: bool = True
    # Worker processes on one port (SO_REUSEPORT).
    workers: int = 1
    # Whether a supervisor runs the workers and the render host (proxy.runtime.supervisor): always with
    # several workers; with one, when SERVER_WORKERS is `auto` on two or more usable cores. Otherwise the
    # one worker serves in the process itself.
    supervised: bool = False
    workers_described: str = ""  # how `preview-proxy config` shows SERVER_WORKERS ("" : the count)
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
        workers_setting = read_workers(env, workers)
        server = ServerConfig(
            host=host,
            port=port,
            # Not `immutable` when CACHE_REVALIDATE says the main storage's objects can change.
            originals_cache_control=revalidation.originals_cache_control(env.get("ORIGINALS_CACHE_CONTROL"),
                                                                         DEFAULT_ORIGINALS_CACHE_CONTROL),
            sendfile=read_flag(env, "SENDFILE", default=True),
            access_log=read_flag(env, "ACCESS_LOG", default=True),
            workers=workers_setting.number,
            supervised=workers_setting.supervised,
            workers_described=workers_setting.described,
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
            "SERVER_WORKERS": self.server.workers_described or str(self.server.workers),
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


class WorkersSetting(NamedTuple):
    """How many workers serve, whether a supervisor runs them (with the render host), and how
    `preview-proxy config` shows it ("": the count)."""

    number: int
    supervised: bool
    described: str


def read_workers(env: Mapping[str, str], flag: str | None,
                 cores: Callable[[], int] = usable_cores) -> WorkersSetting:
    """The workers from --workers, else SERVER_WORKERS, else `auto`.

    `auto` (the default): one worker per two usable cores (proxy.runtime.cores), at least one, under a
    supervisor with the render host from two cores on. Measured on two cores, one worker beside the
    render host serves the Zipf mix 10-15% faster than two workers, at three quarters of their memory:
    every worker keeps its own decodes, hot answers and renders in flight, so with two a photo's sizes
    are often decoded twice and a popular preview is looked for across processes; the render host
    keeps the large renders off the worker's event loop. A number is that many workers: 1 serves in
    one process, with no supervisor and no render host.
    """
    name, text = ("--workers", flag) if flag is not None else ("SERVER_WORKERS", env.get("SERVER_WORKERS") or "")
    text = text.strip()
    if (not text and flag is None) or text.lower() == WORKERS_AUTO:
        usable = cores()
        count = max(1, usable // 2)
        shape = f"{count} worker{'s' if count > 1 else ''} and the render host" if usable >= 2 else "one process"
        return WorkersSetting(count, usable >= 2, f"auto: {shape}, for {usable} usable core{'s' if usable > 1 else ''}")
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name}={text!r}: expected {WORKERS_AUTO} or a whole number, 1 or more")
    return WorkersSetting(int(text), int(text) > 1, "")
