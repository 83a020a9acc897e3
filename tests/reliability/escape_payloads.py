"""Ways out of a folder and ways to another host, generated: what tests/reliability/test_escape_attempts.py sends.

Traversals are a grid: every spelling of `..` (plain, percent-encoded, double-encoded, overlong
UTF-8, full-width, %u) times every spelling of the separator, deep enough to reach the secrets;
then the one-offs (absolute paths, NUL, symlinks, filter-bypass forms). Sources are link and URL
sources that must reach nothing the links file does not list.
"""

import base64
from collections.abc import Callable
from urllib.parse import quote

DOTDOTS = ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%252e%252e", "%c0%ae%c0%ae", "%e0%80%ae%e0%80%ae",
           "%u002e%u002e", "%ef%bc%8e%ef%bc%8e", "..%00", "%c0%2e%c0%2e"]
SEPARATORS = ["/", "%2f", "%2F", "%252f", "%5c", "\\", "%c0%af", "%e0%80%af", "%ef%bc%8f"]


def traversals(depth: int, target: str) -> list[str]:
    """Key-relative paths that climb `depth` folders and name `target` there, in every spelling."""
    return [separator.join([dotdot] * depth + [target]) for dotdot in DOTDOTS for separator in SEPARATORS]


def one_offs(depth: int, root: str) -> list[str]:
    """Escapes that are not a grid: absolute paths, NUL, symlinks out, forms that beat naive filters."""
    up = "../" * depth
    return [
        f"/{root}/secret.txt", f"%2f{quote(root, safe='')}%2fsecret.txt", f"{root}/secret.jpg",
        "/etc/passwd", "%2fetc%2fpasswd", "C:\\Windows\\win.ini", "c%3a%5cwindows%5cwin.ini",
        f"img.jpg%00{up}secret.txt", f"img.jpg\x00{up}secret.txt".replace("\x00", "%00"), f"%00{up}secret.txt",
        "....//" * depth + "secret.txt", "....\\\\" * depth + "secret.txt", "..;/" * depth + "secret.txt",
        "%2e%2e%2f" * depth + "secret.txt", "..%252f" * depth + "secret.txt", f"./{up}secret.txt",
        f"img.jpg/{up}../secret.txt", "~/secret.txt", "~root/.bashrc", "%7e/secret.txt",
        "to-secret", "to-secret.jpg", "to-root/secret.txt", "to-root/secret.jpg", "to-data-secret",
        "to-linked/escape.jpg", "to-linked/up/secret.jpg", "escape.jpg", "up/secret.jpg", "up/secret.txt",
    ]


def ssrf_sources(listed: str, unlisted: str, tripwire: int, root: str) -> list[str]:
    """Preview and conversion sources aimed at unlisted buckets, loopback, metadata services and files."""
    loopback = [f"127.0.0.1:{tripwire}", f"localhost:{tripwire}", f"[::1]:{tripwire}", f"2130706433:{tripwire}",
                f"0x7f.1:{tripwire}", f"0.0.0.0:{tripwire}", "169.254.169.254", "metadata.google.internal",
                "169.254.170.2", "[fd00:ec2::254]"]
    sources = [f"{scheme}://{host}/latest/meta-data/img.jpg" for scheme in ("http", "https") for host in loopback]
    sources += [
        f"//127.0.0.1:{tripwire}/img.jpg", f"file://{root}/secret.jpg", "file:///etc/passwd",
        f"gopher://127.0.0.1:{tripwire}/_x", f"ftp://127.0.0.1:{tripwire}/img.jpg", f"dict://127.0.0.1:{tripwire}/",
        f"s3://127.0.0.1:{tripwire}/img.jpg", "s3://169.254.169.254/latest/meta-data", f"s3://{unlisted}/img.jpg",
        f"minio://{unlisted}/img.jpg", f"S3://{unlisted}/img.jpg", f"s3://{listed}/../{unlisted}/img.jpg",
        f"s3://{listed}%2f..%2f{unlisted}/img.jpg", f"s3://{listed}@127.0.0.1:{tripwire}/img.jpg",
        f"s3://{unlisted}#{listed}/img.jpg", f"azure://{unlisted}/img.jpg", f"gs://{unlisted}/img.jpg",
        "fs://../secret.txt", "fs://local/../secret.jpg", "fs://local/%2e%2e/secret.jpg", "fs://local/up/secret.jpg",
        "fs://local/escape.jpg", "fs:///etc/passwd", f"fs://{root}/secret.jpg", "fs://b/img.jpg",
        f"b/../../../{root.rsplit('/', 1)[-1]}/secret.jpg",
    ]
    return sources


def source_forms(source: str) -> list[str]:
    """A source as a preview tail: plain, plain and escaped, base64url (in chunks)."""
    encoded = base64.urlsafe_b64encode(source.encode()).decode().rstrip("=")
    return [f"plain/{source}", f"plain/{quote(source, safe='')}",
            "/".join(encoded[i:i + 16] for i in range(0, len(encoded), 16))]


# How each route carries a key-relative path, and how deep the secrets are below its root.
Route = tuple[str, int, Callable[[str], str]]
PREVIEW = "/previews/insecure/rs:fit:32:32"
ROUTES: list[Route] = [
    ("original", 3, lambda path: f"/b/{path}"),
    ("preview-plain", 3, lambda path: f"{PREVIEW}/plain/b/{path}"),
    ("preview-escaped", 3, lambda path: f"{PREVIEW}/plain/{quote('b/' + path, safe='%')}"),
    ("preview-base64", 3, lambda path: f"{PREVIEW}/{base64.urlsafe_b64encode(f'b/{path}'.encode()).decode()}"),
    ("converter", 3, lambda path: f"/image-converter/convert/b/{path}"),
    ("fs-link", 1, lambda path: f"/links/fs/local/{path}"),
    ("preview-fs-link", 1, lambda path: f"{PREVIEW}/plain/fs://local/{path}"),
]
