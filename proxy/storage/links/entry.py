"""One entry of the links file, checked field by field: what it names and the provider it builds.

Each check raises LinkFieldError naming the field; the caller adds the file and the entry. A
message never quotes a secret (`secret_key`, the text of `credentials_path`), only says what is
wrong with it.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from proxy.settings.errors import ConfigError
from proxy.settings.revalidation import DEFAULT_LINK_REVALIDATE, parse_revalidate
from proxy.settings.units import DURATION_FORMS
from proxy.storage.cloud.azure import CONTAINER_NAME
from proxy.storage.cloud.credentials import azure_problem, check_service_account, read_service_account
from proxy.storage.cloud.gcs import BUCKET_NAME as GCS_BUCKET_NAME
from proxy.storage.config import LOCAL_DISK, StorageConfig
from proxy.storage.links.errors import LinkFieldError

# The links file's provider names, and the STORAGE_PROVIDER each builds (fs: local disk, in place).
LINK_PROVIDERS = {"minio": "minio", "azure": "azure", "google": "google", "fs": LOCAL_DISK}
FIELDS = ("provider", "endpoint", "access_key", "secret_key", "iam_role", "region", "credentials_path",
          "buckets", "path", "revalidate")
# Fields each provider may carry; any other is refused, so a typo never passes silently. An fs
# entry's files are read in place, never cached, so they are always current: it has no `revalidate`.
ALLOWED = {
    "minio": {"provider", "endpoint", "access_key", "secret_key", "iam_role", "region", "buckets", "revalidate"},
    "azure": {"provider", "endpoint", "access_key", "secret_key", "buckets", "revalidate"},
    "google": {"provider", "endpoint", "credentials_path", "buckets", "revalidate"},
    "fs": {"provider", "path"},
}
# Names that may follow a link scheme: a bucket, a container, or an fs entry's own name (its storage id).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


@dataclass(frozen=True)
class LinkEntry:
    """A checked entry: its name, its provider kind, the buckets it opens, and the provider's settings."""

    name: str
    provider: str  # minio | azure | google | fs
    buckets: tuple[str, ...]  # for fs: the entry's own name, its storage id
    storage: StorageConfig = field(repr=False)  # holds the secret key: never in a repr
    # Seconds a cached original is served before it is checked against the bucket again (0: never).
    revalidate: float = field(default_factory=lambda: parse_revalidate(DEFAULT_LINK_REVALIDATE))


def parse_entry(name: Any, raw: Any, base: StorageConfig) -> LinkEntry:
    """Check one entry and build its StorageConfig on `base` (timeouts, retries, metadata endpoint, CA)."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise LinkFieldError("name", "expected a name of letters, digits, '.', '_' and '-'")
    if not isinstance(raw, Mapping):
        raise LinkFieldError("provider", "expected a mapping of fields ({provider: ..., ...})")
    provider = _text(raw, "provider")
    if provider not in LINK_PROVIDERS:
        raise LinkFieldError("provider", f"expected one of {', '.join(LINK_PROVIDERS)}")
    for key in raw:
        if key not in ALLOWED[provider]:
            known = key in FIELDS
            raise LinkFieldError(str(key), f"not used by provider {provider}" if known
                                 else f"unknown field (expected some of {', '.join(FIELDS)})")
    storage = replace(base, provider=LINK_PROVIDERS[provider], endpoint=_endpoint(raw), access_key=None,
                      secret_key=None, iam_role=None, credentials_path=None, credentials=None)
    if provider == "fs":
        return LinkEntry(name, provider, (name,), replace(storage, root=_folder(raw)))
    if provider == "minio":
        storage = _minio(raw, storage)
        buckets = _buckets(raw, NAME, "a bucket name")
    elif provider == "azure":
        storage = _azure(raw, storage)
        buckets = _buckets(raw, CONTAINER_NAME, "a container name (3-63 lowercase letters, digits, '-')")
    else:
        storage = _google(raw, storage)
        buckets = _buckets(raw, GCS_BUCKET_NAME, "a bucket name (3-222 lowercase letters, digits, '-_.')")
    return LinkEntry(name, provider, buckets, storage, _revalidate(raw))


def _minio(raw: Mapping[str, Any], storage: StorageConfig) -> StorageConfig:
    access_key, secret_key, iam_role = _text(raw, "access_key"), _text(raw, "secret_key"), _text(raw, "iam_role")
    if bool(access_key) != bool(secret_key):
        missing = "secret_key" if access_key else "access_key"
        raise LinkFieldError(missing, "required when the other key of the pair is set")
    if not access_key and not iam_role:
        raise LinkFieldError("access_key", "required (with secret_key) unless iam_role is set")
    return replace(storage, access_key=access_key, secret_key=secret_key, iam_role=iam_role,
                   region=_text(raw, "region") or "us-east-1")


def _azure(raw: Mapping[str, Any], storage: StorageConfig) -> StorageConfig:
    account, secret = _text(raw, "access_key"), _text(raw, "secret_key")
    problem = azure_problem(account, secret)  # the same check as STORAGE_PROVIDER=azure's
    if problem is not None:
        raise LinkFieldError("secret_key" if problem.part == "key" else "access_key", problem.reason)
    return replace(storage, access_key=account, secret_key=secret)


def _google(raw: Mapping[str, Any], storage: StorageConfig) -> StorageConfig:
    text = _text(raw, "credentials_path")
    if not text:
        raise LinkFieldError("credentials_path", "required: a service-account JSON file")
    path, label = Path(text), repr(text)
    try:
        credentials = read_service_account(path, label)
        check_service_account(credentials, path, label)
    except ConfigError as error:  # its message names the path, never the file's text
        raise LinkFieldError("credentials_path", str(error)) from None
    return replace(storage, credentials_path=path, credentials=credentials,
                   endpoint=storage.endpoint or "https://storage.googleapis.com")


def _folder(raw: Mapping[str, Any]) -> Path:
    text = _text(raw, "path")
    if not text or not Path(text).is_absolute():
        raise LinkFieldError("path", "expected an absolute folder path")
    if not Path(text).is_dir():
        raise LinkFieldError("path", f"{text!r} is not a folder")
    return Path(text)


def _buckets(raw: Mapping[str, Any], pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
    buckets = raw.get("buckets")
    if not isinstance(buckets, list) or not buckets:
        raise LinkFieldError("buckets", "expected a non-empty list of bucket names")
    for number, bucket in enumerate(buckets, start=1):
        if not isinstance(bucket, str) or not pattern.fullmatch(bucket):
            # By its place: what is not a bucket name may be a secret pasted into the wrong field.
            raise LinkFieldError("buckets", f"item #{number}: expected {what}")
    return tuple(dict.fromkeys(buckets))


def _revalidate(raw: Mapping[str, Any]) -> float:
    """`revalidate:` in seconds: a duration (`30s`, `5m`), a number of seconds, or 0/`off` for never."""
    value = raw.get("revalidate", DEFAULT_LINK_REVALIDATE)
    if value is False:  # YAML reads a bare `off` as false
        return 0.0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return float(value)
    try:
        if isinstance(value, str):
            return parse_revalidate(value)
    except ValueError:
        pass
    raise LinkFieldError("revalidate", f"expected off, 0 or {DURATION_FORMS}")


def _endpoint(raw: Mapping[str, Any]) -> str | None:
    text = _text(raw, "endpoint")
    if not text:
        return None
    endpoint = text.rstrip("/") if "://" in text else f"https://{text.rstrip('/')}"
    parts = urlsplit(endpoint)
    # The value is not quoted: a URL may carry user:password@.
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None
            or parts.query or parts.fragment):
        raise LinkFieldError("endpoint", "expected host[:port] or http(s)://host[:port][/path], with no user:password@")
    return endpoint


def _text(raw: Mapping[str, Any], field: str) -> str | None:
    """A string field, or None when absent or empty. Numbers and booleans are refused, not coerced."""
    value = raw.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        # YAML reads `on`, `0123` or `1e3` as other types; the value is not shown (it may be a secret).
        raise LinkFieldError(field, "expected a string (quote it in YAML)")
    return value.strip()
