"""Where to listen: the --host/--port flags, else SERVER_HOST/SERVER_PORT, else imgproxy's IMGPROXY_BIND;
and METRICS_BIND, the address of /metrics when it must not be on the public port."""

from collections.abc import Mapping

from proxy.settings.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def read_listen_address(env: Mapping[str, str], host_flag: str | None = None,
                        port_flag: int | None = None) -> tuple[str, int]:
    """(host, port) to bind; each part from the first source that gives it, so a flag wins over the environment.

    IMGPROXY_BIND is `host:port`, `:port` (every address, as imgproxy reads it) or `[v6]:port`.
    """
    bind_host, bind_port = _split_bind(env.get("IMGPROXY_BIND", "").strip())
    host = host_flag or env.get("SERVER_HOST", "").strip() or bind_host or DEFAULT_HOST
    if port_flag is not None:
        port = port_flag
    elif env.get("SERVER_PORT", "").strip():
        port = _port("SERVER_PORT", env["SERVER_PORT"].strip())
    else:
        port = bind_port if bind_port is not None else DEFAULT_PORT
    return host.strip("[]"), port


def read_metrics_bind(env: Mapping[str, str], main: tuple[str, int]) -> tuple[str, int] | None:
    """METRICS_BIND as (host, port), or None to answer /metrics on the main port.

    The same forms as IMGPROXY_BIND (`host:port`, `:port`, `[v6]:port`); it must not be the main address.
    """
    text = env.get("METRICS_BIND", "").strip()
    if not text:
        return None
    host, port = _split_bind(text, "METRICS_BIND")
    assert port is not None  # a non-empty text has a port, or _split_bind raised
    bind = host.strip("[]"), port
    if port != 0 and bind == main:
        raise ConfigError(f"METRICS_BIND={text!r}: the main address; give /metrics a port of its own")
    return bind


def _split_bind(text: str, name: str = "IMGPROXY_BIND") -> tuple[str, int | None]:
    if not text:
        return "", None
    host, colon, port = text.rpartition(":")
    if not colon:
        raise ConfigError(f"{name}={text!r}: expected host:port or :port")
    # ":8080" listens on every address, as in imgproxy (Go's net.Listen).
    return host or "0.0.0.0", _port(name, port)


def _port(name: str, text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > 65535:
        raise ConfigError(f"{name}={text!r}: expected a port number from 0 to 65535")
    return int(text)
