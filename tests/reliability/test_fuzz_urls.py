"""Generated request targets against one real server: never a 5xx, never a traceback in its log.

The targets come from tests/reliability/url_grammar.py (previews, originals, links, conversions,
damaged and encoded every way), sent as raw bytes on a keep-alive connection. The server has local
storage, an `fs` link and an S3 link on moto, and runs with the hot lane on (ACCESS_LOG=false), so
an answer already in memory is asked for again and must come back the same.

`--fuzz-cases N` (default 2000) sets the number of targets, `--fuzz-seed S` the seed; the seed is
fixed by default so that a failure reproduces, and it is printed either way.
"""

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from tests.reliability.raw_client import RawClient
from tests.reliability.site import Site, build_site
from tests.reliability.url_grammar import KNOWN_CASES, targets
from tests.support.s3 import MotoS3
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, moto: MotoS3) -> Iterator[Site]:
    with TcpProxy(("127.0.0.1", moto.port)) as s3_proxy:
        yield build_site(tmp_path_factory.mktemp("fuzz"), moto, s3_proxy)


@pytest.fixture(scope="module")
def server(site: Site) -> Iterator[ServerProcess]:
    process = ServerProcess(site.env(ACCESS_LOG="false"), cwd=REPO)
    yield process
    process.stop()


def test_fuzzed_urls_never_get_a_5xx_or_a_traceback(
        server: ServerProcess, site: Site, pytestconfig: pytest.Config) -> None:
    cases, chosen_seed = pytestconfig.getoption("--fuzz-cases"), pytestconfig.getoption("--fuzz-seed")
    print(f"URL fuzzing: {cases} cases, seed {chosen_seed} (reproduce with --fuzz-seed {chosen_seed})")
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    statuses: dict[int, int] = {}

    with RawClient(host, int(port)) as client:
        def answer_below_500(target: bytes, method: str) -> None:
            answer = client.send(target, method)
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
            assert answer.status < 500, (f"seed {chosen_seed}", answer.status, answer.body[:200], _last_error(server))
            assert site.token.encode() not in answer.body and site.token not in answer.headers
            if answer.status == 200:  # again: from memory, by the hot lane for a preview
                again = client.send(target, method)
                assert (again.status, again.body) == (200, answer.body), f"seed {chosen_seed}"

        checked = answer_below_500
        for case in KNOWN_CASES:  # explicit examples: run first, every time, whatever the seed
            checked = example(target=case, method="GET")(checked)
        fuzz = given(target=targets(site.listed), method=st.sampled_from(["GET", "GET", "GET", "HEAD"]))(checked)
        settings(max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck))(
            seed(chosen_seed)(fuzz))()

    print(f"statuses: {dict(sorted(statuses.items()))}, {client.connections} connection(s)")
    assert sum(statuses.values()) >= cases
    assert 200 in statuses and 400 in statuses and 404 in statuses, statuses  # the grammar reaches each
    server.stop()  # every log line is in once the process has exited
    assert server.process.returncode == 0
    log = server.log_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]


def _last_error(server: ServerProcess) -> str:
    """The server's log from its first error line on (the cause of a 5xx), for the failure message."""
    lines = list(server.log_lines)
    starts = [index for index, line in enumerate(lines) if "ERROR" in line or "Traceback" in line]
    return "\n".join(lines[starts[0]:starts[0] + 40]) if starts else "(no error in the log)"

