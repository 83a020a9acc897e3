"""Frame N of a video stream, counted from 0 at the stream's start, in display order.

How an index becomes a place in the file:
- **With a complete sample index** (MP4/MOV: the demuxer lists every sample with its decode time,
  keyframe and discard flags) the answer is exact for constant and variable frame rates alike, with no
  arithmetic on rates. Seek to the decode time of the N-th sample: since no frame is shown before it
  is decoded, the N-th display time is at or after the N-th decode time, so the keyframe the demuxer
  lands on is shown at or before frame N. That keyframe's display index is the number of shown samples
  decoded before it, plus the "leading" pictures decoded after it but shown before it (an open GOP).
  Decode forward and count frames from the keyframe on.
- **Without one** (Matroska/WebM cues list only keyframes, MPEG-TS lists nothing), frame N is the
  frame on screen at start + (N + 0.5) / average frame rate: exact for a constant frame rate, the
  nearest frame for a variable one.
"""

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from itertools import accumulate, chain

from av.container import InputContainer
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from previews.errors import UnsupportedImage
from previews.video.seek import decoded_frames, frame_at_time, stream_packets


@dataclass(frozen=True)
class SampleTimeline:
    """Every sample of a stream in decode order: its decode time, and how many shown samples precede it."""

    decode_times: list[int]
    shown_before: list[int]  # shown_before[i]: samples before i that are not discarded (edit lists)
    frame_count: int

    @classmethod
    def of(cls, stream: VideoStream) -> "SampleTimeline | None":
        """The stream's timeline, or None unless the index lists every sample (as MP4's does)."""
        entries = list(stream.index_entries or [])
        if stream.frames <= 0 or len(entries) < stream.frames:
            return None
        shown = [0 if entry.is_discard else 1 for entry in entries]
        return cls([entry.timestamp for entry in entries], [0, *accumulate(shown)][:-1], sum(shown))

    def shown_before_sample(self, decode_time: int) -> int | None:
        """How many shown samples are decoded before the one at `decode_time` (None: no such sample)."""
        position = bisect.bisect_left(self.decode_times, decode_time)
        if position == len(self.decode_times) or self.decode_times[position] != decode_time:
            return None
        return self.shown_before[position]


def frame_by_index(container: InputContainer, stream: VideoStream, index: int, deadline: float) -> VideoFrame:
    """Frame `index` (display order, from 0); past the end is an UnsupportedImage."""
    timeline = SampleTimeline.of(stream)
    if timeline is None:
        return _by_frame_rate(container, stream, index, deadline)
    if index >= timeline.frame_count:
        raise UnsupportedImage(f"frame {index} is past the end: the video has {timeline.frame_count} frames")
    # The second seek, to the first sample, is for a demuxer that lands after the frame (or elsewhere).
    for seek_to in (timeline.decode_times[index], timeline.decode_times[0]):
        frame = _count_from_keyframe(container, stream, timeline, index, seek_to, deadline)
        if frame is not None:
            return frame
    return _by_frame_rate(container, stream, index, deadline)


def _count_from_keyframe(container: InputContainer, stream: VideoStream, timeline: SampleTimeline, index: int,
                         seek_to: int, deadline: float) -> VideoFrame | None:
    """Seek, then count frames to `index`; None if the landing keyframe can't be placed or is past it."""
    container.seek(seek_to, stream=stream, backward=True)
    packets = stream_packets(container, stream, deadline)
    keyframe = next(packets, None)
    if keyframe is None or not keyframe.is_keyframe or keyframe.pts is None or keyframe.dts is None:
        return None
    shown_before = timeline.shown_before_sample(keyframe.dts)
    if shown_before is None:
        return None
    leading = _LeadingCount(keyframe.pts)
    counted = 0
    for frame in decoded_frames(leading.counting(chain([keyframe], packets))):
        assert frame.pts is not None  # decoded_frames yields only frames with a pts
        if frame.pts < keyframe.pts:
            continue  # a leading picture: shown before the keyframe, already counted in `leading`
        position = shown_before + leading.count + counted
        if position > index:
            return None
        if position == index:
            return frame
        counted += 1
    raise UnsupportedImage(f"the video ends before frame {index} (is it truncated?)")


class _LeadingCount:
    """Counts packets decoded after a keyframe but shown before it, as they go by.

    By the time the decoder outputs the keyframe, every picture shown before it has been demuxed (the
    reorder buffer waits for them), so the count is final when counting by display order begins.
    """

    def __init__(self, keyframe_pts: int) -> None:
        self.keyframe_pts = keyframe_pts
        self.count = 0

    def counting(self, packets: Iterator[Packet]) -> Iterator[Packet]:
        for packet in packets:
            if packet.pts is not None and packet.pts < self.keyframe_pts and not packet.is_discard:
                self.count += 1
            yield packet


def _by_frame_rate(container: InputContainer, stream: VideoStream, index: int, deadline: float) -> VideoFrame:
    rate = stream.average_rate or stream.guessed_rate
    if not rate or not stream.time_base:
        raise UnsupportedImage("the video's frame rate is unknown: ask for a time (<seconds>s) instead of a frame")
    if 0 < stream.frames <= index:
        raise UnsupportedImage(f"frame {index} is past the end: the video has {stream.frames} frames")
    offset = (index + Fraction(1, 2)) / (Fraction(rate) * Fraction(stream.time_base))
    return frame_at_time(container, stream, (stream.start_time or 0) + round(offset), deadline)
