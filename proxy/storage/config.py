"""Storage settings in Supervisely's STORAGE_* names, parsed once into a frozen dataclass."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from proxy.settings.env_values import read_count, read_flag
from proxy.settings.errors import ConfigError
from proxy.settings.units import read_duration
from proxy.storage.cloud.credentials import (
    azure_secret_pieces,
    check_azure,
    check_service_account,
    read_service_account,
    service_account_pieces,
)

# Supervisely's name for its embedded storage is `http`: it means local disk, DATA_PATH/storage. The
# value is kept for compatibility; the code says what it is.
LOCAL_DISK = "http"
PROVIDERS = (LOCAL_DISK, "minio", "azure", "google")


@dataclass(frozen=True)
class StorageConfig:
    """Which backend holds the originals, and how to reach it."""

    provider: str
    root: Path
    endpoint: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None
    iam_role: str | None = None
    metadata_endpoint: str | None = None
    ca_file: Path | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retries: int = 2
    # The circuit breaker: this many failures in a row pause requests for the cool-down (0: off).
    breaker_failures: int = 5
    breaker_cooldown: float = 10.0
    credentials_path: Path | None = None
    # Whole objects from an http:// S3 endpoint by a presigned GET spliced into the storage tier
    # (proxy.storage.cloud.spliced_get); off: through obstore, as every other read.
    splice: bool = True
    # The text of credentials_path, read once at start-up; never printed (repr=False).
    credentials: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], data_path: Path) -> "StorageConfig":
        """Read STORAGE_* variables; raise ConfigError naming the first bad one."""
        provider = (env.get("STORAGE_PROVIDER") or LOCAL_DISK).strip().lower()
        if provider not in PROVIDERS:
            raise ConfigError(f"STORAGE_PROVIDER={provider!r}: expected one of {', '.join(PROVIDERS)}")
        credentials_path, credentials = _credentials(env, provider)
        config = cls(
            provider=provider,
            root=data_path / "storage",
            endpoint=_endpoint(env),
            region=env.get("STORAGE_REGION") or "us-east-1",
            access_key=env.get("STORAGE_ACCESS_KEY") or None,
            secret_key=env.get("STORAGE_SECRET_KEY") or None,
            iam_role=env.get("STORAGE_IAM_ROLE") or None,
            metadata_endpoint=env.get("STORAGE_METADATA_ENDPOINT") or None,
            ca_file=Path(env["STORAGE_CA_FILE"]) if env.get("STORAGE_CA_FILE") else None,
            connect_timeout=read_duration(env, "STORAGE_CONNECT_TIMEOUT", "5s"),
            read_timeout=read_duration(env, "STORAGE_READ_TIMEOUT", "30s"),
            retries=read_count(env, "STORAGE_RETRIES", 2),
            breaker_failures=read_count(env, "STORAGE_BREAKER_FAILURES", 5),
            breaker_cooldown=read_duration(env, "STORAGE_BREAKER_COOLDOWN", "10s"),
            credentials_path=credentials_path,
            splice=read_flag(env, "STORAGE_SPLICE", default=True),
            credentials=credentials,
        )
        config.validate()
        return config

    def validate(self) -> None:
        """Check the combination of settings, not just each value."""
        if self.provider == "azure":
            check_azure(self.access_key, self.secret_key)
            return
        if self.provider == "google":
            if self.credentials_path is None or self.credentials is None:
                raise ConfigError("STORAGE_CREDENTIALS_PATH: required for STORAGE_PROVIDER=google "
                                  "(a service-account JSON file)")
            check_service_account(self.credentials, self.credentials_path)
            return
        if self.provider != "minio":
            return
        if bool(self.access_key) != bool(self.secret_key):
            missing = "STORAGE_SECRET_KEY" if self.access_key else "STORAGE_ACCESS_KEY"
            raise ConfigError(f"{missing}: required when the other key of the pair is set")
        if not self.access_key and not self.iam_role:
            raise ConfigError(
                "STORAGE_ACCESS_KEY: required for STORAGE_PROVIDER=minio unless STORAGE_IAM_ROLE is set"
            )
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ConfigError(f"STORAGE_CA_FILE={str(self.ca_file)!r}: expected a PEM file")

    def masked(self) -> dict[str, str]:
        """The settings as `preview-proxy config` prints them: secrets replaced, never shown."""
        return {
            "STORAGE_PROVIDER": self.provider,
            "storage root (DATA_PATH/storage)": str(self.root),
            "STORAGE_ENDPOINT": self.endpoint or "(provider default)",
            "STORAGE_REGION": self.region,
            "STORAGE_ACCESS_KEY": mask(self.access_key),
            "STORAGE_SECRET_KEY": mask(self.secret_key),
            "STORAGE_IAM_ROLE": self.iam_role or "(unset)",
            # The path is shown, so an operator can see which file is used; never what is in it.
            "STORAGE_CREDENTIALS_PATH": str(self.credentials_path) if self.credentials_path else "(unset)",
            "STORAGE_METADATA_ENDPOINT": self.metadata_endpoint or "(provider default)",
            "STORAGE_CA_FILE": str(self.ca_file) if self.ca_file else "(system certificates)",
            "STORAGE_CONNECT_TIMEOUT": f"{self.connect_timeout:g}s",
            "STORAGE_READ_TIMEOUT": f"{self.read_timeout:g}s",
            "STORAGE_RETRIES": str(self.retries),
            "STORAGE_BREAKER_FAILURES": str(self.breaker_failures),
            "STORAGE_BREAKER_COOLDOWN": f"{self.breaker_cooldown:g}s",
            "STORAGE_SPLICE": "true" if self.splice else "false",
        }

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line or a response, longest first.

        Besides the secret key: a SAS token's signature on its own, and a credential file's text,
        its secret fields and the lines of its private key.
        """
        pieces = {self.secret_key or "", *azure_secret_pieces(self.secret_key),
                  *service_account_pieces(self.credentials)}
        return tuple(sorted((p for p in pieces if p), key=len, reverse=True))


def mask(secret: str | None) -> str:
    """`(unset)`, or a fixed-width mask that reveals nothing about the value, not even its length."""
    return "********" if secret else "(unset)"


def _credentials(env: Mapping[str, str], provider: str) -> tuple[Path | None, str | None]:
    """STORAGE_CREDENTIALS_PATH and the file's text, read here once (only Google uses one)."""
    text = (env.get("STORAGE_CREDENTIALS_PATH") or "").strip()
    path = Path(text) if text else None
    if path is None or provider != "google":
        return path, None
    return path, read_service_account(path)


def _endpoint(env: Mapping[str, str]) -> str | None:
    """STORAGE_ENDPOINT with a scheme (https unless STORAGE_SECURE=false) and STORAGE_PORT applied.

    A path is kept: Azurite's endpoint is `http://host:port/<account>`.
    """
    # Both are checked even without an endpoint: a bad value must never be silently ignored.
    secure = read_flag(env, "STORAGE_SECURE", default=True)
    port = _port(env)
    raw = (env.get("STORAGE_ENDPOINT") or "").strip().rstrip("/")
    if not raw:
        return None
    if "://" not in raw:
        raw = f"{'https' if secure else 'http'}://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"STORAGE_ENDPOINT={raw!r}: expected host[:port] or http(s)://host[:port]")
    if port is None:
        return f"{parts.scheme}://{parts.netloc}{parts.path}"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}{parts.path}"


def _port(env: Mapping[str, str]) -> int | None:
    text = (env.get("STORAGE_PORT") or "").strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"STORAGE_PORT={text!r}: expected a port number from 1 to 65535")
    return int(text)
