"""LOG_FORMAT and LOG_LEVEL as read, the two line forms with their request ids and masks, and the hot
lane's batched access lines, on real logging handlers writing to real streams."""

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from proxy.logs.access import access_fields, access_record
from proxy.logs.buffered_access import BufferedAccessLog
from proxy.logs.formats import JsonFormatter, TextFormatter
from proxy.logs.request_ids import REQUEST_ID, request_id_for
from proxy.runtime.log_redaction import RedactingFilter
from proxy.secrets.registry import MASK, SecretRegistry
from proxy.settings.errors import ConfigError
from proxy.settings.operations.logs import JSON, TEXT, read_log_config

SECRET = 'pa"ss\\wörd-7f3a9c'  # a quote, a backslash and a non-ASCII letter: each JSON-escaped or kept


@pytest.mark.parametrize(("env", "format_", "level"), [
    ({}, TEXT, logging.INFO),
    ({"LOG_FORMAT": "JSON", "LOG_LEVEL": "debug"}, JSON, logging.DEBUG),
    ({"IMGPROXY_LOG_FORMAT": "pretty", "IMGPROXY_LOG_LEVEL": "warn"}, TEXT, logging.WARNING),
    ({"IMGPROXY_LOG_FORMAT": "gcp"}, JSON, logging.INFO),
    ({"LOG_FORMAT": "text", "IMGPROXY_LOG_FORMAT": "json", "LOG_LEVEL": "error"}, TEXT, logging.ERROR),
])
def test_settings_are_read_with_imgproxy_names_as_aliases(env: dict[str, str], format_: str, level: int) -> None:
    config = read_log_config(env)
    assert (config.format, config.level) == (format_, level)


@pytest.mark.parametrize(("env", "named"), [
    ({"IMGPROXY_LOG_FORMAT": "structured"}, "IMGPROXY_LOG_FORMAT='structured'"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT='xml'"),
    ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL='verbose'"),
])
def test_an_unknown_value_is_one_line_naming_the_variable_and_the_accepted_ones(env: dict[str, str],
                                                                                 named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        read_log_config(env)
    assert str(raised.value).startswith(f"{named}: expected ") and "\n" not in str(raised.value)


@pytest.mark.parametrize("sent", ["abc", "A.b_c:d-e", "x" * 128])
def test_a_sane_request_id_is_kept(sent: str) -> None:
    assert request_id_for(sent) == sent


@pytest.mark.parametrize("sent", [None, "", "x" * 129, "a b", "a/b", "é", "a\tb"])
def test_any_other_is_replaced_by_a_new_one(sent: str | None) -> None:
    made = request_id_for(sent)
    assert made != sent and len(made) == 32 and int(made, 16) >= 0 and request_id_for(sent) != made


def _logger(formatter: logging.Formatter, registry: SecretRegistry, name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter(registry))
    logger = logging.getLogger(name)
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.DEBUG
    return logger, stream


@pytest.fixture
def registry() -> SecretRegistry:
    return SecretRegistry([SECRET])


@pytest.fixture
def in_request() -> Iterator[None]:
    token = REQUEST_ID.set("req-42")
    yield
    REQUEST_ID.reset(token)


def test_text_lines_carry_the_request_id_and_mask_secrets(registry: SecretRegistry, in_request: None) -> None:
    logger, stream = _logger(TextFormatter(with_pid=True), registry, "test.text")
    logger.warning("upstream said %s", SECRET)
    try:
        raise RuntimeError(f"with {SECRET}")
    except RuntimeError:
        logger.exception("failed")

    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(f"test.text: upstream said {MASK} request_id=req-42") and "[" in lines[0]
    assert lines[1].endswith("failed request_id=req-42") and f"RuntimeError: with {MASK}" in lines
    assert SECRET not in stream.getvalue()


def test_json_lines_are_one_object_each_with_the_id_and_every_form_of_a_secret_masked(
        registry: SecretRegistry, in_request: None) -> None:
    logger, stream = _logger(JsonFormatter(registry), registry, "test.json")
    logger.info("plain %s", SECRET)
    logger.handle(access_record(access_fields("127.0.0.1", "GET", "/p", "1.1", 200, 5, 0.001, "HIT", f"ua {SECRET}"),
                                "lane-7", 1_700_000_000.25))
    try:
        raise ValueError(SECRET)
    except ValueError:
        logger.error("oops", exc_info=True)

    text = stream.getvalue()
    plain, access, error = (json.loads(line) for line in text.splitlines())
    assert (plain["severity"], plain["logger"], plain["message"], plain["request_id"]) == (
        "INFO", "test.json", f"plain {MASK}", "req-42")
    assert access["request_id"] == "lane-7" and access["time"] == "2023-11-14T22:13:20.250+00:00"
    assert (access["status"], access["bytes"], access["cache"], access["user_agent"]) == (200, 5, "HIT", f"ua {MASK}")
    assert f"ValueError: {MASK}" in error["exception"]
    assert SECRET not in text and json.dumps(SECRET)[1:-1] not in text


def test_the_final_line_is_masked_even_where_the_record_was_not(registry: SecretRegistry) -> None:
    """A formatter on a handler without the filter (or a field the filter can't see) still masks."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter(registry=registry))
    logger = logging.getLogger("test.unfiltered")
    logger.handlers, logger.propagate = [handler], False
    logger.warning("raw %s", SECRET)
    assert stream.getvalue().rstrip().endswith(f"raw {MASK}")


def test_batched_lines_are_written_at_the_size_bound_and_on_flush(registry: SecretRegistry) -> None:
    logger, stream = _logger(TextFormatter(), registry, "test.batch")

    async def run() -> tuple[int, int, int]:
        access = BufferedAccessLog(logger, max_lines=3, flush_seconds=3600)
        for n in range(4):
            access.add((1_700_000_000.0, "10.0.0.1", "GET", f"/p{n}", 200, 10, 0.0001, "HIT", "agent", f"id-{n}"))
        after_bound = len(stream.getvalue().splitlines())
        access.flush()
        after_flush = len(stream.getvalue().splitlines())
        access.flush()  # nothing left: nothing written twice
        return after_bound, after_flush, len(stream.getvalue().splitlines())

    assert asyncio.run(run()) == (3, 4, 4)
    lines = stream.getvalue().splitlines()
    assert [line.rsplit("=", 1)[1] for line in lines] == ["id-0", "id-1", "id-2", "id-3"]
    assert '10.0.0.1 "GET /p3 HTTP/1.1" 200 10 0.000100s "HIT" "agent"' in lines[3]


def test_no_batched_line_is_written_above_info(registry: SecretRegistry) -> None:
    logger, stream = _logger(TextFormatter(), registry, "test.batch-level")
    logger.setLevel(logging.WARNING)

    async def run() -> None:
        access = BufferedAccessLog(logger, max_lines=1)
        access.add((1_700_000_000.0, "10.0.0.1", "GET", "/w", 200, 1, 0.0, "", "", "id-w"))
        access.flush()

    asyncio.run(run())
    assert stream.getvalue() == ""


def test_batched_lines_are_written_when_their_time_is_up(registry: SecretRegistry) -> None:
    logger, stream = _logger(TextFormatter(), registry, "test.batch-time")
    written = asyncio.Event()

    class Signalling(io.StringIO):
        def write(self, text: str) -> int:
            written.set()
            return super().write(text)

    stream = logger.handlers[0].stream = Signalling()  # type: ignore[attr-defined]

    async def run() -> str:
        access = BufferedAccessLog(logger, max_lines=100, flush_seconds=0.05)
        access.add((1_700_000_000.0, "10.0.0.1", "HEAD", "/t", 200, 0, 0.0, "", "", "id-t"))
        assert stream.getvalue() == ""  # kept, not yet written
        await asyncio.wait_for(written.wait(), 5)
        return stream.getvalue()

    text = asyncio.run(run())
    assert '"HEAD /t HTTP/1.1" 200 0 ' in text and '"-" "-"' in text


class _PassingFilter(logging.Filter):
    """A filter the batched writer does not know: its handler gets records, as logging gives them."""


@pytest.mark.parametrize("formatter", [TextFormatter, lambda registry: TextFormatter(True, registry), JsonFormatter],
                         ids=["text", "text-with-pid", "json"])
def test_batched_lines_made_without_records_are_the_records_lines(
        formatter: Callable[[SecretRegistry], logging.Formatter], registry: SecretRegistry) -> None:
    made_directly, direct = _logger(formatter(registry), registry, "test.batch-direct")
    through_records, recorded = _logger(formatter(registry), registry, "test.batch-records")
    through_records.handlers[0].addFilter(_PassingFilter())
    direct_formatter = made_directly.handlers[0].formatter
    assert isinstance(direct_formatter, TextFormatter | JsonFormatter)
    original, made = direct_formatter.access_line, []  # the lines the formatter made without a record

    def access_line(*args: Any, **kwargs: Any) -> str:
        made.append(original(*args, **kwargs))
        return made[-1]

    direct_formatter.access_line = access_line  # type: ignore[method-assign]
    lines = [
        # A secret in the target and the User-Agent, quotes, backslashes, a tab, no cache status, a HEAD.
        (1_700_000_000.0004, "10.0.0.1", "GET", f"/p?k={SECRET}", 200, 7328, 0.0000172, "HIT", f'a "b" \\ {SECRET}',
         "id-1"),
        (1_700_000_000.9996, "::1", "HEAD", "/p/%22x%5C", 200, 0, 1.23456789, "", "tab\there", "id-2"),
        (1_700_000_001.5, "-", "GET", "/x", 200, 1, 0.0, "MISS", "", ""),  # no id of its own: the context's
    ]

    async def run() -> None:
        token = REQUEST_ID.set("from-context")
        try:
            for logger in (made_directly, through_records):
                access = BufferedAccessLog(logger, max_lines=100)
                for line in lines:
                    access.add(line)
                access.flush()
        finally:
            REQUEST_ID.reset(token)

    asyncio.run(run())
    assert len(made) == 3  # not through records
    assert direct.getvalue() == recorded.getvalue()
    assert len(direct.getvalue().splitlines()) == 3 and SECRET not in direct.getvalue()
    assert "from-context" in direct.getvalue().splitlines()[2]
