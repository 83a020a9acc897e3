"""The peers of tests/benchmarks/peers.py, each started on loopback with its config generated into a temp dir.

- origin: a static nginx server block over `<storage>/<bucket>/<key>`, shared by the nginx preview
  cache (its upstream) and by preview-proxy's S3 provider in W4 (obstore's GET and HEAD work against
  it: nginx static ignores the auth headers and answers ETag, Last-Modified and Content-Length).
- nginx: the classic preview cache: a front server with `proxy_cache` in front of a resizer server
  (`image_filter resize <w> -`), which reads originals from the origin.
- thumbor: file loader, file result storage, `--processes <cores>`.
- preview-proxy: local disk for W1-W3 (originals read in place); the S3 provider on the origin for W4.

Nothing runs as a system service: each server is a process group of ours, stopped on the way out.
"""

import functools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from multidict import CIMultiDictProxy

from tests.benchmarks.harness import REPO, BenchmarkError, free_port, process_group, tree_peak_rss_bytes

NGINX = "/usr/sbin/nginx"
IMAGE_FILTER_MODULE = "/usr/lib/nginx/modules/ngx_http_image_filter_module.so"
THUMBOR_VENV = REPO / ".cache" / "thumbor-venv"
BUCKET = "bench"
QUALITY = 70
CORES = len(os.sched_getaffinity(0))
# preview-proxy's settings never inherited from the environment: its defaults run.
OWN_SETTINGS = ("ACCESS_LOG", "HOT_LANE", "LOG_LEVEL", "LOG_FORMAT", "SERVER_WORKERS")

# Shared by both nginx configs. Every path nginx would write is inside the temp dir, and as root the
# workers run as root too: they must read the photos and the large original under root-only dirs.
NGINX_MAIN = """
load_module {module};
daemon off;
master_process on;
worker_processes {workers};
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;  # wrk keeps 64 connections for 10 s; the default (1000) would reconnect
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{servers}
}}
"""

ORIGIN_SERVERS = """
    server {{
        listen 127.0.0.1:{port};
        root {storage};
    }}
"""

# The preview cache: the front caches what the resizer renders from the origin's originals, so a
# cached preview costs no render and a miss costs one (proxy_cache_lock: one fill per key; its
# timeout is raised from 5 s so slow renders under load are not done twice). /originals/ is the
# origin path of W4, cached the same way (a cold MISS streams to the client while it fills).
CACHE_SERVERS = """
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 32; }}
    upstream resizer {{ server 127.0.0.1:{resizer_port}; keepalive 32; }}
    proxy_cache_path {dir}/previews levels=1:2 keys_zone=previews:16m max_size=4g inactive=1h use_temp_path=off;
    proxy_cache_path {dir}/originals levels=1:2 keys_zone=originals:1m max_size=8g inactive=1h use_temp_path=off;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    server {{
        listen 127.0.0.1:{port};
        access_log {access_log};
        location = /health {{ return 200 "ok"; }}
        location /resize/ {{
            proxy_pass http://resizer;
            proxy_cache previews;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 60s;
            proxy_cache_valid 200 1h;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
        location /originals/ {{
            proxy_pass http://origin/;
            proxy_buffers 32 64k;
            proxy_busy_buffers_size 256k;
            proxy_cache originals;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 60s;
            proxy_cache_valid 200 1h;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
    server {{
        listen 127.0.0.1:{resizer_port};
        location ~ ^/resize/(?<width>\\d+)/(?<key>.+)$ {{
            proxy_pass http://origin/{bucket}/$key;
            image_filter resize $width -;
            image_filter_jpeg_quality {quality};
            image_filter_buffer 64m;  # the largest photo is 6.4 MB; the default (1 MB) answers 415
        }}
    }}
"""

THUMBOR_CONFIG = """
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {loader_root!r}
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = 'thumbor.result_storages.file_storage'
RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = {result_root!r}
RESULT_STORAGE_STORES_UNSAFE = True
ALLOW_UNSAFE_URL = True
QUALITY = {quality}
# Baseline JPEG, as nginx and preview-proxy write: progressive (thumbor's default) costs more to encode.
PROGRESSIVE_JPEG = False
MAX_WAIT_SECONDS_BEFORE_SERVER_SHUTDOWN = 0
MAX_WAIT_SECONDS_BEFORE_IO_SHUTDOWN = 0
"""


@dataclass
class Peer:
    """A running proxy: how to address it, how it says a response was a cache hit, and its processes."""

    name: str
    base_url: str
    pid: int
    preview_path: Callable[[int, str], str]
    cache_header: str | None = None  # None: the peer doesn't say (thumbor)
    access_log: Path | None = None  # the file its access lines go to, when they are on
    original_path: Callable[[str], str] | None = None
    result_dir: Path | None = None  # where a peer that reports no cache status stores results (thumbor)

    def preview_url(self, width: int, key: str) -> str:
        """The URL of `key`'s preview `width` px wide, aspect ratio kept, JPEG q70."""
        return self.base_url + self.preview_path(width, key)

    def cache_status(self, headers: CIMultiDictProxy[str]) -> str | None:
        """HIT, MISS, ... as the peer reports it, or None if it reports nothing."""
        return headers.get(self.cache_header) if self.cache_header else None

    def peak_rss_bytes(self) -> int:
        """VmHWM summed over the master and its workers."""
        return tree_peak_rss_bytes(self.pid)


def nginx_version() -> str:
    """`nginx/1.22.1`, from `nginx -v`."""
    return subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=True).stderr.strip().split(": ")[-1]


def thumbor_version() -> str:
    """thumbor's version, from its own venv (`Thumbor v7.8.0 (30-May-2026)`)."""
    return subprocess.run([str(THUMBOR_VENV / "bin" / "thumbor"), "--version"], capture_output=True, text=True,
                          check=True).stdout.split()[1].lstrip("v")


@contextmanager
def _nginx(directory: Path, port: int, workers: str, servers: str) -> Iterator[int]:
    """Run nginx with a generated config in `directory` until the block exits. Yields the master's pid."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_MAIN.format(module=IMAGE_FILTER_MODULE, workers=workers, dir=directory, servers=servers,
                                      user="user root;" if os.geteuid() == 0 else ""))
    argv = [NGINX, "-c", str(conf), "-p", str(directory), "-e", str(directory / "error.log")]
    ready = f"http://127.0.0.1:{port}/health" if "/health" in servers else f"http://127.0.0.1:{port}/"
    with process_group(argv, ready, log=directory / "stdout.log") as process:
        yield process.pid


@contextmanager
def origin(storage: Path, directory: Path) -> Iterator[str]:
    """The static origin over `storage`, on one worker (sendfile keeps it far from the limit). Yields its URL."""
    port = free_port()
    (storage / "index.html").write_text("origin\n")  # the readiness probe's `/`
    with _nginx(directory, port, "1", ORIGIN_SERVERS.format(port=port, storage=storage)):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def nginx_cache(origin_url: str, directory: Path, access_log: bool = True) -> Iterator[Peer]:
    """The nginx preview cache with an empty cache in `directory`, one worker per core. With `access_log`,
    the front server writes its access lines (nginx's default `combined` format, unbuffered, as a stock
    config does) to `directory`/access.log."""
    port, resizer_port = free_port(), free_port()
    log_file = directory / "access.log" if access_log else None
    servers = CACHE_SERVERS.format(port=port, resizer_port=resizer_port, origin_port=origin_url.rsplit(":", 1)[1],
                                   dir=directory, bucket=BUCKET, quality=QUALITY, access_log=log_file or "off")
    with _nginx(directory, port, "auto", servers) as pid:
        yield Peer("nginx", f"http://127.0.0.1:{port}", pid, lambda width, key: f"/resize/{width}/{key}",
                   cache_header="X-Cache-Status", original_path=lambda key: f"/originals/{BUCKET}/{key}",
                   access_log=log_file)


@contextmanager
def thumbor(storage: Path, directory: Path) -> Iterator[Peer]:
    """thumbor with an empty result storage in `directory`, one process per core."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "thumbor.conf"
    conf.write_text(THUMBOR_CONFIG.format(loader_root=str(storage / BUCKET), result_root=str(directory / "results"),
                                          quality=QUALITY))
    port = free_port()
    argv = [str(THUMBOR_VENV / "bin" / "thumbor"), "--ip", "127.0.0.1", "--port", str(port), "--conf", str(conf),
            "--processes", str(CORES), "--log-level", "error"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory)}
    with process_group(argv, f"http://127.0.0.1:{port}/healthcheck", env=env, log=directory / "thumbor.log") as proc:
        # WIDTHx0 keeps the aspect ratio, as nginx's `resize W -` and preview-proxy's rs:fit:W:0 do.
        yield Peer("thumbor", f"http://127.0.0.1:{port}", proc.pid, lambda width, key: f"/unsafe/{width}x0/{key}",
                   result_dir=directory / "results")


@functools.cache
def preview_proxy_workers() -> str:
    """How preview-proxy's default configuration runs its workers on this machine, as `config` shows it."""
    env = {name: value for name, value in os.environ.items() if name not in OWN_SETTINGS}
    lines = subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "config"], cwd=REPO, env=env,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    shown = [line for line in lines if line.startswith("SERVER_WORKERS = ")]
    if not shown:
        raise BenchmarkError("`preview-proxy config` printed no SERVER_WORKERS line")
    return shown[0].split(" = ", 1)[1].split("  #", 1)[0]


@contextmanager
def preview_proxy(data: Path, cache: Path, origin_url: str | None = None, access_log: bool = True) -> Iterator[Peer]:
    """preview-proxy with an empty cache at `cache`: originals from local disk under `data`, or with
    `origin_url`, from the origin through the S3 provider (path style; the origin ignores the keys).

    Its own settings are left at their defaults (no ACCESS_LOG, HOT_LANE, LOG_* or SERVER_WORKERS from the
    environment), so with `access_log` it runs as users run it: every answer's access line formatted and
    written to stderr, which goes to `cache`/server.log (a regular file, as nginx's access.log is). Without it,
    ACCESS_LOG=false."""
    cache.mkdir(parents=True, exist_ok=True)
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("STORAGE_", "CACHE_", "AWS_")) and name not in OWN_SETTINGS}
    env |= {"DATA_PATH": str(data), "CACHE_PATH": str(cache)}
    if not access_log:
        env["ACCESS_LOG"] = "false"
    if origin_url:
        env |= {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": origin_url, "STORAGE_ACCESS_KEY": "bench",
                "STORAGE_SECRET_KEY": "bench-secret", "STORAGE_REGION": "us-east-1"}
    port = free_port()
    argv = [sys.executable, "-m", "proxy.runtime.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log_file = cache / "server.log"
    with process_group(argv, f"http://127.0.0.1:{port}/healthz", env=env, log=log_file) as process:
        # rs:fit:W:0 is the equivalent of nginx's `resize W -` and thumbor's Wx0: width W, aspect kept.
        yield Peer("preview-proxy", f"http://127.0.0.1:{port}", process.pid,
                   lambda width, key: f"/previews/q/ext:jpeg/rs:fit:{width}:0/q:{QUALITY}/plain/{BUCKET}/{key}",
                   cache_header="X-Cache", original_path=lambda key: f"/{BUCKET}/{key}",
                   access_log=log_file if access_log else None)
