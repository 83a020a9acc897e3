"""The frame on screen at a given time: seek to the keyframe at or before it, then decode forward.

Timestamps are in the stream's time base. Frames come out of the decoder in display order, so the
answer is the last frame whose pts is at or before the target, known as soon as the next one is past it.
"""

import time
from collections.abc import Iterable, Iterator

from av.container import InputContainer
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from previews.errors import RenderDeadlinePassed, UnsupportedImage

# Past the last frame by this many frame intervals, a time is past the end (not a rounding error).
END_TOLERANCE_FRAMES = 1.5


def stream_packets(container: InputContainer, stream: VideoStream, deadline: float) -> Iterator[Packet]:
    """The stream's packets from the current position, checking the deadline before each one."""
    for packet in container.demux(stream):
        if time.monotonic() > deadline:
            raise RenderDeadlinePassed("video decoding passed its time limit")
        yield packet


def decoded_frames(packets: Iterable[Packet]) -> Iterator[VideoFrame]:
    """Frames with a timestamp, in display order; the end-of-stream packet flushes the decoder."""
    for packet in packets:
        for frame in packet.decode():
            if isinstance(frame, VideoFrame) and frame.pts is not None:
                yield frame


def frame_at_time(container: InputContainer, stream: VideoStream, target: int, deadline: float) -> VideoFrame:
    """The frame on screen at `target`: the last one whose pts is at or before it.

    A demuxer may land on a keyframe shown after the target (one that seeks by decode time, when
    B-frames make it earlier than the display time); then the search starts again from the stream's
    start. A target before the first frame gets the first frame.
    """
    start = stream.start_time or 0
    for seek_to in dict.fromkeys((max(target, start), start)):  # the second only if it differs
        container.seek(seek_to, stream=stream, backward=True)
        first, chosen, at_end = _last_at_or_before(decoded_frames(stream_packets(container, stream, deadline)), target)
        if first is None:
            raise UnsupportedImage("no frame could be decoded at that position: the video is truncated or corrupt")
        if chosen is not None:
            break
    frame = chosen or first
    assert frame is not None and frame.pts is not None  # the loop ran, and decoded_frames yields pts
    if at_end and target > frame.pts + END_TOLERANCE_FRAMES * frame_ticks(stream, frame):
        raise UnsupportedImage(f"the position is past the end of the video (its last frame is at "
                               f"{float(frame.pts * (stream.time_base or 0)):.3f} s)")
    return frame


def frame_ticks(stream: VideoStream, frame: VideoFrame) -> float:
    """How long `frame` stays on screen, in the stream's time base (from the frame rate if it doesn't say)."""
    if frame.duration:
        return float(frame.duration)
    rate = stream.average_rate or stream.guessed_rate
    if not rate or not stream.time_base:
        return 0.0
    return float(1 / (rate * stream.time_base))


def _last_at_or_before(frames: Iterator[VideoFrame], target: int) -> tuple[VideoFrame | None, VideoFrame | None, bool]:
    """(the first frame, the last one at or before `target`, whether the stream ended first)."""
    first: VideoFrame | None = None
    chosen: VideoFrame | None = None
    for frame in frames:
        if first is None:
            first = frame
        assert frame.pts is not None  # decoded_frames yields only frames with a pts
        if frame.pts > target:
            return first, chosen, False
        chosen = frame
    return first, chosen, True
