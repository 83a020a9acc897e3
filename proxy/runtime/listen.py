"""Where the server listens: its socket, and the lines that say where it listens."""

import socket

from proxy.config import Config
from proxy.runtime.sample import sample_url_path


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A socket bound to (host, port), not yet listening (the site proxy.runtime.server makes listens on it).

    `reuse_port`: SO_REUSEPORT, so that every worker of a multi-worker server opens its own socket
    on the one port and the kernel spreads new connections over them.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def refuse_taken_port(host: str, port: int) -> None:
    """Raise OSError (EADDRINUSE) when anything listens on (host, port), another preview-proxy included.

    Workers share their port through SO_REUSEPORT, which the kernel also grants to a second server
    of the same user on the same port: the two would split the traffic without a word. A bind
    without SO_REUSEPORT fails while any socket holds the port, so it is tried, and let go, first.
    """
    if port == 0:
        return
    listening_socket(host, port, reuse_port=False).close()


def cannot_listen(host: str, port: int, error: OSError) -> str:
    """The one line said when the port cannot be had."""
    return f"can't listen on {host}:{port}: {error.strerror or error}"


def base_url(sock: socket.socket) -> str:
    """http://host:port of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://{host if ':' not in host else f'[{host}]'}:{port}"


def announce(config: Config, base: str) -> None:
    """Say where the server listens, once it accepts connections, and the sample's URLs if there is one."""
    # Tests and scripts read this line to learn the port; keep its shape.
    print(f"preview-proxy listening on {base}", flush=True)
    sample = sample_url_path(config)
    if sample is not None:
        print(f"try: {base}{sample}", flush=True)
        print(f"and a preview: {base}/previews/q/ext:jpeg/resize:fill:300:0:0/q:70/plain{sample}", flush=True)
