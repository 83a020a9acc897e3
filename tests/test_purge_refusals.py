"""PURGE refused: off without ADMIN_TOKENS (403), no or wrong bearer token (401 with WWW-Authenticate),
and targets that name nothing purgeable (400); each a one-line answer, counted by outcome, no token logged."""

import pytest

from tests.conftest import StartServer
from tests.support.http import request
from tests.support.previews_kit import assert_one_line, metric
from tests.support.server import ServerProcess

TOKENS = "first-admin-token-0123456789,second-admin-token-0123456789"
GOOD = {"Authorization": "Bearer first-admin-token-0123456789"}


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    """A server on local storage with two admin tokens."""
    return start_server(ADMIN_TOKENS=TOKENS)


def test_purge_is_off_without_admin_tokens(start_server: StartServer):
    server = start_server()
    reply = request(server.url("/bucket/a.jpg"), "PURGE", GOOD)

    assert reply.status == 403
    assert assert_one_line(reply.body) == "PURGE is off: no ADMIN_TOKENS are configured"
    assert metric(server, "preview_proxy_purge_requests_total", outcome="disabled") == 1


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-admin-token-0123456789", "Bearer ",
                                           "Basic Zmlyc3QtYWRtaW4tdG9rZW4tMDEyMzQ1Njc4OQ==",
                                           "Bearer first-admin-token-012345678"])  # one character short
def test_a_missing_or_wrong_token_is_401_with_a_bearer_challenge(server: ServerProcess, authorization: str | None):
    reply = request(server.url("/bucket/a.jpg"), "PURGE", {"Authorization": authorization} if authorization else {})

    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert "ADMIN_TOKENS" in assert_one_line(reply.body)
    assert metric(server, "preview_proxy_purge_requests_total", outcome="unauthorized") == 1
    assert "admin-token" not in server.log_text()


@pytest.mark.parametrize(("path", "status"), [("/", 404), ("/bucket*", 404), ("/healthz", 405)])
def test_paths_of_one_segment_match_no_purge_route(server: ServerProcess, path: str, status: int):
    reply = request(server.url(path), "PURGE", GOOD)

    assert reply.status == status
    assert_one_line(reply.body)


@pytest.mark.parametrize(("path", "reason"), [
    ("/bucket/*", "PURGE of a whole bucket is refused"),  # decided: too costly a slip to allow
    ("/bucket/a%00b.jpg", "control characters"),
    ("/bucket/a/../b.jpg", "'.' or '..' segments"),
    ("/bad%20bucket/a.jpg", "bucket name"),
    ("/image-converter/convert/bucket/a.tif", "PURGE the original"),
    ("/previews/q/rs:nonsense:1/plain/bucket/a.jpg", "rs"),
])
def test_targets_that_name_nothing_purgeable_are_400(server: ServerProcess, path: str, reason: str):
    reply = request(server.url(path), "PURGE", GOOD)

    assert reply.status == 400
    assert reason in assert_one_line(reply.body)
    assert metric(server, "preview_proxy_purge_requests_total", outcome="purged") == 0


def test_other_methods_are_still_refused_and_get_is_unchanged(server: ServerProcess):
    assert request(server.url("/bucket/a.jpg"), "DELETE", GOOD).status == 405
    assert request(server.url("/bucket/missing.jpg")).status == 404
    # A purge of what was never cached answers 200 with zeros: there is nothing to tell apart.
    reply = request(server.url("/bucket/missing.jpg"), "PURGE", GOOD)
    assert (reply.status, reply.headers["Content-Type"].split(";")[0]) == (200, "application/json")
    assert b'"previews": 0' in reply.body
