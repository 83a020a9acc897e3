"""Every environment variable preview-proxy reads, the prefixes it owns, and the names others set beside it.

A name that is looked up at start-up is known without being listed here (proxy.settings.environment.reading
records every look-up), but a setting read only in some configurations (CORS_MAX_AGE only with
CORS_ALLOW_ORIGINS, say) would then be unknown in the others: so every name is listed, and
tests/test_config_names.py fails when a name read anywhere in proxy/ is missing.
"""

import re

KNOWN_NAMES = frozenset((
    "DATA_PATH", "ORIGINALS_CACHE_CONTROL", "SENDFILE", "ACCESS_LOG", "HOT_LANE",
    "SERVER_HOST", "SERVER_PORT", "SERVER_WORKERS",
    "STORAGE_PROVIDER", "STORAGE_ENDPOINT", "STORAGE_PORT", "STORAGE_SECURE", "STORAGE_REGION",
    "STORAGE_ACCESS_KEY",
    "STORAGE_SECRET_KEY", "STORAGE_IAM_ROLE", "STORAGE_METADATA_ENDPOINT", "STORAGE_CA_FILE",
    "STORAGE_CREDENTIALS_PATH",
    "STORAGE_CONNECT_TIMEOUT", "STORAGE_READ_TIMEOUT", "STORAGE_RETRIES", "STORAGE_BREAKER_FAILURES",
    "STORAGE_BREAKER_COOLDOWN", "STORAGE_SPLICE",
    "STORAGE_MULTIPART_THRESHOLD", "STORAGE_PART_SIZE", "STORAGE_UPLOAD_CONCURRENCY",
    "REMOTE_LINKS_PATH", "LINKS_CACHE_CONTROL",
    "CACHE_PATH", "CACHE_PREVIEWS_SIZE", "CACHE_PREVIEWS_EXPIRES", "CACHE_STORAGE_SIZE", "CACHE_STORAGE_EXPIRES",
    "CACHE_IMAGE_CONVERTER_SIZE", "CACHE_IMAGE_CONVERTER_EXPIRES", "CACHE_STALE_IF_ERROR", "CACHE_STALE_GRACE",
    "CACHE_PREVIEWS_MEMORY", "CACHE_SOURCE_INFO_TTL", "CACHE_REVALIDATE",
    "PREVIEWS_CACHE_CONTROL", "RENDER_HEAP_KEEP", "RENDER_MEMORY_LIMIT", "RENDER_MEMORY_CONCURRENT",
    "IMGPROXY_BIND", "IMGPROXY_KEY", "IMGPROXY_SALT", "IMGPROXY_SIGNATURE_SIZE", "IMGPROXY_WORKERS",
    "IMGPROXY_REQUESTS_QUEUE_SIZE",
    "IMGPROXY_TIMEOUT", "IMGPROXY_AUTO_WEBP", "IMGPROXY_AUTO_AVIF", "IMGPROXY_PRESETS", "IMGPROXY_QUALITY",
    "IMGPROXY_FORMAT_QUALITY",
    "IMGPROXY_AUTO_ROTATE", "IMGPROXY_STRIP_METADATA", "IMGPROXY_STRIP_COLOR_PROFILE",
    "IMGPROXY_MAX_SRC_RESOLUTION",
    "IMGPROXY_MAX_SRC_FILE_SIZE", "IMGPROXY_MAX_RESULT_DIMENSION", "IMGPROXY_MAX_RESULT_RESOLUTION",
    "IMGPROXY_ALLOW_ORIGIN",
    "IMAGE_CONVERTER_AUTO_WEBP", "IMAGE_CONVERTER_QUALITY", "IMAGE_CONVERTER_VIDEO_TIMEOUT",
    "CORS_ALLOW_ORIGINS", "CORS_MAX_AGE",
    "ADMIN_TOKENS", "UPLOAD_TOKENS", "UPLOAD_SIGNING_KEYS", "SIGNING_KEYS",
    "PRIVATE_BUCKETS", "READ_TOKENS", "PRIVATE_CACHE_CONTROL",
    "IMGPROXY_LOCAL_FILESYSTEM_ROOT", "IMGPROXY_PATH_PREFIX", "IMGPROXY_TTL", "IIIF_BUCKETS",
    "LOG_FORMAT", "LOG_LEVEL", "IMGPROXY_LOG_FORMAT", "IMGPROXY_LOG_LEVEL", "METRICS_BIND",
))

# Names read under another name's heading: `preview-proxy config` shows them there, not on a line of their own.
SHOWN_UNDER = {
    "IMGPROXY_BIND": "SERVER_HOST",  # and SERVER_PORT: the address's two parts
    "IMGPROXY_ALLOW_ORIGIN": "CORS_ALLOW_ORIGINS",
    "STORAGE_PORT": "STORAGE_ENDPOINT",  # applied to the endpoint's URL
    "STORAGE_SECURE": "STORAGE_ENDPOINT",  # its scheme
    "IMGPROXY_SALT": "IMGPROXY_KEY",  # key/salt pairs
    "UPLOAD_SIGNING_KEYS": "SIGNING_KEYS",  # its first name, read when SIGNING_KEYS is unset
    "IMGPROXY_TTL": "PREVIEWS_CACHE_CONTROL",
    "IMGPROXY_LOG_FORMAT": "LOG_FORMAT",  # imgproxy's names for ours, read when ours are unset
    "IMGPROXY_LOG_LEVEL": "LOG_LEVEL",  # the max-age it sets when PREVIEWS_CACHE_CONTROL is not given
}

# A variable under one of these is taken for a setting of ours, so one we do not know is reported.
# A known name is a prefix too: ACCESS_LOG_FORMAT is a mistake, not somebody else's variable.
OWNED_PREFIXES = ("CACHE_", "STORAGE_", "IMGPROXY_", "SERVER_", "LOG_", "PREVIEWS_", "IMAGE_CONVERTER_",
                  "CONVERTER_", "CORS_", "ADMIN_", "UPLOAD_", "UPLOADS_", "METRICS_", "RENDER_", "LINKS_",
                  "REMOTE_LINKS_", "ORIGINALS_", "PRIVATE_", "SIGNING_", "READ_", "IIIF_")

# Names under our prefixes that other programs of a deployment set, and that are not reported. Supervisely's
# instance .env, which preview-proxy may be given whole, holds settings of its other services.
FOREIGN_NAMES = {
    "STORAGE_JUPYTER_SYNC": "Supervisely: syncs Jupyter notebooks to storage",
    "SERVER_ADDRESS": "Supervisely's SDK: the instance's address",
}

# Kubernetes service links (<SERVICE>_SERVICE_HOST, <SERVICE>_PORT_6379_TCP_ADDR, ...): a Service named
# `storage` would set STORAGE_SERVICE_HOST. `<SERVICE>_PORT=tcp://...` is told by its value.
SERVICE_LINK_NAME = re.compile(r"[A-Z0-9_]+_(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT_[0-9]+_(?:TCP|UDP|SCTP)"
                               r"(?:_PROTO|_PORT|_ADDR)?)")
SERVICE_LINK_PORT = re.compile(r"(?:tcp|udp|sctp)://[^\s]+:[0-9]+")
