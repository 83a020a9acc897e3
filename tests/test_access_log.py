"""Access lines and request ids through a real server: the hot lane's answers are logged like
aiohttp's (the default configuration, access log on, uses the lane), each line carries the id the
answer echoes in X-Request-ID, and a clean stop loses none of the lane's batched lines."""

import json
import re
from pathlib import Path

from tests.conftest import StartServer
from tests.support.http import fetch
from tests.support.previews_kit import metric, place, poll, smallest_file
from tests.support.server import ServerProcess

BUCKET, KEY = "photos", "access/cat.jpg"
HOT = "preview_proxy_hot_answers_total"
MADE_ID = re.compile(r"[0-9a-f]{32}")
# What differs from one request's line to the next: its time taken and its id.
_VARYING = re.compile(r" \d+\.\d{6}s | request_id=\S+")


def lane_count(server: ServerProcess) -> float:
    """How many answers the lane gave so far."""
    return metric(server, HOT, by="lane")


def access_line(server: ServerProcess, request_id: str) -> str:
    """The access line of the request with `request_id` (bounded wait: the lane writes in batches)."""
    return poll(lambda: next((line for line in list(server.log_lines)
                              if "aiohttp.access" in line and line.endswith(f" request_id={request_id}")), None),
                f"the access line of {request_id}")


def hot_preview(server: ServerProcess, data_path: Path, photos: list[Path], path: str) -> list[str]:
    """Ask for `path` until the lane answers it; the ids the requests sent, in order."""
    place(data_path, BUCKET, KEY, smallest_file(photos))
    sent = []
    for attempt in range(10):
        before = lane_count(server)
        sent.append(f"warm-{attempt}")
        assert fetch(server, path, {"X-Request-ID": sent[-1]})[0] == 200
        if lane_count(server) == before + 1:
            return sent
    raise AssertionError("the lane never answered the preview")


def test_lane_answers_are_logged_as_aiohttp_logs_them_with_their_request_ids(
        start_server: StartServer, data_path: Path, photos: list[Path]) -> None:
    server = start_server()  # the defaults: access log on, hot lane on
    path = f"/previews/q/rs:fit:70:70/plain/{BUCKET}/{KEY}?access-log"
    *_, by_handler, by_lane = hot_preview(server, data_path, photos, path)
    lane_before = lane_count(server)

    status, headers, body = fetch(server, path, {"X-Request-ID": "lane.1", "User-Agent": "access-test/1"})
    made_status, made_headers, _ = fetch(server, path, {"X-Request-ID": "not a sane id"}, method="HEAD")

    assert lane_count(server) == lane_before + 2
    assert (status, headers["X-Request-ID"]) == (200, "lane.1")
    assert made_status == 200 and MADE_ID.fullmatch(made_headers["X-Request-ID"])
    lane_line = access_line(server, "lane.1")
    assert f'"GET {path} HTTP/1.1" 200 {len(body)} ' in lane_line and '"HIT" "access-test/1"' in lane_line
    assert f'"HEAD {path} HTTP/1.1" 200 0 ' in access_line(server, made_headers["X-Request-ID"])
    # The last answer before the lane took over came from aiohttp's handler, from the same memory: its
    # line differs from the lane's in the time taken and the id alone.
    handler_line, lane_line = access_line(server, by_handler), access_line(server, by_lane)
    assert '"HIT"' in handler_line
    assert _VARYING.sub(" ", handler_line.split(" aiohttp.access: ")[1]) == \
        _VARYING.sub(" ", lane_line.split(" aiohttp.access: ")[1])


def test_a_clean_stop_writes_every_line_the_lane_kept(start_server: StartServer, data_path: Path,
                                                      photos: list[Path]) -> None:
    server = start_server()
    path = f"/previews/q/rs:fit:60:60/plain/{BUCKET}/{KEY}?clean-stop"
    hot_preview(server, data_path, photos, path)
    ids = [f"stop.{n}" for n in range(20)]
    for request_id in ids:
        assert fetch(server, path, {"X-Request-ID": request_id})[0] == 200

    server.stop()  # at once: the lines are still in the lane's batch, well within its second

    assert server.process.returncode == 0
    logged = [line for line in server.log_lines if "aiohttp.access" in line and " request_id=stop." in line]
    assert sorted(line.rsplit("=", 1)[1] for line in logged) == sorted(ids)


def test_every_answer_echoes_its_id_and_every_line_about_it_carries_it(start_server: StartServer) -> None:
    server = start_server(LOG_FORMAT="json")

    missing = fetch(server, "/photos/none.jpg", {"X-Request-ID": "err-404"})
    refused = fetch(server, "/previews/bad/plain/photos/none.jpg", {"X-Request-ID": "x" * 129})
    fetch(server, "/healthz?json-marker")

    assert (missing[0], missing[1]["X-Request-ID"]) == (404, "err-404")
    assert refused[0] >= 400 and MADE_ID.fullmatch(refused[1]["X-Request-ID"])
    poll(lambda: any("json-marker" in line for line in server.log_lines), "the marker's access line")
    records = [json.loads(line) for line in server.log_lines if line.startswith("{")]
    assert records and all(set(r) >= {"time", "severity", "logger", "pid", "message"} for r in records)
    by_id = {r.get("request_id"): r for r in records if r["logger"] == "aiohttp.access"}
    assert by_id["err-404"]["status"] == 404 and by_id["err-404"]["target"] == "/photos/none.jpg"
    assert by_id[refused[1]["X-Request-ID"]]["status"] == refused[0]
    # Lines other than JSON: only what is printed, not logged (the listening line).
    assert all(line.startswith("{") or line.startswith("preview-proxy ") for line in server.log_lines)


def test_workers_and_their_supervisor_write_json_alike(start_server: StartServer) -> None:
    server = start_server(workers=2, LOG_FORMAT="json")
    for n in range(6):
        fetch(server, f"/healthz?workers-{n}")
    poll(lambda: sum("workers-" in line for line in server.log_lines) == 6, "six access lines")

    records = [json.loads(line) for line in server.log_lines if not line.startswith("preview-proxy ")]
    supervisor = {r["pid"] for r in records if r["logger"] == "proxy.runtime.supervisor"}
    workers = {r["pid"] for r in records if r["logger"] == "aiohttp.access"}
    assert supervisor == {server.pid} and workers and server.pid not in workers
    assert all(r.get("request_id") for r in records if r["logger"] == "aiohttp.access")
