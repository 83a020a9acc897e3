"""The raw requests the hot-lane differential test sends: each case's bytes, and how they are sent.

A case is the bytes sent at once, or pieces sent one at a time. `{hot}` in a case stands for the
warmed preview's path, filled in per run. Origins: CORS runs on for ALLOWED and ALLOWED_WITH_PORT.
"""

WEBP = "image/webp,*/*"
ALLOWED = "http://allowed.test"
ALLOWED_WITH_PORT = "http://127.0.0.1:9"


def head(target: str = "", *lines: str, method: str = "GET", version: str = "HTTP/1.1", eol: str = "\r\n",
         host: bool = True) -> str:
    """A request head: the request line, a Host line unless `host` is False, `lines`, an empty line.
    An empty `target` stands for the warmed preview (filled in per run)."""
    fields = (["Host: t"] if host else []) + list(lines)
    return "".join(line + eol for line in (f"{method} {target or '{hot}'} {version}", *fields, ""))


# A case is the bytes sent at once, or pieces sent one at a time, each after the answers to the last
# (so the server reads them apart: a head arriving in pieces, as over a real network).
Case = str | bytes | tuple[str, ...]
CASES: dict[str, Case] = {
    # What the lane answers (each must still match aiohttp).
    "plain": head(),
    "head": head(method="HEAD"),
    "browser": head("", "User-Agent: Mozilla/5.0", "Accept: image/avif,image/webp,*/*", "Accept-Language: en",
                    "Accept-Encoding: gzip, br", "Referer: http://t/", "Cookie: a=b", "Sec-Fetch-Dest: image"),
    "webp": head("", f"Accept: {WEBP}"),
    "two-accepts": head("", "Accept: image/jpeg", f"Accept: {WEBP}"),
    "keep-alive": head("", "Connection: keep-alive"),
    "keep-alive-mixed-case": head("", "connection: Keep-Alive"),
    "proxy-connection-keep-alive": head("", "Proxy-Connection: keep-alive"),
    "lowercase-host": head("", "host: t", host=False),
    "duplicate-plain-header": head("", "X-Tag: a", "X-Tag: b", "Cookie: a", "Cookie: b"),
    "tab-in-value": head("", "X-Tab:\tvalue\t"),
    "empty-value": head("", "X-Empty:"),
    "token-name": head("", "X-!#$%&'*+.^_`|~: v"),
    "100-headers": head("", *(f"X-{i}: {i}" for i in range(98))),
    "pipelined": head() * 3,
    "pipelined-get-head": head() + head(method="HEAD") + head(),
    "hot-then-healthz": head() + head("/healthz") + head(),
    "healthz-then-hot": head("/healthz") + head(),
    "hot-then-not-found": head() + head("/previews/q/plain/photos/none.jpg") + head(),
    # Pipelined with something aiohttp refuses, in the same segment.
    "hot-then-garbage": head() + "XYZ\r\n\r\n",
    "hot-then-partial-garbage": head() + "GGG",
    "hot-then-bare-lf": head() + head(eol="\n"),
    "hot-then-missing-host": head() + head(host=False),
    "hot-then-duplicate-host": head() + head("", "Host: t"),
    "empty-line-between": head() + "\r\n" + head(),
    "leading-empty-line": "\r\n" + head(),
    "hot-then-partial-head": head() + head()[:-2],
    "partial-request-line": "GET {hot}",
    # Bodies: Content-Length and Transfer-Encoding.
    "content-length-0": head("", "Content-Length: 0"),
    "content-length-body": head("", "Content-Length: 5") + "hello" + head(),
    "content-length-short": head("", "Content-Length: 50") + "hello",
    "content-length-negative": head("", "Content-Length: -1"),
    "content-length-letters": head("", "Content-Length: x"),
    "content-length-twice-same": head("", "Content-Length: 0", "Content-Length: 0"),
    "content-length-twice-different": head("", "Content-Length: 0", "Content-Length: 5") + "hello",
    "chunked": head("", "Transfer-Encoding: chunked") + "5\r\nhello\r\n0\r\n\r\n" + head(),
    "chunked-and-length": head("", "Transfer-Encoding: chunked", "Content-Length: 5") + "5\r\nhello\r\n0\r\n\r\n",
    "transfer-encoding-identity": head("", "Transfer-Encoding: identity"),
    "transfer-encoding-gzip-chunked": head("", "Transfer-Encoding: gzip, chunked") + "0\r\n\r\n",
    "chunk-size-garbage": head("", "Transfer-Encoding: chunked") + "zz\r\nhello\r\n0\r\n\r\n",
    # Host.
    "missing-host": head(host=False),
    "missing-host-head": head(method="HEAD", host=False),
    "duplicate-host": head("", "Host: t"),
    "duplicate-host-different": head("", "Host: other"),
    "duplicate-host-case": head("", "HOST: t"),
    "duplicate-host-apart": head("", "Accept: */*", "host: t"),
    "empty-host": head("", "Host:", host=False),
    # Singleton headers aiohttp refuses twice.
    **{f"duplicate-{name.lower()}": head("", f"{name}: a", f"{name}: b")
       for name in ("User-Agent", "Content-Type", "Max-Forwards", "Content-Location", "Content-Range", "ETag",
                    "Server")},
    "single-content-type": head("", "Content-Type: image/jpeg"),
    "single-max-forwards": head("", "Max-Forwards: 3"),
    # Line syntax.
    "obs-fold": head("", "X-Folded: a", " b"),
    "obs-fold-tab": head("", "X-Folded: a", "\tb"),
    "obs-fold-host": head("", "Host: t", " t2", host=False),
    "bare-lf-everywhere": head(eol="\n"),
    "bare-lf-request-line": head().replace(" HTTP/1.1\r\n", " HTTP/1.1\n", 1),
    "bare-lf-header-line": head("", "X-A: 1").replace("X-A: 1\r\n", "X-A: 1\n"),
    "bare-lf-last-line": head()[:-2] + "\n",
    "bare-cr-in-value": head("", "X-A: 1\r2"),
    "double-cr": head("", "X-A: 1\r"),
    "space-before-colon": head("", "X-A : 1"),
    "no-colon": head("", "X-A 1"),
    "empty-name": head("", ": 1"),
    "space-in-name": head("", "Bad Name: x"),
    "leading-space-first-header": head("", " Host: t", host=False),
    "nul-in-value": head("", "X-A: a\x00b"),
    "del-in-value": head("", "X-A: a\x7fb"),
    "obs-text-in-value": head("", "X-A: caf\xe9"),
    "high-byte-in-name": head("", "X-\xe9: 1"),
    "long-value": head("", "X-Long: " + "a" * 8100),
    "too-long-value": head("", "X-Long: " + "a" * 8200),
    "too-long-target": head("/previews/" + "a" * 8200),
    "many-headers": head("", *(f"X-{i}: {i}" for i in range(130))),
    # Versions, methods and targets.
    "http-1.0": head(version="HTTP/1.0"),
    "http-1.0-keep-alive": head("", "Connection: keep-alive", version="HTTP/1.0"),
    "http-1.0-no-host": head(version="HTTP/1.0", host=False),
    "http-1.2": head(version="HTTP/1.2"),
    "http-2.0": head(version="HTTP/2.0"),
    "http-lowercase": head(version="http/1.1"),
    "http-0.9": "GET {hot}\r\n",
    "lowercase-get": head(method="get"),
    "lowercase-head": head(method="head"),
    "mixed-case-get": head(method="Get"),
    "post": head("", "Content-Length: 0", method="POST"),
    "options": head(method="OPTIONS"),
    "delete": head(method="DELETE"),
    "double-space": head().replace(" ", "  ", 1),
    "tab-separator": head().replace(" ", "\t", 1),
    "trailing-space": head().replace(" HTTP/1.1", " HTTP/1.1 ", 1),
    "fragment": head("{hot}#part"),
    "query": head("{hot}?"),
    "control-in-target": head("/previews/q/\x01"),
    "high-byte-in-target": head("/previews/q/\xe9"),
    "asterisk": head("*", method="OPTIONS"),
    "absolute-form": head("http://preview.test{hot}"),
    "absolute-form-head": head("http://preview.test:8080{hot}", method="HEAD"),
    "absolute-form-https": head("https://preview.test{hot}"),
    "absolute-form-pipelined": head("http://preview.test{hot}") + head() + head("http://preview.test{hot}"),
    "absolute-form-no-authority": head("http:{hot}"),
    "absolute-form-no-path": head("http://preview.test"),
    "absolute-form-webp": head("http://preview.test{hot}", f"Accept: {WEBP}"),
    # Headers that change what the answer depends on, or the connection.
    "connection-close": head("", "Connection: close"),
    "connection-close-pipelined": head("", "Connection: close") + head(),
    "connection-keep-alive-then-close": head("", "Connection: keep-alive", "Connection: close"),
    "connection-upgrade": head("", "Connection: upgrade", "Upgrade: websocket"),
    "upgrade-alone": head("", "Upgrade: h2c"),
    "proxy-connection-close": head("", "Proxy-Connection: close"),
    "proxy-connection-close-pipelined": head("", "Proxy-Connection: close") + head(),
    "expect-continue": head("", "Expect: 100-continue"),
    "expect-other": head("", "Expect: something"),
    "if-none-match-any": head("", "If-None-Match: *"),
    "if-modified-since": head("", "If-Modified-Since: Sat, 01 Jan 2101 00:00:00 GMT"),
    "range": head("", "Range: bytes=0-9"),
    "sec-websocket-key1": head("", "Sec-WebSocket-Key1: x"),
    "content-encoding": head("", "Content-Encoding: gzip"),
    "tls-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(20),
    "empty-line-only": "\r\n",
    # Heads in pieces.
    "split-request-line": ("GET {hot} HT", "TP/1.1\r\nHost: t\r\n\r\n"),
    "split-in-final-crlf": (head()[:-1], "\n"),
    "split-then-bare-lf": ("GET {hot} HTTP/1.1\r\nHost: t\r\n", "X-A: 1\n\r\n"),
    "split-then-duplicate-host": ("GET {hot} HTTP/1.1\r\nHost: t\r\n", "Host: t\r\n\r\n"),
    "split-then-obs-fold": ("GET {hot} HTTP/1.1\r\nHost: t\r\nX-A: a\r\n", " b\r\n\r\n"),
    "split-content-length-name": ("GET {hot} HTTP/1.1\r\nHost: t\r\nContent-Len", "gth: x\r\n\r\n"),
    "split-hot-then-garbage": (head(), "XYZ\r\n\r\n"),
    "split-hot-and-part-then-no-host": (head() + "GET {hot} HTTP/1.1\r\n", "X-A: 1\r\n\r\n"),
    "split-three-hot": (head() + head()[:20], head()[20:] + head()[:-3], head()[-3:]),
    # Origin: the CORS lines follow Date and Server, per request.
    "origin-allowed": head("", f"Origin: {ALLOWED}"),
    "origin-allowed-head": head("", f"Origin: {ALLOWED}", method="HEAD"),
    "origin-allowed-with-port": head("", f"Origin: {ALLOWED_WITH_PORT}"),
    "origin-other": head("", "Origin: http://other.test"),
    "origin-null": head("", "Origin: null"),
    "origin-empty": head("", "Origin:"),
    "origin-name-case": head("", f"oRIGIN: {ALLOWED}"),
    "origin-value-case": head("", f"Origin: {ALLOWED.upper()}"),
    "origin-no-space": head("", f"Origin:{ALLOWED}"),
    "origin-spaces-around": head("", f"Origin:   {ALLOWED}   "),
    "origin-tabs-around": head("", f"Origin:\t{ALLOWED}\t"),
    "origin-trailing-slash": head("", f"Origin: {ALLOWED}/"),
    "origin-prefix-of-allowed": head("", "Origin: http://allowed.tes"),
    "origin-twice-allowed-first": head("", f"Origin: {ALLOWED}", "Origin: http://other.test"),
    "origin-twice-other-first": head("", "Origin: http://other.test", f"Origin: {ALLOWED}"),
    "origin-apart": head("", f"Origin: {ALLOWED}", "Accept: */*", "Origin: http://other.test"),
    "origin-like-names": head("", f"X-Origin: {ALLOWED}", f"Origin-X: {ALLOWED}"),
    "origin-first-line": head("", f"Origin: {ALLOWED}", "Host: t", host=False),
    "origin-webp": head("", f"Accept: {WEBP}", f"Origin: {ALLOWED}"),
    "origin-browser": head("", "User-Agent: Mozilla/5.0", "Accept: image/avif,image/webp,*/*",
                           "Sec-Fetch-Mode: cors", "Sec-Fetch-Site: same-site", f"Origin: {ALLOWED}",
                           f"Referer: {ALLOWED}/page"),
    "origin-pipelined": head("", f"Origin: {ALLOWED}") + head("", "Origin: http://other.test") + head()
    + head("", f"Origin: {ALLOWED_WITH_PORT}"),
    "origin-if-none-match": head("", f"Origin: {ALLOWED}", "If-None-Match: *"),
    "origin-range": head("", f"Origin: {ALLOWED}", "Range: bytes=0-9"),
    "origin-absolute-form": head("http://preview.test{hot}", f"Origin: {ALLOWED}"),
    "origin-split-value": (f"GET {{hot}} HTTP/1.1\r\nHost: t\r\nOrigin: {ALLOWED[:9]}", f"{ALLOWED[9:]}\r\n\r\n"),
    "preflight": head("", f"Origin: {ALLOWED}", "Access-Control-Request-Method: GET",
                      "Access-Control-Request-Headers: range", method="OPTIONS"),
    "preflight-other": head("", "Origin: http://other.test", "Access-Control-Request-Method: GET",
                            method="OPTIONS"),
    "hot-then-preflight-then-hot": head("", f"Origin: {ALLOWED}")
    + head("", f"Origin: {ALLOWED}", "Access-Control-Request-Method: GET", method="OPTIONS")
    + head("", f"Origin: {ALLOWED}"),
    # X-Request-ID: echoed when sane (1 to 128 of A-Z a-z 0-9 . _ : -), else replaced by a made one
    # (made ones are blanked before comparing; these sent ones are never 32 hex digits).
    "request-id": head("", "X-Request-ID: trace-1.a_b:c"),
    "request-id-name-case": head("", "x-REQUEST-id: trace-2"),
    "request-id-spaces-around": head("", "X-Request-ID: \t trace-3 \t"),
    "request-id-128": head("", "X-Request-ID: " + "r" * 128),
    "request-id-129": head("", "X-Request-ID: " + "r" * 129),
    "request-id-space-inside": head("", "X-Request-ID: trace 4"),
    "request-id-slash": head("", "X-Request-ID: trace/5"),
    "request-id-empty": head("", "X-Request-ID:"),
    "request-id-twice": head("", "X-Request-ID: first-6", "X-Request-ID: second-6"),
    "request-id-twice-bad-first": head("", "X-Request-ID: bad id", "X-Request-ID: second-7"),
    "request-id-like-names": head("", "X-Request-ID-X: trace-8", "Request-ID: trace-8"),
    "request-id-pipelined": head("", "X-Request-ID: p-1") + head() + head("", "X-Request-ID: p-3"),
    "request-id-not-hot": head("/healthz", "X-Request-ID: healthz-9"),
    "request-id-split": ("GET {hot} HTTP/1.1\r\nHost: t\r\nX-Request-ID: tra", "ce-10\r\n\r\n"),
}
# What the pairs with CORS off and for any origin run: the lane's own answers, with and without Origin.
SHORT_CASES = ("plain", "head", "webp", "browser", "pipelined", "origin-allowed", "origin-other", "origin-webp",
               "origin-pipelined", "preflight", "hot-then-preflight-then-hot", "request-id", "request-id-pipelined")


def request_bytes(case: str | bytes, path: str) -> bytes:
    """The case's bytes, the warmed preview's path filled in."""
    hot = path.encode()
    return case.replace(b"{hot}", hot) if isinstance(case, bytes) else case.replace("{hot}", path).encode("latin-1")


def pieces(case: Case, path: str) -> list[bytes]:
    """The case as the pieces to send, the warmed preview's path filled in."""
    return [request_bytes(piece, path) for piece in (case if isinstance(case, tuple) else (case,))]
