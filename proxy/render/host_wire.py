"""The messages between a worker's render thread and the render host (proxy.render.host), on a Unix socket.

One connection carries one job. The worker sends the original's open file descriptor (SCM_RIGHTS) with
a frame holding the work: a picklable function and its arguments that make the prepared work from
the file, and where the original starts in it. The host answers with one frame: the result, or the
error the work raised. A frame is a 4-byte big-endian length and that many bytes of pickle.

Pickle is safe here because only the server's own processes can reach the socket: it lives in a
folder only the server's user may enter, and the host also refuses any peer of another user.
"""

import io
import os
import pickle
import socket
import stat
import struct
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from proxy.render.errors import HostBusy, HostDied, HostUnavailable

_LENGTH = struct.Struct(">I")
MAX_FRAME = 256 * 2**20  # a preview's bytes and the work's options fit many times over
REPLY_GRACE_SECONDS = 30.0  # past the job's deadline, how long a thread waits for a host that says nothing
# A Unix socket's connect blocks while the listener's backlog is full: a wedged host is given up on soon.
CONNECT_SECONDS = 1.0


class PortableWork:
    """How the host makes the prepared work from the file: `function(file, *args)`, all picklable.

    A plain class, as Job is: dataclasses would cost the host ~1.5 MiB of imports (inspect and more).
    """

    __slots__ = ("args", "function")

    def __init__(self, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.function = function
        self.args = args

    def __call__(self, file: BinaryIO) -> Any:
        """The prepared work, made here."""
        return self.function(file, *self.args)


class Job:
    """What one connection asks: the work, and the offset in the passed file where the original starts."""

    __slots__ = ("start", "work")

    def __init__(self, work: PortableWork, start: int) -> None:
        self.work = work
        self.start = start


def reopen_for_host(file: BinaryIO | None) -> int | None:
    """A new descriptor of the same file as `file` with an offset of its own, if `file` is a plain open
    regular file, which another process can read as it is; None for anything else (a fill's reader, bytes
    in memory, a provider's ranges). The caller closes it.

    Opened afresh through /proc (which works for an unlinked file too), not dup()ed: a dup shares the
    offset, and `file` must stay where it is for the work to run here if the host can't take it.
    """
    if not isinstance(file, io.BufferedReader) or not isinstance(file.raw, io.FileIO):
        return None
    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        return None
    try:
        return os.open(f"/proc/self/fd/{file.fileno()}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def run_on_host(address: str, descriptor: int, job: Job, deadline: float) -> Any:
    """Send `job` with the file behind `descriptor` to the host at `address`; return the work's result, or
    raise the error it raised there. HostUnavailable if it never got there, HostDied if the host ended
    meanwhile or says nothing until well past `deadline`."""
    payload = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            connection.settimeout(CONNECT_SECONDS)
            connection.connect(address)
            socket.send_fds(connection, [_LENGTH.pack(len(payload)) + payload], [descriptor])
        except OSError as error:
            raise HostUnavailable(str(error)) from None
        connection.settimeout(max(0.0, deadline - time.monotonic()) + REPLY_GRACE_SECONDS)
        try:
            reply = read_frame(connection)
        except (ConnectionError, EOFError) as error:
            raise HostDied(str(error) or "the render host closed the connection") from None
        except TimeoutError:
            raise HostDied("the render host did not answer") from None
    finally:
        connection.close()
    succeeded, value = pickle.loads(reply)
    if succeeded:
        return value
    if isinstance(value, HostBusy):
        raise HostUnavailable("the render host is busy")
    raise value


def receive_job(connection: socket.socket) -> tuple[Job, int]:
    """The host's side: the job on a new connection and the descriptor sent with it (the caller closes it)."""
    head, descriptors, _, _ = socket.recv_fds(connection, _LENGTH.size, 1)
    if len(descriptors) != 1:
        for descriptor in descriptors:
            os.close(descriptor)
        raise EOFError("a job comes with exactly one file")
    try:
        length = _read_length(connection, head)
        job = pickle.loads(_read_exactly(connection, length))
        if not isinstance(job, Job):
            raise EOFError("not a job")
    except BaseException:
        os.close(descriptors[0])
        raise
    return job, descriptors[0]


def send_reply(connection: socket.socket, succeeded: bool, value: Any) -> None:
    """The host's answer: the result (`succeeded`) or the error; an error that can't cross is named instead."""
    try:
        payload = pickle.dumps((succeeded, value), protocol=pickle.HIGHEST_PROTOCOL)
        if not succeeded:  # an exception whose class can't be rebuilt would fail on the worker's side
            pickle.loads(payload)
    except Exception:
        payload = pickle.dumps((False, RuntimeError(f"render failed: {type(value).__name__}")))
    connection.sendall(_LENGTH.pack(len(payload)) + payload)


def read_frame(connection: socket.socket) -> bytes:
    """One frame's bytes; EOFError if the peer closes first."""
    return _read_exactly(connection, _read_length(connection, b""))


def _read_length(connection: socket.socket, head: bytes) -> int:
    head += _read_exactly(connection, _LENGTH.size - len(head))
    (length,) = _LENGTH.unpack(head)
    if length > MAX_FRAME:
        raise EOFError(f"a frame of {length} bytes is over the limit")
    return int(length)


def _read_exactly(connection: socket.socket, count: int) -> bytes:
    chunks, missing = [], count
    while missing:
        chunk = connection.recv(min(missing, 2**20))
        if not chunk:
            raise EOFError("the peer closed the connection")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
