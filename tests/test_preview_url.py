"""The imgproxy path grammar (previews.grammar.url): signature, options, then a plain or base64url source.

Reference: https://docs.imgproxy.net/usage/processing#source-url. A plain source is percent-escaped and
may end in `@<ext>`; an encoded source is URL-safe base64 (padding optional), split by `/` anywhere,
and may end in `.<ext>`. The signature covers everything after the signature segment.
"""

import base64

import pytest

from previews.errors import InvalidOption, InvalidSource, PreviewError
from previews.grammar.option_table import apply_options
from previews.grammar.options import ProcessingOptions, ResizingType
from previews.grammar.url import MAX_SOURCE_BYTES, PreviewUrl, parse_preview_url
from proxy.http.object_path import parse_source_ref
from proxy.storage.provider import ObjectRef

BUCKET = "h5un6l2bnaz1vj8a9qgms4-public"
KEY = "images/original/S/j/hJ/PwMg.png"


def b64(text: str | bytes, padded: bool = False) -> str:
    raw = text.encode() if isinstance(text, str) else text
    encoded = base64.urlsafe_b64encode(raw).decode()
    return encoded if padded else encoded.rstrip("=")


def chunks(text: str, *sizes: int) -> str:
    """`text` split by `/` after each of `sizes` characters (the rest is the last chunk)."""
    parts, start = [], 0
    for size in sizes:
        parts.append(text[start:start + size])
        start += size
    parts.append(text[start:])
    return "/".join(part for part in parts if part)


def assert_bad_request(error: PreviewError) -> None:
    assert error.status == 400
    assert error.reason and "\n" not in error.reason and error.reason == error.reason.strip()


def refused(path: str, kind: type[PreviewError] | tuple[type[PreviewError], ...]) -> PreviewError:
    """The error of kind `kind` that parsing `path` raises, checked to be a 400 with a one-line reason."""
    with pytest.raises(kind) as excinfo:
        parse_preview_url(path)
    assert_bad_request(excinfo.value)
    return excinfo.value


# --- plain sources -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tail", "source", "extension"),
    [
        (f"plain/{BUCKET}/{KEY}", f"{BUCKET}/{KEY}", None),
        (f"plain/{BUCKET}/{KEY}@webp", f"{BUCKET}/{KEY}", "webp"),
        ("plain/b/photo.jpg@png", "b/photo.jpg", "png"),
        # The `.jpg` of a plain source is part of its name, never an extension.
        ("plain/b/photo.jpg", "b/photo.jpg", None),
        ("plain/b/k@jpg", "b/k", "jpeg"),
        ("plain/b/k@JPEG", "b/k", "jpeg"),
        ("plain/b/k@tiff", "b/k", "tiff"),
        # An empty extension is no extension.
        ("plain/b/k@", "b/k", None),
    ],
)
def test_plain_source_and_extension(tail: str, source: str, extension: str | None) -> None:
    url = parse_preview_url(f"/q/{tail}")
    assert (url.source, url.extension) == (source, extension)
    assert url.options == []


@pytest.mark.parametrize(
    ("escaped", "source"),
    [
        ("b/My%20Cat.jpg", "b/My Cat.jpg"),
        ("b/%E2%82%AC/price.png", "b/\u20ac/price.png"),
        ("b/100%25.png", "b/100%.png"),
        ("b/a%40b.png", "b/a@b.png"),  # imgproxy: escape `@` as %40 so it isn't read as the extension
        ("b/what%3F.png", "b/what?.png"),  # and `?` as %3F
        ("b/a%2Bb.png", "b/a+b.png"),
        ("b/caf%C3%A9", "b/caf\u00e9"),
    ],
)
def test_plain_source_is_percent_decoded(escaped: str, source: str) -> None:
    assert parse_preview_url(f"/q/plain/{escaped}").source == source


def test_escaped_at_sign_and_real_extension() -> None:
    url = parse_preview_url("/q/plain/b/a%40b.jpg@png")
    assert (url.source, url.extension) == ("b/a@b.jpg", "png")


def test_fully_escaped_bucket_and_key() -> None:
    """A client that escapes the whole `<bucket>/<key>` (`%2F` for the slash) names the same object."""
    url = parse_preview_url(f"/q/rs:fit:100:100/plain/{BUCKET}%2Fimages%2Fa%20b.png@jpg")
    assert url.source == f"{BUCKET}/images/a b.png"
    assert url.extension == "jpeg"
    assert parse_source_ref(url.source) == ObjectRef(BUCKET, "images/a b.png")

    escaped = parse_preview_url("/q/plain/bucket%2Fkey")
    assert escaped.source == "bucket/key"
    assert parse_source_ref(escaped.source) == ObjectRef("bucket", "key")


# --- base64url sources ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "split",
    [(), (4,), (8, 8), (3, 5, 7), (1, 1, 1, 1)],
    ids=["one-chunk", "4", "8-8", "3-5-7", "ones"],
)
@pytest.mark.parametrize("extension", [None, "png", "webp", "jpg"])
def test_base64_source_in_chunks(split: tuple[int, ...], extension: str | None) -> None:
    encoded = chunks(b64(f"{BUCKET}/{KEY}"), *split)
    tail = encoded + (f".{extension}" if extension else "")
    url = parse_preview_url(f"/sig/rs:fill:300:200:0/g:ce/{tail}")
    assert url.source == f"{BUCKET}/{KEY}"
    assert url.extension == {None: None, "png": "png", "webp": "webp", "jpg": "jpeg"}[extension]
    assert url.options == [("rs", ["fill", "300", "200", "0"]), ("g", ["ce"])]


@pytest.mark.parametrize("text", ["b/k", "b/ke", "b/key", "bucket/k\u00e9y.png", "b/" + "x" * 97])
def test_base64_with_and_without_padding(text: str) -> None:
    """Padding is optional (imgproxy trims `=` and decodes raw URL-safe base64)."""
    assert parse_preview_url(f"/q/{b64(text)}").source == text
    assert parse_preview_url(f"/q/{b64(text, padded=True)}").source == text


def test_base64_uses_the_url_safe_alphabet() -> None:
    # These bytes encode to `-` and `_` in URL-safe base64 (`+` and `/` in the standard one).
    text = "b/\u00fb\u00ff\u00be.png"
    encoded = b64(text)
    assert "-" in encoded or "_" in encoded
    assert parse_preview_url(f"/q/{encoded}").source == text


def test_imgproxy_documented_example() -> None:
    url = parse_preview_url("/sig/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png")
    assert url.source == "http://example.com/images/curiosity.jpg"
    assert url.extension == "png"
    assert url.options == [("rs", ["fill", "300", "400", "0"]), ("g", ["sm"])]


# --- the URLs real clients build ------------------------------------------------------------------


def test_supervisely_sdk_url_width_only() -> None:
    url = parse_preview_url(f"/q/ext:jpeg/resize:fill:300:0:0/q:70/plain/{BUCKET}/{KEY}")
    assert url == PreviewUrl(
        signature="q",
        signed_path=f"/ext:jpeg/resize:fill:300:0:0/q:70/plain/{BUCKET}/{KEY}",
        options=[("ext", ["jpeg"]), ("resize", ["fill", "300", "0", "0"]), ("q", ["70"])],
        source=f"{BUCKET}/{KEY}",
        extension=None,
        query="",
    )
    options = apply_options(ProcessingOptions(), url.options, {})
    assert (options.format, options.resizing_type, options.width, options.height) == ("jpeg", ResizingType.FILL, 300, 0)
    assert (options.enlarge, options.quality) == (False, 70)
    assert parse_source_ref(url.source) == ObjectRef(BUCKET, KEY)


def test_supervisely_sdk_url_height_only_default_quality() -> None:
    url = parse_preview_url(f"/q/ext:jpeg/resize:fill:0:256:0/q:0/plain/{BUCKET}/{KEY}")
    assert url.signature == "q"
    assert url.source == f"{BUCKET}/{KEY}"
    options = apply_options(ProcessingOptions(), url.options, {})
    assert (options.format, options.resizing_type, options.width, options.height) == ("jpeg", ResizingType.FILL, 0, 256)
    assert options.quality == 0  # the format's default, chosen at render time


def test_imgproxy_style_signed_base64_webp_url() -> None:
    signature = "oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8"
    encoded = chunks(b64(f"{BUCKET}/{KEY}"), 16, 16)
    url = parse_preview_url(f"/{signature}/rs:fill:640:480:0/g:ce/{encoded}.webp")
    assert url.signature == signature
    assert url.signed_path == f"/rs:fill:640:480:0/g:ce/{encoded}.webp"
    assert (url.source, url.extension) == (f"{BUCKET}/{KEY}", "webp")
    options = apply_options(ProcessingOptions(), url.options, {})
    assert (options.resizing_type, options.width, options.height) == (ResizingType.FILL, 640, 480)
    assert options.enlarge is False


# --- query string and the signed path -------------------------------------------------------------


def test_query_string_is_kept_for_the_source() -> None:
    url = parse_preview_url(f"/q/rs:fit:10:10/plain/{BUCKET}/video.mp4", "videoStreamIndex=0&t=1.5")
    assert url.query == "videoStreamIndex=0&t=1.5"
    assert url.source == f"{BUCKET}/video.mp4"


def test_no_query_is_empty() -> None:
    assert parse_preview_url("/q/plain/b/k").query == ""


@pytest.mark.parametrize(
    ("path", "signed"),
    [
        ("/sig/plain/b/k", "/plain/b/k"),
        ("/sig/w:10/plain/b/k@png", "/w:10/plain/b/k@png"),
        # Raw, as sent: escapes are signed undecoded.
        ("/sig/fn:a%20b/plain/b/My%20Cat.jpg", "/fn:a%20b/plain/b/My%20Cat.jpg"),
        ("/sig/YnVja2V0L2tleQ.png", "/YnVja2V0L2tleQ.png"),
    ],
)
def test_signed_path_is_everything_after_the_signature(path: str, signed: str) -> None:
    url = parse_preview_url(path)
    assert url.signature == "sig"
    assert url.signed_path == signed
    assert path == f"/{url.signature}{url.signed_path}"


def test_options_end_at_the_first_segment_without_a_colon() -> None:
    url = parse_preview_url("/q/w:10/h:20/plain/b/k:with:colons.png")
    assert url.options == [("w", ["10"]), ("h", ["20"])]
    assert url.source == "b/k:with:colons.png"


def test_option_arguments_are_split_before_percent_decoding() -> None:
    url = parse_preview_url("/q/fn:my%20photo/cb:v%3A2/plain/b/k")
    assert url.options == [("fn", ["my photo"]), ("cb", ["v:2"])]


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "",
        "q/plain/b/k",  # no leading slash
        "/q/w:10/h:20",  # options, then nothing
        "/q/rs:fill:300:0:0",
    ],
)
def test_no_source(path: str) -> None:
    refused(path, InvalidSource)


@pytest.mark.parametrize(
    "path",
    ["/q", "/q/", "/q/plain", "/q/plain/", "/q/plain/@png", "/q/w:10/", "/q/.png", "/q/w:10/plain/"],
)
def test_empty_source(path: str) -> None:
    error = refused(path, InvalidSource)
    assert "empty" in error.reason


@pytest.mark.parametrize(
    "encoded",
    [
        "Y",  # one character can't be base64
        "YnVja2V0L2tleQ!!",  # `!` is in no base64 alphabet
        "YnVja2V0L2t*ZXk",
        "aGVsbG8+",  # `+` belongs to standard base64, not to the URL-safe alphabet imgproxy uses
        "YnVj~a2V0",
    ],
)
def test_bad_base64(encoded: str) -> None:
    refused(f"/q/rs:fit:10:10/{encoded}", InvalidSource)


@pytest.mark.parametrize(
    "path",
    [
        "/q/plain/b/k@xyz",
        "/q/plain/b/k@heic",
        f"/q/{b64('b/k')}.xyz",
        f"/q/{b64('b/k')}.png.jpg",
    ],
)
def test_unknown_extension(path: str) -> None:
    error = refused(path, InvalidOption)
    assert "extension" in error.reason


@pytest.mark.parametrize(
    "path",
    [
        "/q/plain/b/%FF.png",
        "/q/plain/b/caf%C3",  # a truncated two-byte sequence
        f"/q/{b64(bytes([0xFF, 0xFE, 0xFD]))}",
        f"/q/{b64(b'bucket/' + bytes([0xC3]) + b'x')}.png",
        "/q/fn:%FF/plain/b/k",
    ],
)
def test_invalid_utf8(path: str) -> None:
    refused(path, (InvalidSource, InvalidOption))


def test_source_longer_than_the_limit() -> None:
    refused("/q/plain/b/" + "k" * MAX_SOURCE_BYTES, InvalidSource)
    assert parse_preview_url("/q/plain/b/" + "k" * (MAX_SOURCE_BYTES - 2)).source.startswith("b/k")
