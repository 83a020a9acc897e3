"""Video frames by index, time and percent, read back from a counter drawn in every frame.

The videos are made here with PyAV (tests/support/video.py): 3 s at 25 fps, a keyframe every 12
frames, B-frames on (libx264's default), so most targets are not keyframes and every seek lands on
a keyframe before the target. The open-GOP video has B-frames decoded after a keyframe but shown
before it, which a frame count must place before that keyframe. Matroska indexes keyframes only,
so a frame index there goes by the frame rate.
"""

import io
import time
from collections.abc import Callable

import pytest
from PIL import Image

from previews.errors import InvalidOption, PreviewError, RenderDeadlinePassed, TooManyPixels, UnsupportedImage
from previews.video.frame import extract_frame
from previews.video.position import FramePosition, parse_frame_position
from tests.support.video import VideoSpec, make_video, read_counter

FPS = 25
FRAMES = 75
GOP = 12
NO_PIXEL_LIMIT = 50_000_000
SECOND_STREAM_OFFSET = 100
# A variable frame rate: gaps of 20 to 140 ms, no two alike in a row.
VFR_TIMES_MS = tuple(sum((20, 60, 140, 40, 100)[i % 5] for i in range(n)) for n in range(30))

Extract = Callable[..., Image.Image]


@pytest.fixture(scope="module")
def videos() -> dict[str, bytes]:
    """Each test video, made once: moov at the end (PyAV's default) and at the start, and the odd ones."""
    specs = {
        "moov-at-end": VideoSpec(frames=FRAMES, fps=FPS, gop=GOP),
        "faststart": VideoSpec(frames=FRAMES, fps=FPS, gop=GOP, faststart=True),
        "open-gop": VideoSpec(frames=FRAMES, fps=FPS, gop=GOP, open_gop=True),
        "matroska": VideoSpec(frames=FRAMES, fps=FPS, gop=GOP, container_format="matroska"),
        "two-streams": VideoSpec(frames=FRAMES, fps=FPS, gop=GOP, counter_offsets=(0, SECOND_STREAM_OFFSET)),
        "audio-first": VideoSpec(frames=FRAMES, fps=FPS, gop=GOP, audio_first=True),
        "vfr": VideoSpec(frames=len(VFR_TIMES_MS), gop=GOP, frame_times_ms=VFR_TIMES_MS),
        # Noise makes a file of some 400 KB, read by FFmpeg in many 32 KiB pieces (the others fit in one).
        "noisy": VideoSpec(frames=FRAMES, fps=FPS, gop=GOP, size=(160, 120), noise=True),
        "noisy-faststart": VideoSpec(frames=FRAMES, fps=FPS, gop=GOP, size=(160, 120), noise=True, faststart=True),
    }
    return {name: make_video(spec) for name, spec in specs.items()}


def frame_of(data: bytes, position: str, stream_index: int = 0, *, seconds: float = 30.0,
             max_pixels: int = NO_PIXEL_LIMIT) -> Image.Image:
    """extract_frame on an in-memory copy of `data`, as the converter calls it."""
    return extract_frame(io.BytesIO(data), parse_frame_position(position), stream_index,
                         time.monotonic() + seconds, max_pixels)


@pytest.mark.parametrize(("text", "expected"), [
    ("33p", FramePosition("percent", 33)),
    ("12.5s", FramePosition("seconds", 12.5)),
    ("120f", FramePosition("frame", 120)),
    ("0f", FramePosition("frame", 0)),
    ("0.04s", FramePosition("seconds", 0.04)),
    ("100p", FramePosition("percent", 100)),
])
def test_positions_parse(text: str, expected: FramePosition) -> None:
    assert parse_frame_position(text) == expected
    assert parse_frame_position(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "33", "p", "-1f", "1.5f", "1e3s", "infs", "nanp", "12.5x", "12,5s", " 3f",
                                  "3f ", "0x10f", "1234567890123f"])
def test_malformed_positions_are_400(text: str) -> None:
    with pytest.raises(InvalidOption) as raised:
        parse_frame_position(text)
    assert raised.value.status == 400
    assert "\n" not in raised.value.reason


@pytest.mark.parametrize("layout", ["moov-at-end", "faststart", "open-gop", "matroska"])
@pytest.mark.parametrize("index", [0, 1, 5, 11, 12, 13, 23, 24, 37, 50, 61, 73, FRAMES - 1])
def test_frame_index_gives_exactly_that_frame(videos: dict[str, bytes], layout: str, index: int) -> None:
    image = frame_of(videos[layout], f"{index}f")
    assert image.mode == "RGB"
    assert image.size == (64, 48)
    assert read_counter(image) == index


@pytest.mark.parametrize("layout", ["moov-at-end", "faststart", "open-gop", "matroska"])
@pytest.mark.parametrize(("seconds", "index"), [
    (0, 0), (0.04, 1), (0.039, 0), (0.5, 12), (0.47, 11), (1.3, 32), (1.999, 49), (2.0, 50), (2.96, 74), (3.0, 74),
])
def test_seconds_give_the_frame_on_screen(videos: dict[str, bytes], layout: str, seconds: float, index: int) -> None:
    assert read_counter(frame_of(videos[layout], f"{seconds}s")) == index


@pytest.mark.parametrize("layout", ["moov-at-end", "faststart", "matroska"])
@pytest.mark.parametrize("percent", [0, 10, 33, 50, 66.6, 99, 100])
def test_percent_of_the_duration(videos: dict[str, bytes], layout: str, percent: float) -> None:
    expected = min(int(percent / 100 * FRAMES), FRAMES - 1)  # the frame on screen at that instant
    assert read_counter(frame_of(videos[layout], f"{percent}p")) == expected


@pytest.mark.parametrize("position", ["0f", "13f", "37f", "74f", "1.3s", "50p"])
def test_video_stream_index_picks_among_video_streams(videos: dict[str, bytes], position: str) -> None:
    first = read_counter(frame_of(videos["two-streams"], position, 0))
    second = read_counter(frame_of(videos["two-streams"], position, 1))
    assert second == first + SECOND_STREAM_OFFSET
    assert first == read_counter(frame_of(videos["moov-at-end"], position))


def test_stream_index_0_is_the_first_video_stream_even_after_an_audio_stream(videos: dict[str, bytes]) -> None:
    assert read_counter(frame_of(videos["audio-first"], "30f", 0)) == 30
    with pytest.raises(UnsupportedImage, match="1 video stream"):
        frame_of(videos["audio-first"], "30f", 1)


@pytest.mark.parametrize("index", range(len(VFR_TIMES_MS)))
def test_variable_frame_rate_frame_index_is_exact(videos: dict[str, bytes], index: int) -> None:
    assert read_counter(frame_of(videos["vfr"], f"{index}f")) == index


@pytest.mark.parametrize("milliseconds", [0, 19, 20, 79, 80, 219, 220, 500, 1234, VFR_TIMES_MS[-1]])
def test_variable_frame_rate_time_gives_the_frame_on_screen(videos: dict[str, bytes], milliseconds: int) -> None:
    on_screen = max(i for i, shown_at in enumerate(VFR_TIMES_MS) if shown_at <= milliseconds)
    assert read_counter(frame_of(videos["vfr"], f"{milliseconds / 1000}s")) == on_screen


@pytest.mark.parametrize(("rotation", "white_side"), [(90, "left"), (180, "bottom"), (270, "right"), (-90, "right")])
def test_rotation_metadata_is_applied(rotation: int, white_side: str) -> None:
    # Frame 0 of offset 255: the counter band (the top half) is all white, the rest grey.
    data = make_video(VideoSpec(frames=3, fps=FPS, size=(64, 48), counter_offsets=(255,), rotation=rotation))
    image = frame_of(data, "0f").convert("L")
    assert image.size == ((48, 64) if rotation % 180 else (64, 48))
    width, height = image.size
    sides = {"left": (width // 8, height // 2), "right": (width * 7 // 8, height // 2),
             "top": (width // 2, height // 8), "bottom": (width // 2, height * 7 // 8)}
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[white_side]
    assert _grey(image, sides[white_side]) > 200
    assert 90 < _grey(image, sides[opposite]) < 170  # the grey half


@pytest.mark.parametrize("position", ["200p", "100.5p", "99s", "3.1s", "75f", "1000000f"])
def test_positions_past_the_end_are_415(videos: dict[str, bytes], position: str) -> None:
    with pytest.raises(UnsupportedImage) as raised:
        frame_of(videos["moov-at-end"], position)
    assert raised.value.status == 415
    assert "past the end" in raised.value.reason


def test_missing_stream_index_is_415(videos: dict[str, bytes]) -> None:
    with pytest.raises(UnsupportedImage, match=r"videoStreamIndex=5, but the file has 2 video stream") as raised:
        frame_of(videos["two-streams"], "3f", 5)
    assert raised.value.status == 415


def test_negative_stream_index_is_400(videos: dict[str, bytes]) -> None:
    with pytest.raises(InvalidOption):
        frame_of(videos["moov-at-end"], "3f", -1)


@pytest.mark.parametrize("damage", ["moov-at-end cut in half", "faststart cut in half", "garbage", "empty",
                                    "zeroed packets"])
def test_damaged_videos_are_415_with_one_line(videos: dict[str, bytes], damage: str,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    data = _damaged(videos, damage)
    with pytest.raises(UnsupportedImage) as raised:
        frame_of(data, "70f")  # in the half that a cut removed
    assert raised.value.status == 415
    assert raised.value.reason and "\n" not in raised.value.reason
    # FFmpeg's log is off: nothing on stderr (or stdout) for a damaged file.
    assert capfd.readouterr() == ("", "")


def test_deadline_already_passed_is_504(videos: dict[str, bytes]) -> None:
    with pytest.raises(RenderDeadlinePassed) as raised:
        frame_of(videos["moov-at-end"], "40f", seconds=-1)
    assert raised.value.status == 504


def test_deadline_passing_while_reading_is_504(videos: dict[str, bytes]) -> None:
    """Sample data far into the file stalls (as a far provider might) after the container is open.

    Opening reads the header (moov, at the end) and the first 32 KiB of samples (FFmpeg probes them);
    frame 40's keyframe lies some 200 KB in, so the stall comes while demuxing, not while opening.
    """
    data = videos["noisy"]
    deadline = time.monotonic() + 2.0
    slow = _Stalling(data, header_offset=data.rindex(b"moov") - 4, stall_from=64 * 1024, until=deadline)
    with pytest.raises(RenderDeadlinePassed) as raised:
        extract_frame(slow, parse_frame_position("40f"), 0, deadline, NO_PIXEL_LIMIT)
    assert raised.value.status == 504
    assert slow.stalled, "no read stalled: the test proves nothing"


def test_frames_over_the_pixel_limit_are_422(videos: dict[str, bytes]) -> None:
    with pytest.raises(TooManyPixels) as raised:
        frame_of(videos["moov-at-end"], "3f", max_pixels=64 * 48 - 1)
    assert raised.value.status == 422
    assert read_counter(frame_of(videos["moov-at-end"], "3f", max_pixels=64 * 48)) == 3


def test_the_files_own_error_propagates_unchanged(videos: dict[str, bytes], capfd: pytest.CaptureFixture[str]) -> None:
    """An error raised by the file (a provider failing mid-read) is not turned into a 415, nor printed."""

    class Failing(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 2000:
                raise LookupError("the provider went away")
            return super().read(size)

    with pytest.raises(LookupError, match="went away"):
        extract_frame(Failing(videos["noisy-faststart"]), parse_frame_position("60f"), 0, time.monotonic() + 30,
                      NO_PIXEL_LIMIT)
    # PyAV must hold no stashed exception for this thread: the next video decodes normally.
    assert read_counter(frame_of(videos["noisy-faststart"], "60f")) == 60
    assert capfd.readouterr() == ("", "")  # no "PyAV library exception being dropped" traceback


def test_errors_are_preview_errors(videos: dict[str, bytes]) -> None:
    """Every refusal carries its status, so the middleware renders it (never a 500)."""
    for position, stream in (("75f", 0), ("3f", 9)):
        with pytest.raises(PreviewError):
            frame_of(videos["moov-at-end"], position, stream)


class _Stalling(io.BytesIO):
    """Once the header has been read, reads from `stall_from` on wait until the clock passes `until`."""

    def __init__(self, data: bytes, header_offset: int, stall_from: int, until: float) -> None:
        super().__init__(data)
        self.header_offset, self.stall_from, self.until = header_offset, stall_from, until
        self.header_read = self.stalled = False

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.header_offset:
            self.header_read = True
        elif self.header_read and self.tell() >= self.stall_from:
            self.stalled = True
            for _ in range(1000):  # bounded: `until` is two seconds away
                if time.monotonic() > self.until:
                    break
                time.sleep(0.01)
        return super().read(size)


def _grey(image: Image.Image, xy: tuple[int, int]) -> float:
    value = image.getpixel(xy)
    assert isinstance(value, int | float)
    return value


def _damaged(videos: dict[str, bytes], damage: str) -> bytes:
    if damage == "garbage":
        return bytes((i * 7919 + 13) % 251 for i in range(20_000))
    if damage == "empty":
        return b""
    if damage == "zeroed packets":
        return _zero_the_packets(videos["moov-at-end"])
    whole = videos["faststart" if damage.startswith("faststart") else "moov-at-end"]
    return whole[:len(whole) // 2]


def _zero_the_packets(data: bytes) -> bytes:
    """The same MP4 with its sample data (the mdat payload) overwritten by zeros."""
    start = data.index(b"mdat") + 4
    end = data.index(b"moov") - 4
    return data[:start] + bytes(end - start) + data[end:]
