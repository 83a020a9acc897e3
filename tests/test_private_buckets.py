"""Private buckets through a real server: originals, links, conversions and previews of a bucket that
PRIVATE_BUCKETS names answer only a bearer token or a presigned GET (previews: a signed URL), with
`Cache-Control: private`; every other request is refused before any provider request (counted on the
wire in front of moto), HEAD, ranges, conditional requests and the hot lane included; other buckets
answer as before.
"""

import io
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from proxy.config import Config
from proxy.http.access.presign import presigned_query, without_presign
from proxy.runtime.log_redaction import register_config_secrets
from proxy.secrets.registry import SecretRegistry
from proxy.settings.access.private_buckets import read_private_buckets_config
from proxy.settings.errors import ConfigError
from proxy.settings.uploads import read_upload_config
from tests.conftest import REPO, StartServer
from tests.support.conversions import tiff
from tests.support.http import Reply, request
from tests.support.previews_kit import assert_one_line, b64_source, metric, place, running_server, sign
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, s3_env
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy
from tests.test_local_originals import make_jpeg
from tests.test_upload import put

SIGNING_KEY = "read-signing-key-0123456789abcdef-0123"
READ_TOKEN, UPLOAD_TOKEN, ADMIN_TOKEN = ("read-token-0123456789abcdef", "upload-token-0123456789abcdef",
                                        "admin-token-0123456789abcdef")
IMG_KEY, IMG_SALT = "0123456789abcdef0123456789abcdef", "fedcba9876543210"
PRIVATE_ENV = {"PRIVATE_BUCKETS": "*-private, secret", "SIGNING_KEYS": SIGNING_KEY, "READ_TOKENS": READ_TOKEN,
               "UPLOAD_TOKENS": UPLOAD_TOKEN, "ADMIN_TOKENS": ADMIN_TOKEN, "CORS_ALLOW_ORIGINS": "*",
               "ACCESS_LOG": "false"}  # the access log off lets the hot lane run
PRIVATE_CACHE_CONTROL = "private, no-cache"
JPEG = make_jpeg(seed=11)
HOT = "preview_proxy_hot_answers_total"


@dataclass(frozen=True)
class Site:
    """DATA_PATH with one JPEG in public and private buckets and an fs link to it under two names."""

    data_path: Path
    links_file: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("private-buckets")
    data_path = root / "data"
    for bucket in ("photos", "photos-private", "secret", "private-photos"):
        place(data_path, bucket, "a.jpg", JPEG)
    place(data_path, "photos-private", "scan.tif", tiff(Image.new("RGB", (64, 48), (200, 30, 30))))
    place(root, "team", "a.jpg", JPEG)
    links_file = root / "remote_links.yml"
    # One folder under two names: PRIVATE_BUCKETS matches the bucket name the URL gives.
    links_file.write_text(f"team-private: {{provider: fs, path: {root / 'storage' / 'team'}}}\n"
                          f"team: {{provider: fs, path: {root / 'storage' / 'team'}}}\n")
    return Site(data_path, links_file)


@pytest.fixture(scope="module")
def server(site: Site) -> Iterator[ServerProcess]:
    with running_server(site.data_path, REMOTE_LINKS_PATH=str(site.links_file), IMGPROXY_KEY=IMG_KEY,
                        IMGPROXY_SALT=IMG_SALT, **PRIVATE_ENV) as running:
        yield running


def get(server: ServerProcess, path: str, method: str = "GET", **headers: str) -> Reply:
    return request(server.url(path), method, {name.replace("_", "-"): value for name, value in headers.items()})


def presigned(path: str, method: str = "GET", expires_in: int = 600, key: str = SIGNING_KEY) -> str:
    """`path` (and its own query, unsigned) with a presigned query for `method` added."""
    bare, _, own = path.partition("?")
    query = presigned_query(key.encode(), method, bare, int(time.time()) + expires_in)
    return f"{bare}?{own + '&' if own else ''}{query}"


def signed_preview(options_and_source: str) -> str:
    return f"/previews/{sign(IMG_KEY, IMG_SALT, '/' + options_and_source)}/{options_and_source}"


PRIVATE_READS = ["/photos-private/a.jpg", "/secret/a.jpg", "/Photos-Private/a.jpg", "/photos-private/missing.jpg",
                 "/links/fs/team-private/a.jpg", "/image-converter/convert/photos-private/scan.tif"]
WAYS_IN = [("GET", {}), ("HEAD", {}), ("GET", {"Range": "bytes=0-99"}), ("GET", {"If-None-Match": '"x"'}),
           ("GET", {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}), ("GET", {"Origin": "https://a.example"})]


def test_private_reads_without_credentials_are_refused_every_way_in(server: ServerProcess):
    for path in PRIVATE_READS:
        for method, headers in WAYS_IN:
            reply = request(server.url(path), method, headers)
            assert (reply.status, reply.headers["Cache-Control"]) == (403, "no-store"), (path, method, headers)
            if method == "GET":
                assert "private" in assert_one_line(reply.body)
    # A refusal is no different for a key that does not exist: it says nothing of what the bucket holds.
    assert get(server, "/photos-private/missing.jpg").body == get(server, "/photos-private/a.jpg").body


def test_a_wrong_bearer_token_is_401_with_a_challenge(server: ServerProcess):
    for authorization in ("Bearer not-a-token-0123456789abcdef", f"Basic {READ_TOKEN}", "Bearer"):
        reply = get(server, "/photos-private/a.jpg", Authorization=authorization)
        assert (reply.status, reply.headers["WWW-Authenticate"]) == (401, 'Bearer realm="preview-proxy"')
        assert READ_TOKEN not in reply.body.decode()


def test_read_upload_and_admin_tokens_open_a_private_bucket(server: ServerProcess):
    for token in (READ_TOKEN, UPLOAD_TOKEN, ADMIN_TOKEN):
        auth = f"Bearer {token}"
        for path in ("/photos-private/a.jpg", "/secret/a.jpg", "/links/fs/team-private/a.jpg"):
            whole = get(server, path, Authorization=auth)
            assert (whole.status, whole.body) == (200, JPEG), (token, path)
            assert whole.headers["Cache-Control"] == PRIVATE_CACHE_CONTROL
            assert "Authorization" in whole.headers["Vary"]
            head = get(server, path, "HEAD", Authorization=auth)
            assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", str(len(JPEG)))
            ranged = get(server, path, Authorization=auth, Range="bytes=100-199")
            assert (ranged.status, ranged.body, ranged.headers["Cache-Control"]) == (
                206, JPEG[100:200], PRIVATE_CACHE_CONTROL)
            again = get(server, path, Authorization=auth, If_None_Match=whole.headers["ETag"])
            assert (again.status, again.headers["Cache-Control"]) == (304, PRIVATE_CACHE_CONTROL)


def test_a_presigned_get_opens_exactly_what_it_signs_until_it_expires(server: ServerProcess, site: Site):
    path = "/photos-private/a.jpg"
    good = presigned(path)
    assert (get(server, good).status, get(server, good).body) == (200, JPEG)
    assert get(server, good).headers["Cache-Control"] == PRIVATE_CACHE_CONTROL
    assert get(server, good, "HEAD").status == 200  # a HEAD takes the GET's URL
    assert get(server, good, Range="bytes=0-9").body == JPEG[:10]
    later = int(time.time()) + 600
    signature = presigned_query(SIGNING_KEY.encode(), "GET", path, later).rsplit("=", 1)[1]
    tampered = ("A" if signature[0] != "A" else "B") + signature[1:]
    refused = {
        "expired": presigned(path, expires_in=-1),
        "another path": presigned(path).replace("/a.jpg", "/scan.tif"),
        "a PUT's URL": presigned(path, "PUT"),
        "a later expiry": f"{path}?expires={later + 60}&signature={signature}",
        "a tampered signature": f"{path}?expires={later}&signature={tampered}",
        "an unknown key": presigned(path, key="not-the-signing-key-0123456789abcdef"),
        "no expiry": f"{path}?signature={signature}",
    }
    for what, url in refused.items():
        reply = get(server, url)
        assert reply.status == 403, what
        assert_one_line(reply.body)
    # The other way round: a GET's URL writes nothing.
    status, _, _ = put(server, presigned("/photos-private/new.jpg"), b"bytes", 5)
    assert status == 403
    assert not (site.data_path / "storage" / "photos-private" / "new.jpg").exists()


def test_buckets_that_are_not_private_answer_as_before(server: ServerProcess):
    for path, cache_control in (("/photos/a.jpg", "public, max-age=31536000, immutable"),
                                ("/private-photos/a.jpg", "public, max-age=31536000, immutable"),
                                ("/links/fs/team/a.jpg", "public, max-age=60")):
        for headers in ({}, {"Authorization": "Bearer not-a-token-0123456789abcdef"}):
            reply = request(server.url(path), headers=headers)
            assert (reply.status, reply.body, reply.headers["Cache-Control"]) == (200, JPEG, cache_control)
            assert "Authorization" not in (reply.headers["Vary"] or "")
        assert get(server, presigned(path, expires_in=-1)).status == 200  # credentials there are not read


def test_conversions_of_a_private_original(server: ServerProcess):
    path = "/image-converter/convert/photos-private/scan.tif"
    signed = get(server, presigned(path + "?page=0"))  # the conversion's own query is kept, unsigned
    by_token = get(server, path, Authorization=f"Bearer {READ_TOKEN}")
    for reply in (signed, by_token):
        assert (reply.status, reply.headers["X-Converted-From"]) == (200, "tiff")
        assert Image.open(io.BytesIO(reply.body)).size == (64, 48)
        assert reply.headers["Cache-Control"] == PRIVATE_CACHE_CONTROL
        assert "Authorization" in reply.headers["Vary"]
    missing_page = get(server, presigned(path + "?page=7"))  # the conversion still reads its own query
    assert (missing_page.status, assert_one_line(missing_page.body)) == (
        415, "page 7 doesn't exist: the source has 1 page, page 0")


def test_private_previews_answer_only_signed_urls_and_go_hot_only_by_them(server: ServerProcess):
    options = f"rs:fit:48:48/cb:{uuid.uuid4().hex[:8]}/plain/photos-private/a.jpg"
    signed = signed_preview(options)
    lane_before = metric(server, HOT, by="lane")
    answers = [get(server, signed) for _ in range(4)]  # a render, a store hit, then hot answers
    assert [reply.status for reply in answers] == [200] * 4
    assert {reply.headers["Cache-Control"] for reply in answers} == {PRIVATE_CACHE_CONTROL}
    assert metric(server, HOT, by="lane") >= lane_before + 1, "the signed URL was answered by the hot lane"
    for unsigned in (f"/previews/insecure/{options}", f"/previews/q/{options}",
                     signed.replace(signed.split("/")[2], sign(IMG_KEY, IMG_SALT, "/other"))):
        for method, headers in WAYS_IN:
            reply = request(server.url(unsigned), method, {**headers, "Authorization": f"Bearer {READ_TOKEN}"})
            assert reply.status == 403, (unsigned, method, headers)
    converted = get(server, signed_preview("rs:fit:32:32/plain/image-converter/convert/photos-private/scan.tif"))
    assert (converted.status, converted.headers["Cache-Control"]) == (200, PRIVATE_CACHE_CONTROL)
    public = get(server, signed_preview("rs:fit:32:32/plain/photos/a.jpg"))
    assert (public.status, public.headers["Cache-Control"]) == (200, "public, max-age=31536000, immutable")


def test_without_imgproxy_key_private_previews_are_refused(site: Site):
    with running_server(site.data_path, REMOTE_LINKS_PATH=str(site.links_file), **PRIVATE_ENV) as unsigned:
        sources = ["plain/photos-private/a.jpg", "plain/secret/a.jpg", b64_source("fs://team-private/a.jpg"),
                   "plain/image-converter/convert/photos-private/scan.tif"]
        for _ in range(3):  # asked again and again: never kept, never hot
            for source in sources:
                reply = get(unsigned, f"/previews/insecure/rs:fit:32:32/{source}", Authorization=f"Bearer {READ_TOKEN}")
                assert reply.status == 403, source
                assert assert_one_line(reply.body) == ("previews of a private bucket need a signed URL, and "
                                                       "IMGPROXY_KEY is not set")
        assert get(unsigned, "/previews/insecure/rs:fit:32:32/plain/photos/a.jpg").status == 200
        assert metric(unsigned, HOT) == 0


def test_a_preflight_needs_no_credentials_and_a_refusal_is_readable_by_the_page(server: ServerProcess):
    preflight = get(server, "/photos-private/a.jpg", "OPTIONS", Origin="https://a.example",
                    Access_Control_Request_Method="GET")
    assert (preflight.status, preflight.headers["Access-Control-Allow-Origin"]) == (204, "*")
    refused = get(server, "/photos-private/a.jpg", Origin="https://a.example")
    assert (refused.status, refused.headers["Access-Control-Allow-Origin"]) == (403, "*")


def test_uploads_and_purges_keep_their_own_tokens(server: ServerProcess):
    body = make_jpeg(seed=12)
    assert put(server, "/photos-private/up.jpg", body, len(body), {"Authorization": f"Bearer {READ_TOKEN}"})[0] == 401
    assert put(server, presigned("/photos-private/up.jpg", "PUT"), body, len(body))[0] == 201
    assert get(server, "/photos-private/up.jpg").status == 403
    assert get(server, "/photos-private/up.jpg", Authorization=f"Bearer {READ_TOKEN}").body == body
    assert get(server, "/photos-private/up.jpg", "PURGE").status == 401


def test_the_presign_command_prints_a_get_url_the_server_takes(server: ServerProcess, site: Site):
    env = {"DATA_PATH": str(site.data_path), "SIGNING_KEYS": SIGNING_KEY, "PATH": "/usr/bin:/bin"}
    printed = subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "presign", "GET", "photos-private/a.jpg",
                              "--expires", "15m", "--base-url", server.url("")], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    url = urlsplit(printed)
    expires = int(dict(part.split("=") for part in url.query.split("&"))["expires"])
    assert 14 * 60 <= expires - time.time() <= 15 * 60
    assert get(server, f"{url.path}?{url.query}").body == JPEG


def test_start_up_refuses_private_buckets_nothing_can_open(site: Site):
    env = {"DATA_PATH": str(site.data_path), "PATH": "/usr/bin:/bin", "PRIVATE_BUCKETS": "*-private"}
    refused = subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "config"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr == ("preview-proxy: PRIVATE_BUCKETS is set but nothing can open those buckets: set "
                              "SIGNING_KEYS (presigned URLs) or READ_TOKENS (bearer tokens)\n")
    shown = subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "config"], cwd=REPO,
                           env={**env, "READ_TOKENS": READ_TOKEN}, capture_output=True, text=True, timeout=60,
                           check=True).stdout
    assert "PRIVATE_BUCKETS = *-private" in shown and "READ_TOKENS = 1 token(s)" in shown
    assert READ_TOKEN not in shown


def test_refused_urls_reach_no_provider(moto: MotoS3, s3_proxy: TcpProxy, start_server: StartServer,
                                        tmp_path: Path):
    bucket = moto.create_bucket(f"pp-{uuid.uuid4().hex[:10]}-private")
    moto.put(bucket, "a.jpg", JPEG, "image/jpeg")
    links_file = tmp_path / "remote_links.yml"
    links_file.write_text(f"mine: {{provider: minio, endpoint: \"{s3_proxy.endpoint}\", access_key: {ACCESS_KEY}, "
                          f"secret_key: {SECRET_KEY}, region: {REGION}, buckets: [{bucket}]}}\n")
    server = start_server(**s3_env(s3_proxy.endpoint), REMOTE_LINKS_PATH=str(links_file), PRIVATE_BUCKETS="*-private",
                          READ_TOKENS=READ_TOKEN)
    before = len(s3_proxy.requests)
    paths = [f"/{bucket}/a.jpg", f"/links/s3/{bucket}/a.jpg", f"/image-converter/convert/{bucket}/a.jpg",
             f"/previews/insecure/rs:fit:32:32/plain/{bucket}/a.jpg",
             f"/previews/insecure/rs:fit:32:32/{b64_source(f's3://{bucket}/a.jpg')}"]
    for path in paths:
        for method, headers in [*WAYS_IN, ("GET", {"Authorization": "Bearer not-a-token-0123456789abcdef"})]:
            assert request(server.url(path), method, headers).status in (401, 403), (path, method, headers)
    assert len(s3_proxy.requests) == before, [r.target for r in s3_proxy.requests[before:]]
    # The control: the same original with a token is fetched through the counted proxy.
    opened = get(server, f"/{bucket}/a.jpg", Authorization=f"Bearer {READ_TOKEN}")
    assert (opened.status, opened.body) == (200, JPEG)
    assert len(s3_proxy.gets(f"/{bucket}/a.jpg")) >= 1


def test_patterns_are_names_or_globs_matched_without_case():
    settings = read_private_buckets_config({"PRIVATE_BUCKETS": " *-private,secret  team-[ab]"}, can_open=True)
    assert settings.patterns == ("*-private", "secret", "team-[ab]")
    matched = {name: settings.is_private(name) for name in (
        "photos-private", "PHOTOS-Private", "secret", "secrets", "private-photos", "team-a", "team-c")}
    assert matched == {"photos-private": True, "PHOTOS-Private": True, "secret": True, "secrets": False,
                       "private-photos": False, "team-a": True, "team-c": False}
    assert not read_private_buckets_config({}, can_open=False).is_private("anything")  # off by default


@pytest.mark.parametrize(("env", "reason"), [
    ({"PRIVATE_BUCKETS": "a/b"}, "PRIVATE_BUCKETS: 'a/b' is not a bucket name or glob"),
    ({"PRIVATE_BUCKETS": "x", "READ_TOKENS": "short"}, "READ_TOKENS: token #1 must be at least 16"),
    ({"PRIVATE_CACHE_CONTROL": "public, max-age=60"}, "PRIVATE_CACHE_CONTROL: must say private"),
    ({"PRIVATE_CACHE_CONTROL": "private, immutable"}, "PRIVATE_CACHE_CONTROL: must say private"),
    ({"PRIVATE_CACHE_CONTROL": "max-age=60"}, "PRIVATE_CACHE_CONTROL: must say private"),
])
def test_bad_settings_are_one_line_config_errors(env: dict[str, str], reason: str):
    with pytest.raises(ConfigError, match=re.escape(reason)):
        read_private_buckets_config(env, can_open=True)


def test_signing_keys_is_read_under_its_older_name_too():
    assert read_upload_config({"UPLOAD_SIGNING_KEYS": SIGNING_KEY}).signing_keys == (SIGNING_KEY.encode(),)
    assert read_upload_config({"SIGNING_KEYS": SIGNING_KEY, "UPLOAD_SIGNING_KEYS": SIGNING_KEY}).signing_keys == (
        SIGNING_KEY.encode(),)
    with pytest.raises(ConfigError, match="SIGNING_KEYS and UPLOAD_SIGNING_KEYS differ"):
        read_upload_config({"SIGNING_KEYS": SIGNING_KEY, "UPLOAD_SIGNING_KEYS": SIGNING_KEY + "x"})
    with pytest.raises(ConfigError, match="UPLOAD_SIGNING_KEYS: key #1"):
        read_upload_config({"UPLOAD_SIGNING_KEYS": "short"})


def test_without_presign_keeps_the_rest_of_the_query_as_sent():
    assert without_presign("page=2&expires=10&signature=a%2Bb") == "page=2"
    assert without_presign("expires=10&videoStreamIndex=1&signature=x") == "videoStreamIndex=1"
    assert without_presign("page=2&x=%20") == "page=2&x=%20"


def test_read_tokens_are_registered_as_secrets(tmp_path: Path):
    config = Config.from_env({"DATA_PATH": str(tmp_path), "PRIVATE_BUCKETS": "*-private", "READ_TOKENS": READ_TOKEN,
                              "SIGNING_KEYS": SIGNING_KEY})
    registry = SecretRegistry()
    register_config_secrets(config, registry)
    masked = registry.redact(f"Authorization: Bearer {READ_TOKEN}; key {SIGNING_KEY}")
    assert READ_TOKEN not in masked and SIGNING_KEY not in masked
    assert READ_TOKEN not in " ".join(config.describe().values())
