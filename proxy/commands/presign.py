"""`preview-proxy presign PUT|GET <bucket>/<key> --expires 15m`: print a presigned URL (proxy.http.access.presign).

PUT uploads the object; GET reads it from a private bucket (PRIVATE_BUCKETS), also as
`links/<scheme>/<bucket>/<key>` or `image-converter/convert/<bucket>/<key>`.
"""

import argparse
import sys
import time

from proxy.config import Config
from proxy.http.access.presign import object_url_path, presigned_query
from proxy.settings.units import parse_duration

COMMAND = "presign"
METHODS = ("GET", "PUT")


def add_presign_command(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the subcommand on the CLI's parser."""
    parser = commands.add_parser(COMMAND, help="print a URL that allows one method on one object until it expires")
    parser.add_argument("method", type=str.upper, choices=METHODS, help="the HTTP method the URL allows")
    parser.add_argument("object", help="<bucket>/<key>, links/<scheme>/<bucket>/<key> for a linked bucket, or "
                                       "(GET) image-converter/<operation>/<bucket>/<key>")
    parser.add_argument("--expires", default="15m", help="how long the URL is valid: 90s, 15m, 1h, 7d (default: 15m)")
    parser.add_argument("--base-url", help="the proxy as clients reach it (default: http://<listen address>)")


def run_presign_command(args: argparse.Namespace, config: Config) -> int:
    """Print the URL; 2 with one line on stderr if no signing key is configured or the arguments are wrong."""
    keys = config.uploads.signing_keys
    if not keys:
        print("preview-proxy presign: no SIGNING_KEYS configured", file=sys.stderr)
        return 2
    try:
        seconds = parse_duration(args.expires)
    except ValueError:
        print(f"preview-proxy presign: --expires {args.expires!r}: expected a duration such as 15m", file=sys.stderr)
        return 2
    bucket, _, key = args.object.strip("/").partition("/")
    if not key:
        print("preview-proxy presign: expected <bucket>/<key>", file=sys.stderr)
        return 2
    path = object_url_path(bucket, key)
    expires = int(time.time() + seconds)
    base = (args.base_url or f"http://{config.server.host}:{config.server.port}").rstrip("/")
    # The signature covers the path after IMGPROXY_PATH_PREFIX, which the server takes off before checking.
    query = presigned_query(keys[0], args.method, path, expires)
    print(f"{base}{config.url_forms.path_prefix}{path}?{query}")
    return 0
