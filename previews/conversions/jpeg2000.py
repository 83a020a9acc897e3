"""Whether a JPEG 2000 file was coded with the reversible (5/3) wavelet, read from its main header.

Pillow doesn't expose it. ISO/IEC 15444-1 names the wavelet in the COD marker segment of the
codestream's main header: 1 is the reversible 5/3 filter that lossless coding needs, 0 the
irreversible 9/7 filter of lossy coding. Only headers are read, each read is bounded, and the file
position is restored.
"""

import struct
from typing import BinaryIO

JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"  # the JP2 file's first box (15444-1, annex I.5.1)
SOC = b"\xff\x4f"  # start of codestream
COD, SOT = 0xFF52, 0xFF90  # coding style default; start of tile-part, where the main header ends
# A well-formed file reaches the codestream in a handful of boxes and COD within a few markers
# (SIZ comes first); the bounds only stop a crafted file from making us walk it all.
MAX_BOXES = 64
MAX_MARKERS = 64
# Offset of the wavelet byte in COD's content: Scod (1), SGcod (4: progression, layers, MCT), then
# SPcod's decomposition levels, code-block width, height and style (4 bytes).
WAVELET_OFFSET = 9


def uses_reversible_wavelet(file: BinaryIO) -> bool | None:
    """True for the 5/3 wavelet, False for 9/7, None if the header can't be read."""
    position = file.tell()
    try:
        file.seek(0)
        start = _codestream_start(file)
        return None if start is None else _reversible(file, start)
    except (OSError, struct.error):
        return None
    finally:
        file.seek(position)


def _codestream_start(file: BinaryIO) -> int | None:
    """Offset of the codestream: 0 for a bare .j2k, else the content of the JP2 file's `jp2c` box."""
    head = file.read(len(JP2_SIGNATURE))
    if head.startswith(SOC):
        return 0
    if head != JP2_SIGNATURE:
        return None
    offset = len(JP2_SIGNATURE)
    for _ in range(MAX_BOXES):
        file.seek(offset)
        length, kind = struct.unpack(">I4s", file.read(8))
        header = 8
        if length == 1:  # the length follows as 64 bits
            (length,) = struct.unpack(">Q", file.read(8))
            header = 16
        if kind == b"jp2c":
            return offset + header
        if length < header:  # 0 means "to the end of the file": no codestream after it
            return None
        offset += length
    return None


def _reversible(file: BinaryIO, start: int) -> bool | None:
    file.seek(start)
    if file.read(2) != SOC:
        return None
    for _ in range(MAX_MARKERS):
        marker, length = struct.unpack(">HH", file.read(4))
        if marker == SOT:
            return None
        if marker == COD:
            content = file.read(length - 2)
            return content[WAVELET_OFFSET] == 1 if len(content) > WAVELET_OFFSET else None
        file.seek(length - 2, 1)
    return None
