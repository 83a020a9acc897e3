"""Whole objects from an http:// S3 endpoint come by a presigned GET whose body splice(2) moves into the
part file (proxy.storage.cloud.spliced_get), against moto; ranges, conditions and https stay on obstore.

The server-level behaviour (cut and stalled bodies, statuses, retries, secrets) is covered through the
fault-injecting TCP proxy in tests/test_upstream_faults.py, tests/test_s3_faults.py and
tests/test_provider_secrets.py, which all run this path: their S3 endpoints are http://.
"""

import asyncio
import os
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cache.entry import EntryMeta
from cache.fill import FILE_BODY_STEP, Fill
from proxy.storage.cloud.s3 import splices
from proxy.storage.cloud.spliced_get import MASKED_QUERY, spliced_get
from proxy.storage.config import StorageConfig
from proxy.storage.errors import ObjectNotFound, UpstreamStatus
from proxy.storage.provider import ByteSpan, NotModified, ObjectRef, ObjectStream, StorageProvider
from tests.support.backends import Backend, make_backend
from tests.support.tcp_proxy import TcpProxy

MIB = 1024 * 1024
# Not a multiple of a step, of the pipe or of a chunk: the last piece of each is a short one.
SIZE = 2 * FILE_BODY_STEP + 3 * MIB // 2 + 7
STALL_AFTER = 3 * MIB  # response bytes, headers included


@pytest.fixture
def s3(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh bucket on moto, its endpoint http://."""
    return make_backend("s3", request, tmp_path)


async def _whole(provider: StorageProvider, ref: ObjectRef) -> ObjectStream:
    stream = await provider.get(ref)
    assert isinstance(stream, ObjectStream)
    return stream


def _fill(part: Path, stream: ObjectStream) -> Fill:
    return Fill(part, EntryMeta(stream.info))


def test_a_whole_object_is_spliced_into_the_part_file_with_the_info_of_a_head(s3: Backend, tmp_path: Path) -> None:
    body = os.urandom(SIZE)
    s3.seed("big.bin", body, "application/x-test")
    committed: list[bool] = []

    async def scenario() -> None:
        provider = s3.provider()
        ref = ObjectRef(s3.bucket, "big.bin")
        stream = await _whole(provider, ref)
        assert stream.file_body is not None, "an http:// endpoint's whole object should be spliced"
        assert (stream.start, stream.end) == (0, SIZE)
        assert stream.info == await provider.head(ref), "the same size, ETag, date and type as obstore's HEAD"
        fill = _fill(tmp_path / "part", stream)

        async def commit() -> bool:
            committed.append(True)
            return True

        assert await fill.run(stream.file_body, commit)
        assert fill.written == SIZE
        await provider.close()

    asyncio.run(scenario())
    assert committed == [True]
    assert (tmp_path / "part").read_bytes() == body


def test_the_chunks_of_a_spliced_get_are_the_whole_body(s3: Backend) -> None:
    body = os.urandom(SIZE)
    s3.seed("big.bin", body, "application/octet-stream")

    async def scenario() -> list[bytes]:
        stream = await _whole(s3.provider(), ObjectRef(s3.bucket, "big.bin"))
        assert stream.file_body is not None
        return [chunk async for chunk in stream.chunks]

    chunks = asyncio.run(scenario())
    assert b"".join(chunks) == body
    assert max(len(chunk) for chunk in chunks) <= MIB, "chunks stay bounded, as obstore's"


def test_ranges_and_conditional_gets_stay_on_obstore(s3: Backend) -> None:
    body = os.urandom(100_000)
    s3.seed("small.bin", body, "application/octet-stream")

    async def scenario() -> None:
        provider = s3.provider()
        ref = ObjectRef(s3.bucket, "small.bin")
        ranged = await provider.get(ref, ByteSpan(10, 20))
        assert isinstance(ranged, ObjectStream) and ranged.file_body is None
        assert b"".join([chunk async for chunk in ranged.chunks]) == body[10:20]
        etag = (await provider.head(ref)).etag
        assert isinstance(await provider.get(ref, if_none_match=etag), NotModified)

    asyncio.run(scenario())


def test_only_plain_http_endpoints_splice(s3: Backend) -> None:
    assert splices(s3.config), s3.config.endpoint
    assert not splices(replace(s3.config, endpoint="https://s3.example.com")), "TLS is decrypted in user space"
    assert not splices(replace(s3.config, endpoint=None)), "AWS itself is https"
    switched_off = StorageConfig.from_env({**s3.env, "STORAGE_SPLICE": "false"}, Path(s3.env["DATA_PATH"]))
    assert not splices(switched_off), "STORAGE_SPLICE=false"
    assert switched_off.masked()["STORAGE_SPLICE"] == "false" and s3.config.masked()["STORAGE_SPLICE"] == "true"


def test_an_object_missing_is_not_found_without_a_second_request(s3: Backend) -> None:
    with TcpProxy(s3.upstream) as proxy:
        async def scenario() -> None:
            provider = s3.provider(endpoint=s3.endpoint_via(proxy.endpoint), retries=2)
            with pytest.raises(ObjectNotFound):
                await provider.get(ObjectRef(s3.bucket, "nope.bin"))

        asyncio.run(scenario())
        assert len(proxy.gets("/nope.bin")) == 1


def test_a_fill_cancelled_while_its_body_stalls_ends_at_once_and_leaves_no_part_file(
        s3: Backend, tmp_path: Path) -> None:
    s3.seed("stall.bin", os.urandom(SIZE), "application/octet-stream")
    part = tmp_path / "part"
    with TcpProxy(s3.upstream) as proxy:
        # The headers and about 3 MiB of the body, then silence: the fill can't finish.
        proxy.faults.stall_after_bytes = STALL_AFTER

        async def scenario() -> float:
            # A read timeout far longer than the test: only closing the body can end the blocked step.
            provider = s3.provider(endpoint=s3.endpoint_via(proxy.endpoint), read_timeout=60.0)
            stream = await _whole(provider, ObjectRef(s3.bucket, "stall.bin"))
            assert stream.file_body is not None
            fill = _fill(part, stream)
            running = asyncio.ensure_future(fill.run(stream.file_body, _never_committed))
            deadline = time.monotonic() + 20
            # Bytes in the part file: the fill is under way, and the stall will block it (a step's bytes are
            # announced when the step ends, so `written` may lag the file). Cancelling before or after the
            # step blocks, the step is left blocked unless closing the body wakes it.
            while not part.exists() or part.stat().st_size < MIB:
                assert time.monotonic() < deadline and not running.done(), "no bytes reached the part file"
                await asyncio.sleep(0.01)  # polling the fill's progress, bounded by the deadline above
            started = time.monotonic()
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
            return time.monotonic() - started

        assert asyncio.run(scenario()) < 5, "cancelling must not wait for the read timeout"
    assert not part.exists(), "a fill that did not finish leaves nothing behind"


async def _never_committed() -> bool:
    raise AssertionError("a cancelled fill must not commit")


def test_a_chunked_error_answer_is_quoted_at_its_last_chunk_not_at_the_timeout() -> None:
    """An upstream that answers 503 with a chunked body and keeps the connection open."""
    chunk = b"<Error>Slow Down; the query was X-Amz-Signature=S=1</Error>"  # echoed percent-decoded
    answer = (b"HTTP/1.1 503 Slow Down\r\nTransfer-Encoding: chunked\r\n\r\n"
              + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n")
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        connection, _ = listener.accept()
        held.append(connection)  # never closed before the test ends: only the last chunk can end the wait
        connection.recv(65536)
        connection.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/b/k.bin?X-Amz-Signature=S%3D1"
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamStatus) as raised:
            # Bounded here (the provider bounds it by STORAGE_READ_TIMEOUT): a wait for the connection's end fails.
            asyncio.run(asyncio.wait_for(spliced_get(url, connect_timeout=5, read_timeout=30), 10))
    finally:
        for connection in held:
            connection.close()
        listener.close()
    assert time.monotonic() - started < 5
    text = str(raised.value)
    assert text.startswith("GET /b/k.bin: 503 Slow Down: ") and "<Error>Slow Down" in text
    assert "S=1" not in text and "S%3D1" not in text and MASKED_QUERY in text, "the signed query is masked"
