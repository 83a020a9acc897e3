"""The file FFmpeg reads through: it keeps the caller's I/O errors out of FFmpeg and hands them back.

PyAV calls `read`/`seek` from inside FFmpeg. When one raises, PyAV stashes the exception in a
thread-local and re-raises it at its *next* error check in that thread, whichever call that is; if
FFmpeg retries first, PyAV prints "PyAV library exception being dropped" with a traceback to stderr.
A stash that nothing picks up would surface in the next request served by the same pool thread.
So the first failure is recorded here, FFmpeg sees end-of-file from then on, and `extract_frame`
re-raises the recorded error (unchanged, so a provider's 502 or 504 stays one) once PyAV is done.
"""

import io
from typing import Protocol


class SeekableReader(Protocol):
    """What extract_frame reads: an open binary file, a BytesIO, or proxy.tiers.range_file.ProviderRangeFile."""

    def read(self, size: int = -1, /) -> bytes | None: ...

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int: ...

    def tell(self) -> int: ...

    def seekable(self) -> bool: ...


class GuardedFile:
    """A read-only view of `file` that records its first exception instead of raising it into FFmpeg."""

    def __init__(self, file: SeekableReader) -> None:
        self._file = file
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        """Bytes from the file; b"" (end of file) once any read or seek has failed."""
        if self.failure is not None:
            return b""
        try:
            return self._file.read(size) or b""  # None (a non-blocking file with nothing yet) can't happen here
        except Exception as error:
            self.failure = error
            return b""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move like the file does; a failure is recorded and reported to FFmpeg as an invalid seek."""
        if self.failure is not None:
            return -1
        try:
            return self._file.seek(offset, whence)
        except ValueError:
            return -1  # a position the file refuses (before its start): FFmpeg's error to handle, not an I/O one
        except Exception as error:
            self.failure = error
            return -1

    def tell(self) -> int:
        """The file's position (PyAV wants `tell` to treat the file as seekable)."""
        return self._file.tell()

    def seekable(self) -> bool:
        """Whether FFmpeg may seek (the mov demuxer needs to, to reach a `moov` at the end)."""
        return self._file.seekable()

    def readable(self) -> bool:
        """Always: this view is for reading."""
        return True

    def raise_failure(self) -> None:
        """Re-raise the file's first error, if it had one."""
        if self.failure is not None:
            raise self.failure
