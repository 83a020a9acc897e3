"""A progressive JPEG cut to what its 1/8 decode reads: the DC scans, for a fraction of the entropy decode.

At 1/8 libjpeg turns each 8x8 block into one pixel from its DC coefficient alone, but it still decodes
every scan of the file first, and in a progressive JPEG most of the bytes, and most of the time, are
the scans of the AC coefficients (a 16 MP photo: 290 ms for the whole file, 105 ms for its DC scans).
The cut keeps every marker segment and every scan the 1/8 decode uses, drops the AC scans of the
components decoded at one pixel a block, and ends with one empty AC scan (every block an end of band)
per dropped component. Without those, libjpeg would see the AC coefficients as not yet sent and
"smooth" the blocks from their neighbours' DC, which changes the pixels; with them the decode is
pixel for pixel the decode of the whole file.

Anything the cut does not know (another coding process, arithmetic coding, a truncated file, a scan
header that doesn't parse) gives None, and the caller decodes the whole file, which reports it.
"""

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from previews.errors import UncutJpeg

READ_BLOCK = 1024 * 1024
SOI, EOI, SOF2, SOS, DRI = 0xD8, 0xD9, 0xC2, 0xDA, 0xDD
# Segments a progressive Huffman JPEG may hold before and between its scans and that the cut copies:
# application data and comments, quantisation and Huffman tables, restart intervals.
PASSED = frozenset({0xC4, 0xDB, DRI, 0xFE, *range(0xE0, 0xF0)})
# The entropy-coded data of a scan ends at the first marker that is neither a stuffed 0xFF (FF 00)
# nor a restart marker (FF D0-D7); fill bytes (FF FF) belong to the marker that follows them.
SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# An AC Huffman table whose symbols are the fifteen end-of-band runs (EOB0 to EOB14), each coded in
# 4 bits by its run class: EOBn says "this block and the next 2^n - 1 + n extra bits are empty".
EOB_TABLE_ID = 0
EOB_TABLE = bytes([0x10 | EOB_TABLE_ID] + [0, 0, 0, 15] + [0] * 12 + [r << 4 for r in range(15)])
LONGEST_EOB_RUN = (1 << 15) - 1
# Real files have a dozen scans and a few tables; each segment is a turn of a Python loop, so a file made
# of tiny ones (empty AC scans cost nothing to write) is handed to libjpeg whole past this many.
MOST_SEGMENTS = 1000


@dataclass(frozen=True)
class _Component:
    ident: int
    horizontal: int
    vertical: int


@dataclass(frozen=True)
class _Frame:
    width: int
    height: int
    components: list[_Component]

    @property
    def most_horizontal(self) -> int:
        return max(c.horizontal for c in self.components)

    @property
    def most_vertical(self) -> int:
        return max(c.vertical for c in self.components)


def dc_scans_only(file: IO[bytes], most_bytes: int) -> io.BytesIO | None:
    """The JPEG in `file` (read from its start) cut to what a 1/8 decode reads, or None if it can't be cut
    or the cut would be over `most_bytes` (the cut is in memory; the file is read in 1 MiB blocks)."""
    out = io.BytesIO()
    try:
        file.seek(0)
        reader = _Reader(file)
        if reader.take(2) != bytes([0xFF, SOI]):
            return None
        out.write(bytes([0xFF, SOI]))
        for frame, dropped in _copy_kept(reader, out, most_bytes):
            for component in dropped:
                out.write(_empty_ac_scan(component, frame))
        out.write(bytes([0xFF, EOI]))
    except (UncutJpeg, struct.error, IndexError):
        return None
    if out.tell() > most_bytes:
        return None
    out.seek(0)
    return out


def _copy_kept(reader: "_Reader", out: io.BytesIO,
               most_bytes: int) -> Iterator[tuple[_Frame, list[_Component]]]:
    """Copy what the 1/8 decode reads; at the end, yield the frame and the components whose AC scans were
    dropped."""
    frame: _Frame | None = None
    dropped: list[_Component] = []
    for _ in range(MOST_SEGMENTS):
        marker = reader.marker()
        if marker == EOI:
            if frame is None:
                raise UncutJpeg("no frame")
            # Restart markers never appear in the empty scans: no restart interval for them.
            out.write(b"\xff\xdd\x00\x04\x00\x00")
            yield frame, dropped
            return
        segment = reader.segment()
        if marker == SOF2:
            frame = _read_frame(segment)
            dropped = [component for component in frame.components if _one_pixel_a_block(component, frame)]
            out.write(bytes([0xFF, marker]) + segment)
        elif marker == SOS:
            if frame is None:
                raise UncutJpeg("a scan before the frame")
            keep = not _drops(segment, dropped)
            if keep:
                out.write(bytes([0xFF, marker]) + segment)
            for chunk in reader.entropy_coded():
                if keep:
                    out.write(chunk)
        elif marker in PASSED:
            out.write(bytes([0xFF, marker]) + segment)
        else:
            raise UncutJpeg(f"marker {marker:02X}")
        if out.tell() > most_bytes:
            raise UncutJpeg("over the bound")
    raise UncutJpeg("too many segments")


def _read_frame(segment: bytes) -> _Frame:
    precision, height, width, count = struct.unpack(">BHHB", segment[2:8])
    if precision != 8 or not width or not height or len(segment) != 8 + 3 * count:
        raise UncutJpeg("frame header")
    components = [_Component(segment[8 + 3 * i], segment[9 + 3 * i] >> 4, segment[9 + 3 * i] & 15)
                  for i in range(count)]
    if any(not 1 <= c.horizontal <= 4 or not 1 <= c.vertical <= 4 for c in components):
        raise UncutJpeg("sampling factors")
    return _Frame(width, height, components)


def _one_pixel_a_block(component: _Component, frame: _Frame) -> bool:
    """Whether libjpeg decodes `component` at one pixel a block at 1/8. It scales a subsampled component
    by its IDCT rather than by upsampling wherever both factors allow (jdmaster.c): 4:2:0 chroma comes
    out of a 2x2 IDCT, which reads three AC coefficients, and keeps its AC scans."""
    return (frame.most_horizontal % (2 * component.horizontal) != 0
            or frame.most_vertical % (2 * component.vertical) != 0)


def _drops(scan_header: bytes, dropped: list[_Component]) -> bool:
    """Whether the scan is an AC scan (first or refinement) of a component decoded from its DC alone."""
    count = scan_header[2]
    if len(scan_header) != 6 + 2 * count:
        raise UncutJpeg("scan header")
    spectral_start = scan_header[3 + 2 * count]
    idents = {scan_header[3 + 2 * i] for i in range(count)}
    return spectral_start > 0 and idents <= {c.ident for c in dropped}


def _empty_ac_scan(component: _Component, frame: _Frame) -> bytes:
    """A first AC scan (coefficients 1-63, no point transform) of `component` in which every block is empty."""
    # A one-component scan covers the component's own blocks, not whole MCUs.
    across = _ceil_div(_ceil_div(frame.width * component.horizontal, frame.most_horizontal), 8)
    down = _ceil_div(_ceil_div(frame.height * component.vertical, frame.most_vertical), 8)
    bits = []
    left = across * down
    while left:
        run = min(left, LONGEST_EOB_RUN)
        run_class = run.bit_length() - 1
        extra = format(run - (1 << run_class), f"0{run_class}b") if run_class else ""
        bits.append(format(run_class, "04b") + extra)
        left -= run
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)  # padded with ones, as every JPEG encoder pads
    data = bytearray()
    for start in range(0, len(stream), 8):
        data.append(int(stream[start:start + 8], 2))
        if data[-1] == 0xFF:
            data.append(0x00)
    table = b"\xff\xc4" + struct.pack(">H", 2 + len(EOB_TABLE)) + EOB_TABLE
    header = b"\xff\xda" + struct.pack(">HBBBBBB", 8, 1, component.ident, EOB_TABLE_ID, 1, 63, 0)
    return table + header + bytes(data)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


class _Reader:
    """The file read forward in blocks, as markers, segments and entropy-coded data."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._buffer = b""
        self._at = 0

    def _fill(self, wanted: int) -> None:
        while len(self._buffer) - self._at < wanted:
            block = self._file.read(READ_BLOCK)
            if not block:
                raise UncutJpeg("truncated")
            self._buffer = self._buffer[self._at:] + block
            self._at = 0

    def take(self, count: int) -> bytes:
        self._fill(count)
        taken = self._buffer[self._at:self._at + count]
        self._at += count
        return taken

    def marker(self) -> int:
        """The next marker's code, past any fill bytes before it."""
        if self.take(1) != b"\xff":
            raise UncutJpeg("no marker")
        code = self.take(1)[0]
        while code == 0xFF:
            code = self.take(1)[0]
        return code

    def segment(self) -> bytes:
        """A marker segment's body, its length field included."""
        length = struct.unpack(">H", self.take(2))[0]
        if length < 2:
            raise UncutJpeg("segment length")
        return struct.pack(">H", length) + self.take(length - 2)

    def entropy_coded(self) -> Iterator[bytes]:
        """The scan's data up to the marker that ends it, in pieces."""
        while True:
            self._fill(2)
            found = SCAN_END.search(self._buffer, self._at)
            if found is not None:
                yield self._buffer[self._at:found.start()]
                self._at = found.start()
                return
            # Keep the last byte back: it may be the 0xFF of a marker the next block completes.
            end = len(self._buffer) - 1
            yield self._buffer[self._at:end]
            self._at = end
