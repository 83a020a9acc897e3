"""One frame of a video as an upright RGB image, with PyAV (FFmpeg bundled in its wheel).

The file may be a local file or any seekable file-like object (proxy.tiers.range_file reads a provider's
object by ranges). FFmpeg reads only what it needs: the header (`moov`, wherever it lies), then the
packets from the keyframe at or before the frame to the frame itself.

`stream_index` counts video streams only (cover art, an "attached picture", is not counted), so 0 is
the first video stream even where an audio stream comes first in the file: that is what clients mean
when they send `videoStreamIndex=0` for a thumbnail.

Errors: a file FFmpeg can't read, a missing stream, a position past the end -> UnsupportedImage (415);
a frame over the pixel limit -> TooManyPixels (422); past the deadline -> RenderDeadlinePassed (504). An
error raised by the file itself (a provider failing mid-read) propagates unchanged, after PyAV is done.

FFmpeg's own log is off: PyAV installs a silent log callback when imported (`av.logging` level None),
and `quiet_ffmpeg_log` re-asserts it here, so a corrupt file never writes to stderr.
"""

import time
from fractions import Fraction

import av
import av.logging
from av.container import InputContainer
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image

from previews.errors import InvalidOption, PreviewError, RenderDeadlinePassed, TooManyPixels, UnsupportedImage
from previews.video.frame_index import frame_by_index
from previews.video.position import FramePosition
from previews.video.reader import GuardedFile, SeekableReader
from previews.video.seek import frame_at_time

# Display-matrix rotation (degrees counter-clockwise, as VideoFrame.rotation reads it) -> the turn that
# makes the frame upright. PIL's ROTATE_* turn counter-clockwise too.
_UPRIGHT = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


def quiet_ffmpeg_log() -> None:
    """Keep FFmpeg's log off (no per-request stderr noise); PyAV's import does the same."""
    av.logging.set_level(None)


quiet_ffmpeg_log()


def extract_frame(file: SeekableReader, position: FramePosition, stream_index: int, deadline: float,
                  max_pixels: int) -> Image.Image:
    """The frame of video stream `stream_index` at `position`, as an upright RGB image."""
    if stream_index < 0:
        raise InvalidOption(f"videoStreamIndex={stream_index}: expected 0 or more")
    guarded = GuardedFile(file)
    try:
        image = _extract(guarded, position, stream_index, deadline, max_pixels)
    except PreviewError:
        guarded.raise_failure()
        raise
    except Exception as error:  # PyAV raises FFmpegError subclasses and plain ValueErrors for damaged files
        guarded.raise_failure()
        raise UnsupportedImage(f"the video can't be decoded: {_describe(error)}") from None
    guarded.raise_failure()
    return image


def frame_size(file: SeekableReader, stream_index: int, max_pixels: int) -> tuple[int, int]:
    """The frame size that video stream `stream_index` declares, read from the container's header.

    Raises as extract_frame does; the file is left at its start for the extraction that follows.
    """
    if stream_index < 0:
        raise InvalidOption(f"videoStreamIndex={stream_index}: expected 0 or more")
    guarded = GuardedFile(file)
    try:
        with av.open(guarded, mode="r", metadata_errors="replace") as container:
            stream = _video_stream(container, stream_index)
            width, height = stream.codec_context.width, stream.codec_context.height
    except PreviewError:
        guarded.raise_failure()
        raise
    except Exception as error:  # as in extract_frame
        guarded.raise_failure()
        raise UnsupportedImage(f"the video can't be decoded: {_describe(error)}") from None
    guarded.raise_failure()
    _check_pixels(width, height, max_pixels)
    file.seek(0)
    return width, height


def _extract(file: GuardedFile, position: FramePosition, stream_index: int, deadline: float,
             max_pixels: int) -> Image.Image:
    with av.open(file, mode="r", metadata_errors="replace") as container:
        _check_deadline(deadline)
        stream = _video_stream(container, stream_index)
        _check_pixels(stream.codec_context.width, stream.codec_context.height, max_pixels)
        frame = _find_frame(container, stream, position, deadline)
        _check_pixels(frame.width, frame.height, max_pixels)
        return _upright(frame.to_image(), frame.rotation)


def _video_stream(container: InputContainer, stream_index: int) -> VideoStream:
    streams = [s for s in container.streams.video if not s.disposition & Disposition.attached_pic]
    if stream_index >= len(streams):
        raise UnsupportedImage(f"videoStreamIndex={stream_index}, but the file has {len(streams)} video stream(s)")
    return streams[stream_index]


def _find_frame(container: InputContainer, stream: VideoStream, position: FramePosition,
                deadline: float) -> VideoFrame:
    if position.kind == "frame":
        return frame_by_index(container, stream, int(position.value), deadline)
    if position.kind == "seconds":
        # No check against the declared duration: some files understate it (a variable frame rate with
        # B-frames), so a time is past the end only when decoding runs out of frames before it.
        offset = round(Fraction(position.value) / Fraction(stream.time_base or 1))
        return frame_at_time(container, stream, (stream.start_time or 0) + offset, deadline)
    duration = _duration_ticks(container, stream)
    if duration is None:
        raise UnsupportedImage("the video's duration is unknown: ask for <seconds>s or <frame>f instead of percent")
    if position.value > 100:
        raise UnsupportedImage(f"position {position} is past the end of the video")
    offset = round(Fraction(position.value) / 100 * duration)
    return frame_at_time(container, stream, (stream.start_time or 0) + offset, deadline)


def _duration_ticks(container: InputContainer, stream: VideoStream) -> int | None:
    """The stream's duration in its time base, or the container's where the stream doesn't say."""
    if stream.duration:
        return stream.duration
    if container.duration and stream.time_base:
        return round(Fraction(container.duration, av.time_base) / Fraction(stream.time_base))
    return None


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise TooManyPixels(f"video frames are {width}x{height} ({width * height / 1e6:.1f} MP), over the limit of "
                            f"{max_pixels / 1e6:g} MP")


def _check_deadline(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise RenderDeadlinePassed("video decoding passed its time limit")


def _upright(image: Image.Image, rotation: float) -> Image.Image:
    image = image if image.mode == "RGB" else image.convert("RGB")
    turn = _UPRIGHT.get(round(rotation / 90) * 90 % 360)
    return image.transpose(turn) if turn is not None else image


def _describe(error: Exception) -> str:
    if isinstance(error, av.FFmpegError) and error.strerror:
        return str(error.strerror)  # FFmpeg's own words, without the errno and the '<none>' file name
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
