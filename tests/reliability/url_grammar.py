"""Hypothesis strategies for request targets over the server's URL grammar, right and wrong.

Targets are built as text from the routes' grammar (previews with options and plain or base64
sources, originals, /links/, /image-converter/), then damaged (`..` segments, NUL, percent
escapes, unicode, very long segments) and encoded either percent-escaped or as raw UTF-8 bytes.

Numbers stay within sizes that render in milliseconds, or well outside the options' bounds (which
must be refused): outputs made large on purpose are tests/reliability/test_output_bombs.py's job.
"""

import base64
import string
from urllib.parse import quote

from hypothesis import strategies as st

from tests.reliability.site import BUCKET, FS_LINK

# Found by the fuzzing once, kept as explicit cases: a segment longer than NAME_MAX, and a symlink loop,
# on local storage (each gave a 500 from an OSError).
KNOWN_CASES = [b"/b/" + b"x" * 300, b"/previews/q/plain/b/" + b"x" * 300, b"/links/fs/local/" + b"x" * 300,
               b"/image-converter/convert/b/" + b"y" * 256 + b".tif", b"/b/loop", b"/previews/q/plain/b/loop"]

OPTION_NAMES = [
    "resize", "rs", "size", "s", "resizing_type", "rt", "width", "w", "height", "h", "min-width", "mw",
    "min-height", "mh", "zoom", "z", "dpr", "enlarge", "el", "extend", "ex", "gravity", "g", "crop", "c",
    "padding", "pd", "rotate", "rot", "auto_rotate", "ar", "flip", "fl", "background", "bg", "blur", "bl",
    "sharpen", "sh", "quality", "q", "format", "f", "ext", "strip_metadata", "sm", "strip_color_profile", "scp",
    "cachebuster", "cb", "expires", "exp", "filename", "fn", "return_attachment", "att", "preset", "pr",
]
WORDS = ["fit", "fill", "fill-down", "force", "auto", "ce", "no", "so", "ea", "we", "nowe", "sm", "fp", "true",
         "false", "t", "f", "1", "0", "jpeg", "jpg", "png", "webp", "avif", "gif", "tiff", "bmp", "heic", "ffffff",
         "fff", "0a0b0c", "zz", "default", "nan", "inf", "-inf", "1e309", "0x10", "1_0", "+5", "٣"]
FORMATS = ["jpeg", "png", "webp", "avif", "gif", "tiff", "bmp", "jpg", "svg", "", "JPEG"]
SCHEMES = ["s3", "minio", "azure", "google", "gs", "gcs", "fs", "http", "https", "file", "ftp", "data", "S3", ""]
SAFE = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"

# A small integer, or one far outside every option's range; never a large but legal size.
numbers = st.one_of(st.integers(-5, 300).map(str), st.integers(10**5, 10**30).map(str),
                    st.floats(0, 2, allow_nan=False).map(lambda x: f"{x:.3g}"))
arguments = st.one_of(numbers, st.sampled_from(WORDS), st.text(max_size=8),
                      st.binary(max_size=12).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")))
# Mostly real names, so that most URLs get past the first option and reach the source and the render.
known_names = st.sampled_from(OPTION_NAMES)
option_names = st.one_of(known_names, known_names, known_names,
                         st.text(alphabet=string.ascii_lowercase + "_-", max_size=6))
options = st.builds(lambda name, args: ":".join([name, *args]), option_names, st.lists(arguments, max_size=4))
keys = st.one_of(st.sampled_from(["img.jpg", "sub/img.png", "missing.jpg", "to-secret.jpg", "to-root/secret.jpg",
                                  "loop"]),
                 st.text(min_size=1, max_size=20))


@st.composite
def sources(draw: st.DrawFn, listed: str) -> str:
    """A preview or conversion source: a key of the main storage, a link, a conversion, or anything."""
    key = draw(keys)
    scheme = draw(st.sampled_from(SCHEMES))
    bucket = draw(st.sampled_from([BUCKET, FS_LINK, listed, "127.0.0.1:1", "169.254.169.254", "localhost"]))
    return draw(st.sampled_from([f"{BUCKET}/{key}", f"{scheme}://{bucket}/{key}", f"{BUCKET}/{key}?a=1",
                                 f"image-converter/convert/{BUCKET}/{key}", key]))


@st.composite
def preview_paths(draw: st.DrawFn, listed: str) -> str:
    """/previews/<signature>/<options>/(plain/<source>[@ext] | <base64 chunks>[.ext])."""
    signature = draw(st.sampled_from(["q", "_", "insecure", "unsafe", "AAAA", "oKfUtW34Dvo", ""]))
    chosen = draw(st.lists(options, max_size=5))
    source = draw(sources(listed))
    if draw(st.booleans()):
        extension = draw(st.sampled_from(["", *[f"@{name}" for name in FORMATS]]))
        tail = f"plain/{draw(st.sampled_from([source, quote(source, safe='')]))}{extension}"
    else:
        encoded = base64.urlsafe_b64encode(source.encode()).decode().rstrip("=")
        chunk = draw(st.integers(0, 12))
        parts = [encoded[i:i + chunk] for i in range(0, len(encoded), chunk)] if chunk else [encoded]
        tail = "/".join(parts) + draw(st.sampled_from(["", *[f".{name}" for name in FORMATS]]))
    return "/".join(["/previews", signature, *chosen, tail])


@st.composite
def other_paths(draw: st.DrawFn, listed: str) -> str:
    """Originals, links, conversions, or a few random segments."""
    key, source = draw(keys), draw(sources(listed))
    scheme = draw(st.sampled_from(SCHEMES))
    position = draw(st.one_of(st.sampled_from(["0", "33p", "1.5", "-1", "50%", "99999999"]), st.text(max_size=5)))
    return draw(st.sampled_from([
        f"/{BUCKET}/{key}", f"/{draw(st.text(min_size=1, max_size=8))}/{key}", f"/links/{scheme}/{FS_LINK}/{key}",
        f"/links/{scheme}/{listed}/{key}", f"/image-converter/convert/{source}",
        f"/image-converter/videoframe/{position}/{source}", f"/image-converter/{draw(st.text(max_size=8))}/{source}",
        "/" + "/".join(draw(st.lists(st.text(max_size=10), max_size=5))),
    ]))


@st.composite
def damaged(draw: st.DrawFn, path: str) -> str:
    """`path` with some segments replaced by traversal, NUL, unicode or very long ones."""
    segments = path.split("/")
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, len(segments) - 1))
        segments[index] = draw(st.sampled_from([
            "..", ".", "", "%2e%2e", "%252e%252e", "..%2f..", "..\\..", "\x00", "a\x00b", "%00", "%", "%zz", "%c0%ae",
            "é", "\u202e", "\ud800", "🖼️", "x" * draw(st.integers(300, 9000)), segments[index] * 2,
        ]))
    return "/".join(segments)


@st.composite
def targets(draw: st.DrawFn, listed: str) -> bytes:
    """A whole request target as bytes: a path (maybe damaged) and maybe a query, escaped or raw.

    `listed` is the bucket the links file opens on moto.
    """
    path = draw(st.one_of(preview_paths(listed), other_paths(listed)))
    if draw(st.booleans()):
        path = draw(damaged(path))
    query = draw(st.sampled_from(["", "?videoStreamIndex=0", "?a=%00", "?x=" + "y" * 50, "?%zz"]))
    if draw(st.integers(0, 3)):  # raw bytes a quarter of the time: aiohttp's parser refuses most of them
        text = "".join(char if char in SAFE + "/%" else quote(char, safe="", errors="surrogatepass")
                       for char in path)
        return (text + query).encode("ascii")
    raw = path.encode("utf-8", errors="surrogatepass") + query.encode()
    return raw.replace(b"\r", b"%0D").replace(b"\n", b"%0A")  # CR/LF would start a header, not a path
