"""What the image converter is asked to do, read from its path and query, and doing it to a file.

Two operations, each followed by the source (`<bucket>/<key>`, or a link such as `s3://b/k`):

| path                              | query                   | result                                |
|-----------------------------------|-------------------------|---------------------------------------|
| `convert/<source>`                | `page=N` (0-based)      | a browser-ready image of page N       |
| `videoframe/<pos>/<source>`       | `videoStreamIndex=N`    | one frame of video stream N, as JPEG  |

`<pos>` is `33p` (percent of the duration), `12.5s` (seconds) or `120f` (frame index from 0); see
previews.video.frame. Parsing does no I/O; `run_conversion` is the blocking work, for a worker thread.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import parse_qsl

from previews.config import RenderConfig
from previews.conversions.still import Converted, ConvertOptions, encode_for_browser, prepare_conversion
from previews.errors import InvalidSource
from previews.video.position import FramePosition, parse_frame_position

SOURCE_PREFIX = "image-converter/"
# Query parameters each operation takes; anything else is a typo worth a 400, not a silent default.
PARAMETERS = {"convert": "page", "videoframe": "videoStreamIndex"}
MAX_INDEX = 100_000
# Bytes a video frame's pixel may take while it is extracted: FFmpeg's reference frames (about 1.5
# bytes a pixel each in 8-bit 4:2:0, up to 4 of them for H.264's common profiles), the RGB frame,
# Pillow's copy and its upright copy (4 bytes each), and the encoder's (previews.limits.pixel_memory).
VIDEO_BYTES_PER_PIXEL = 6 + 4 + 4 + 4 + 8


@dataclass(frozen=True)
class Conversion:
    """One operation on one source: which page, or which frame of which video stream."""

    operation: str  # "convert" or "videoframe"
    index: int = 0  # the page (convert) or the video stream (videoframe)
    position: FramePosition | None = None  # videoframe only

    def key(self) -> str:
        """The operation's part of a converter-tier key: every input that changes the result."""
        if self.position is None:
            return f"{self.operation} page={self.index}"
        return f"{self.operation} {self.position.kind}={self.position.value!r} stream={self.index}"


# The IIIF routes' tile pyramid (previews/iiif/pyramid.py): made and kept like a conversion, never asked by URL.
PYRAMID = Conversion("pyramid")


def parse_conversion(path: str, query: str) -> tuple[Conversion, str]:
    """`convert/<source>` or `videoframe/<pos>/<source>` (decoded) and the query: the operation and the source."""
    operation, _, rest = path.partition("/")
    if operation not in PARAMETERS:
        raise InvalidSource(f"unknown image-converter operation {operation!r}: expected convert or videoframe")
    position = None
    if operation == "videoframe":
        raw_position, _, rest = rest.partition("/")
        position = parse_frame_position(raw_position)
    if not rest:
        raise InvalidSource(f"image-converter/{operation} needs a source after it")
    return Conversion(operation, _index(operation, query), position), rest


def _index(operation: str, query: str) -> int:
    allowed = PARAMETERS[operation]
    index = 0
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name != allowed:
            raise InvalidSource(f"image-converter/{operation} takes only ?{allowed}=N, not {name!r}")
        if not value.isdigit() or int(value) > MAX_INDEX:
            raise InvalidSource(f"{allowed} must be a whole number from 0 to {MAX_INDEX}, not {value!r}")
        index = int(value)
    return index


class PreparedJob(Protocol):
    """A conversion ready to run: its memory estimate, the blocking work, and what to release after."""

    @property
    def peak_bytes(self) -> int:
        """The most memory the work is estimated to hold at once."""
        ...

    def run(self) -> Converted:
        """The blocking work."""
        ...

    def close(self) -> None:
        """Release what the preparation opened."""
        ...


def prepare_conversion_job(file: BinaryIO, conversion: Conversion, options: ConvertOptions, config: RenderConfig,
                           deadline: float, part: Path | None = None) -> PreparedJob:
    """Blocking, headers only: a conversion ready to run once its memory is admitted. A conversion too
    big to hold in memory twice (the tile pyramid) writes its result to `part` when one is named."""
    if conversion == PYRAMID:
        from previews.iiif.pyramid.making import prepare_pyramid  # IIIF's, loaded where it is used

        return prepare_pyramid(file, config, deadline, part)
    if conversion.position is None:
        return prepare_conversion(file, ConvertOptions(conversion.index, options.allow_webp, options.quality),
                                  config, deadline)
    # PyAV (FFmpeg's libraries) is loaded by the first video frame, not by every process that starts:
    # it adds about 24 MiB to each one.
    from previews.video.frame import frame_size

    width, height = frame_size(file, conversion.index, config.max_src_resolution)
    return PreparedVideoFrame(file, conversion, options, config, deadline, width * height * VIDEO_BYTES_PER_PIXEL)


def run_conversion(file: BinaryIO, conversion: Conversion, options: ConvertOptions, config: RenderConfig,
                   deadline: float) -> Converted:
    """Blocking: the converted image, or `data=None` when the source is already browser-ready."""
    prepared = prepare_conversion_job(file, conversion, options, config, deadline)
    try:
        return prepared.run()
    finally:
        prepared.close()


@dataclass(frozen=True)
class PreparedVideoFrame:
    """A video frame to extract, whose size the container's header declared."""

    file: BinaryIO
    conversion: Conversion
    options: ConvertOptions
    config: RenderConfig
    deadline: float
    peak_bytes: int

    def run(self) -> Converted:
        """The frame, encoded for browsers."""
        from previews.video.frame import extract_frame

        assert self.conversion.position is not None
        frame = extract_frame(self.file, self.conversion.position, self.conversion.index, self.deadline,
                              self.config.max_src_resolution)
        data, media_type = encode_for_browser(frame, lossless_source=False, options=self.options)
        return Converted(data, media_type, "video", frame.width, frame.height)

    def close(self) -> None:
        """Nothing is open before `run`."""
