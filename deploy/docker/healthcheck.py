"""The image's HEALTHCHECK: GET /healthz where the server listens; exit 0 if it answers 200, else 1.

The address follows the server's own rule (SERVER_HOST and SERVER_PORT, else imgproxy's IMGPROXY_BIND,
`host:port` or `:port`, else port 8080), so a port moved by the environment is the port checked; a
wildcard address is checked on loopback. Only the standard library: the check must run in the image
as it is (no curl there) and must not depend on where the product keeps its modules.
"""

import os
import sys
import urllib.request

TIMEOUT_SECONDS = 4.0  # below the HEALTHCHECK's --timeout, so a slow answer is reported, not killed
DEFAULT_PORT = "8080"
WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def healthz_url(env: dict[str, str]) -> str:
    """The /healthz URL of the server configured by `env`."""
    bind_host, _, bind_port = env.get("IMGPROXY_BIND", "").strip().rpartition(":")
    host = env.get("SERVER_HOST", "").strip() or bind_host.strip("[]")
    port = env.get("SERVER_PORT", "").strip() or bind_port or DEFAULT_PORT
    host = WILDCARDS.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"


def main() -> int:
    """One probe; its one line goes to stdout, which docker keeps in the container's health log."""
    url = healthz_url(dict(os.environ))
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            print(f"{url}: {response.status}")
            return 0 if response.status == 200 else 1
    except OSError as error:  # refused, timed out, or an error status (HTTPError is an OSError too)
        print(f"{url}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
