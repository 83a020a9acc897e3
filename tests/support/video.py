"""Short H.264 MP4s made with PyAV in the test itself, each frame showing a known counter.

The counter is a binary code in big blocks across the top half of the frame (white = 1, least
significant bit on the left), which survives H.264 compression at any reasonable quality; the
bottom half is grey, or random noise where a test wants a big file.
"""

import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageStat

COUNTER_BITS = 8
# The display time base of variable-frame-rate videos: a millisecond.
VFR_TIME_BASE = Fraction(1, 1000)


@dataclass(frozen=True)
class VideoSpec:
    """What to make. Video stream s shows `counter_offsets[s] + frame index` in each frame."""

    frames: int = 75
    fps: int = 25
    size: tuple[int, int] = (64, 48)
    gop: int = 12
    faststart: bool = False
    counter_offsets: tuple[int, ...] = (0,)
    rotation: int = 0  # display matrix, degrees counter-clockwise (as VideoFrame.rotation reads it)
    frame_times_ms: tuple[int, ...] | None = None  # a variable frame rate: each frame's display time
    audio_first: bool = False  # an AAC stream before the video streams
    noise: bool = False  # random noise in the bottom half: a big file that compresses badly
    open_gop: bool = False  # B-frames after a keyframe that are shown before it ("leading pictures")
    container_format: str = "mp4"  # or "matroska", whose index lists keyframes only
    crf: int = 20


def make_video(spec: VideoSpec) -> bytes:
    """The file's bytes (an MP4 has its moov at the end, as PyAV writes it, unless `faststart`)."""
    # A real file: faststart moves the moov by reading the file back, which needs a path FFmpeg can open.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "video.mp4"
        _write_video(path, spec)
        return path.read_bytes()


def _write_video(path: Path, spec: VideoSpec) -> None:
    options = {"movflags": "faststart"} if spec.faststart else {}
    with av.open(str(path), "w", format=spec.container_format, options=options) as container:
        audio = container.add_stream("aac", rate=8000) if spec.audio_first else None
        streams = [_add_video_stream(container, spec) for _ in spec.counter_offsets]
        for index in range(spec.frames):
            for stream, offset in zip(streams, spec.counter_offsets, strict=True):
                frame = av.VideoFrame.from_image(counter_frame(offset + index, spec.size, spec.noise))
                frame.pts = spec.frame_times_ms[index] if spec.frame_times_ms else index
                container.mux(stream.encode(frame))
        for stream in streams:
            container.mux(stream.encode(None))
        if audio is not None:
            _mux_silence(container, audio, seconds=spec.frames / spec.fps)


def counter_frame(value: int, size: tuple[int, int], noise: bool = False) -> Image.Image:
    """A frame showing `value` in COUNTER_BITS blocks across the top half."""
    width, height = size
    if noise:
        image = Image.frombytes("RGB", size, os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(image)
    block = width // COUNTER_BITS
    for bit in range(COUNTER_BITS):
        colour = (255, 255, 255) if value >> bit & 1 else (0, 0, 0)
        draw.rectangle((bit * block, 0, (bit + 1) * block - 1, height // 2 - 1), fill=colour)
    return image


def read_counter(image: Image.Image) -> int:
    """The value counter_frame drew, read from the centre of each block."""
    grey = image.convert("L")
    width, height = grey.size
    block = width // COUNTER_BITS
    value = 0
    for bit in range(COUNTER_BITS):
        box = (bit * block + block // 4, height // 8, (bit + 1) * block - block // 4, height * 3 // 8)
        if ImageStat.Stat(grey.crop(box)).mean[0] > 128:
            value |= 1 << bit
    return value


def _add_video_stream(container: av.container.OutputContainer, spec: VideoSpec) -> av.video.stream.VideoStream:
    stream = container.add_stream("libx264", rate=spec.fps)
    stream.width, stream.height = spec.size
    stream.pix_fmt = "yuv420p"
    # A fixed GOP (no scene-cut keyframes), so most frames are not keyframes and seeks land before them.
    stream.codec_context.gop_size = spec.gop
    stream.options = {"crf": str(spec.crf), "sc_threshold": "0", "preset": "veryfast"}
    if spec.open_gop:
        stream.options = {**stream.options, "x264-params": "open-gop=1"}
    if spec.frame_times_ms:
        stream.time_base = VFR_TIME_BASE
        stream.codec_context.time_base = VFR_TIME_BASE
    else:
        stream.codec_context.time_base = Fraction(1, spec.fps)
    if spec.rotation:
        stream.set_display_rotation(spec.rotation)
    return stream


def _mux_silence(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                 seconds: float) -> None:
    samples_per_frame = 1024
    for index in range(int(seconds * 8000) // samples_per_frame):
        frame = av.AudioFrame(format="fltp", layout="mono", samples=samples_per_frame)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = 8000
        frame.pts = index * samples_per_frame
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
