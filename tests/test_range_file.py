"""ProviderRangeFile against moto's real S3: byte-exact reads, version pinning, timeouts, and video frames.

Each scenario runs the provider on an event loop and reads the file from a worker thread, as the
converter will: the file schedules each range fetch on the loop and waits for it.
"""

import asyncio
import io
import os
import random
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from previews.video.frame import extract_frame
from previews.video.position import parse_frame_position
from proxy.storage.config import StorageConfig
from proxy.storage.errors import OriginalChanged, ProviderTimeout
from proxy.storage.provider import ByteSpan, NotModified, ObjectInfo, ObjectRef, ObjectStream, StorageProvider
from proxy.storage.registry import build_provider
from proxy.tiers.range_file import BLOCK_SIZE, CACHED_BLOCKS, ProviderRangeFile
from tests.support.s3 import MotoS3, s3_env
from tests.support.video import VideoSpec, make_video, read_counter

T = TypeVar("T")
KEY = "originals/object.bin"
# Not a whole number of blocks, so the last block is short.
OBJECT_SIZE = 1024 * 1024 + 12_345
SMALL_CACHE = {"block_size": 4096, "cached_blocks": 8, "max_read_ahead": 4}


@pytest.fixture
def s3_provider(moto: MotoS3, tmp_path: Path) -> Callable[[], StorageProvider]:
    """Build the S3 provider (inside the scenario's event loop) as the server would from STORAGE_*."""
    env = {"DATA_PATH": str(tmp_path), **s3_env(moto.endpoint)}
    return lambda: build_provider(StorageConfig.from_env(env, tmp_path))


@pytest.fixture(scope="module")
def big_video() -> bytes:
    """5 s of 320x240 noise at 25 fps, a keyframe a second: some 4.5 MB, moov at the end."""
    return make_video(VideoSpec(frames=125, fps=25, size=(320, 240), gop=25, noise=True, crf=8))


def read_in_worker(make_provider: Callable[[], StorageProvider], ref: ObjectRef,
                   reading: Callable[[ProviderRangeFile], T], provider_wrapper: Callable[[Any], Any] = lambda p: p,
                   info: ObjectInfo | None = None, then: Callable[[], Awaitable[None]] | None = None,
                   options: dict[str, Any] | None = None) -> tuple[T, ProviderRangeFile]:
    """Open the object as a ProviderRangeFile on a fresh event loop and run `reading(file)` in a worker thread.

    `options` go to ProviderRangeFile; `then` runs on the loop after the reading, before the provider is closed.
    """

    async def scenario() -> tuple[T, ProviderRangeFile]:
        provider = make_provider()
        try:
            loop = asyncio.get_running_loop()
            opened = ProviderRangeFile(provider_wrapper(provider), ref, info or await provider.head(ref), loop,
                                       **(options or {}))
            result = await loop.run_in_executor(None, reading, opened)
            if then is not None:
                await then()
            return result, opened
        finally:
            await provider.close()

    return asyncio.run(scenario())


@pytest.mark.parametrize("options", [{}, SMALL_CACHE], ids=["default-blocks", "small-blocks"])
def test_random_reads_and_seeks_return_the_objects_bytes(moto: MotoS3, bucket: str, s3_provider: Any,
                                                         options: dict[str, int]) -> None:
    data = os.urandom(OBJECT_SIZE)
    moto.put(bucket, KEY, data)
    bound = options.get("cached_blocks", CACHED_BLOCKS) * options.get("block_size", BLOCK_SIZE)

    def reading(file: ProviderRangeFile) -> int:
        rng = random.Random(20240605)
        for _ in range(200):
            whence = rng.choice((io.SEEK_SET, io.SEEK_CUR, io.SEEK_END))
            target = rng.randrange(0, OBJECT_SIZE + 100)
            offset = {io.SEEK_SET: target, io.SEEK_CUR: target - file.tell(), io.SEEK_END: target - OBJECT_SIZE}[whence]
            assert file.seek(offset, whence) == target
            size = rng.choice((1, 17, 4096, 32 * 1024, rng.randrange(0, 100_000)))
            assert file.read(size) == data[target:target + size]
            assert file.tell() == min(target + size, max(target, OBJECT_SIZE))
            assert file.cached_bytes <= bound
        file.seek(0)
        assert file.read() == data  # read-all, through blocks far more than the cache holds
        return file.ranges_fetched

    ranges, file = read_in_worker(s3_provider, ObjectRef(bucket, KEY), reading, options=options)
    assert ranges == file.ranges_fetched > 0


def test_sequential_reads_grow_the_read_ahead_and_fetch_each_byte_once(moto: MotoS3, bucket: str,
                                                                       s3_provider: Any) -> None:
    data = os.urandom(OBJECT_SIZE)
    moto.put(bucket, KEY, data)

    def reading(file: ProviderRangeFile) -> bytes:
        pieces = []
        for _ in range(OBJECT_SIZE // 32_768 + 2):  # FFmpeg's read size; bounded loop
            piece = file.read(32_768)
            if not piece:
                break
            pieces.append(piece)
        return b"".join(pieces)

    read, file = read_in_worker(s3_provider, ObjectRef(bucket, KEY), reading)
    assert read == data
    assert file.bytes_fetched == OBJECT_SIZE
    # 17 blocks of 64 KiB, fetched as 1 + 2 + 4 + 8 + 2 of them: far fewer ranges than reads.
    assert file.ranges_fetched <= 5


def test_an_object_replaced_mid_read_raises_original_changed(moto: MotoS3, bucket: str, s3_provider: Any) -> None:
    first, second = os.urandom(OBJECT_SIZE), os.urandom(OBJECT_SIZE)
    moto.put(bucket, KEY, first)

    def reading(file: ProviderRangeFile) -> bytes:
        start = file.read(1000)
        moto.put(bucket, KEY, second)
        assert file.read(1000) == first[1000:2000]  # still the cached first block: the first version
        file.seek(OBJECT_SIZE // 2)
        with pytest.raises(OriginalChanged) as raised:
            file.read(1000)
        assert raised.value.status == 502
        assert raised.value.reason == "the original changed while it was read"
        return start

    start, _ = read_in_worker(s3_provider, ObjectRef(bucket, KEY), reading)
    assert start == first[:1000]


def test_a_hanging_provider_times_out_and_the_fetch_is_cancelled(moto: MotoS3, bucket: str,
                                                                 s3_provider: Any) -> None:
    moto.put(bucket, KEY, b"x" * 1000)
    hanging = _Hanging()

    def reading(file: ProviderRangeFile) -> None:
        started = time.monotonic()
        with pytest.raises(ProviderTimeout) as raised:
            file.read(10)
        assert raised.value.status == 504
        assert time.monotonic() - started < 5

    async def fetch_was_cancelled() -> None:
        # Before asyncio.run's shutdown, which would cancel a forgotten fetch anyway.
        await asyncio.wait_for(hanging.cancelled.wait(), timeout=5)

    read_in_worker(s3_provider, ObjectRef(bucket, KEY), reading, provider_wrapper=hanging.wrap,
                   options={"timeout": 0.3}, then=fetch_was_cancelled)
    assert hanging.cancelled.is_set()


def test_reading_on_the_event_loop_thread_is_refused(moto: MotoS3, bucket: str, s3_provider: Any) -> None:
    moto.put(bucket, KEY, b"x" * 1000)

    async def scenario() -> None:
        provider = s3_provider()
        file = ProviderRangeFile(provider, ObjectRef(bucket, KEY), await provider.head(ObjectRef(bucket, KEY)),
                                 asyncio.get_running_loop())
        with pytest.raises(RuntimeError, match="worker thread"):
            file.read(10)  # waiting here for the loop would hang it forever
        await provider.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("position", "frame"), [("50p", 62), ("10f", 10), ("4.5s", 112)])
def test_a_video_frame_through_ranges_fetches_a_fraction_of_the_file(moto: MotoS3, bucket: str, s3_provider: Any,
                                                                     big_video: bytes, position: str,
                                                                     frame: int) -> None:
    assert big_video.rindex(b"moov") > big_video.index(b"mdat")  # the header is at the end
    moto.put(bucket, "videos/noise.mp4", big_video, "video/mp4")

    def reading(file: ProviderRangeFile) -> int:
        image = extract_frame(file, parse_frame_position(position), 0, time.monotonic() + 60, 50_000_000)
        return read_counter(image)

    counter, file = read_in_worker(s3_provider, ObjectRef(bucket, "videos/noise.mp4"), reading)
    assert counter == frame
    assert file.bytes_fetched < 0.35 * len(big_video), f"fetched {file.bytes_fetched} of {len(big_video)} bytes"


def test_a_video_replaced_before_decoding_is_original_changed_not_415(moto: MotoS3, bucket: str, s3_provider: Any,
                                                                       big_video: bytes) -> None:
    """The provider's error comes out of extract_frame as it is: FFmpeg's failure to read is not the cause."""
    ref = ObjectRef(bucket, "videos/noise.mp4")
    old_etag = moto.put(bucket, ref.key, big_video, "video/mp4")
    moto.put(bucket, ref.key, big_video[:-1000], "video/mp4")
    stale = ObjectInfo(len(big_video), old_etag, 0.0, "video/mp4")

    def reading(file: ProviderRangeFile) -> None:
        with pytest.raises(OriginalChanged):
            extract_frame(file, parse_frame_position("10f"), 0, time.monotonic() + 60, 50_000_000)

    read_in_worker(s3_provider, ref, reading, info=stale)


class _Hanging:
    """A provider whose range GETs never answer; it notes that the waiting coroutine was cancelled."""

    def wrap(self, provider: StorageProvider) -> "_Hanging":
        """Stand in for `provider` (called on the scenario's loop, where the event belongs)."""
        self.provider_id = provider.provider_id
        self.cancelled = asyncio.Event()
        return self

    async def get(self, ref: ObjectRef, span: ByteSpan | None = None,
                  if_none_match: str | None = None) -> ObjectStream | NotModified:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")

    async def head(self, ref: ObjectRef) -> ObjectInfo:
        raise AssertionError("not used")

    async def put(self, ref: ObjectRef, chunks: AsyncIterable[bytes], content_type: str) -> None:
        raise AssertionError("not used")
