"""The peers benchmark's report pieces that a run can't check by itself: reading wrk's output (the request
count the access-log check relies on), a run of some workloads writing a docs section of its own, and the
targets listed only when measured."""

from pathlib import Path

import pytest

from tests.benchmarks.harness import BenchmarkError
from tests.benchmarks.peer_report import NGINX, PP, replace_marked_section, targets_text
from tests.benchmarks.peer_workloads import parse_wrk
from tests.benchmarks.peers import wait_for_access_lines

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8080/x
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.20ms  40.00ms   90.00%
    Req/Sec    12.00k     1.00k   14.00k    70.00%
  Latency Distribution
     50%    1.80ms
     75%    2.50ms
     90%    3.10ms
     99%    9.40ms
  238901 requests in 10.01s, 1.23GB read
Requests/sec:  23866.23
Transfer/sec:    126.01MB
"""


def test_wrk_output_gives_the_rate_the_latencies_and_the_requests_answered() -> None:
    sample = parse_wrk(WRK_OUTPUT)
    assert sample == {"rps": 23866.23, "p50": 1.8, "p99": 9.4, "requests": 238901}


def test_a_run_of_some_workloads_gets_a_section_after_the_full_run_and_replaces_it_next_time(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("intro\n<!-- peers-benchmark:begin -->\nfull run\n<!-- peers-benchmark:end -->\n\n## next\n")

    replace_marked_section(doc, ["first W1 run"], "peers-benchmark-w1")
    replace_marked_section(doc, ["second W1 run"], "peers-benchmark-w1")

    text = doc.read_text()
    assert "full run" in text and "second W1 run" in text and "first W1 run" not in text
    assert text.index("<!-- peers-benchmark:end -->") < text.index("<!-- peers-benchmark-w1:begin -->") < text.index(
        "## next")
    (tmp_path / "bare.md").write_text("no markers\n")
    with pytest.raises(SystemExit):
        replace_marked_section(tmp_path / "bare.md", ["x"], "peers-benchmark-w1")


def test_only_the_targets_a_run_measured_are_listed() -> None:
    sample = {"rps": 1.0, "p50": 1.0, "p99": 1.0}
    lines = targets_text({"W1": {NGINX: [sample], PP: [{**sample, "rps": 0.5}]}})
    assert lines == ["- W1 hits >= 0.65x nginx's requests/s: 0.50: **not met**"]


def test_a_peak_rss_target_gives_both_sides_figures_in_each_repetition() -> None:
    ours = [{"rps": 1.0, "p99": 1.0, "rss_mib": mib} for mib in (376.0, 480.0, 366.0)]
    theirs = [{"rps": 1.0, "p99": 1.0, "rss_mib": mib} for mib in (392.0, 393.0, 390.0)]
    lines = targets_text({"W3": {NGINX: theirs, PP: ours}})
    assert [line for line in lines if "RSS" in line] == [
        "- W3 peak RSS <= nginx's: 0.96 (0.96, 1.22, 0.94); MiB in each repetition: preview-proxy 376, 480, 366; "
        "nginx 392, 393, 390: met"]


def test_access_lines_are_counted_by_request_path_and_too_few_fail_the_run(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text('127.0.0.1 - - [04/Dec/2026] "GET /resize/300/a.jpg HTTP/1.1" 200 5120\n' * 3
                   + '127.0.0.1 - - [04/Dec/2026] "GET /resize/300/b.jpg HTTP/1.1" 200 5120\n'
                   + "INFO aiohttp.access: 127.0.0.1 \"GET /resize/300/a.jpg HTTP/1.1\" 200 5120 0.000031s\n")

    assert wait_for_access_lines(log, "/resize/300/a.jpg", 4) == 4
    with pytest.raises(BenchmarkError, match="4 access lines"):
        wait_for_access_lines(log, "/resize/300/a.jpg", 5, timeout=0.3)
