"""The render host: the process of a supervised server that runs the large renders of every worker.

Why a process of its own: a large render (a decode of tens of megapixels) holds ~100 MiB at its peak,
and a process keeps its peak (VmHWM) for the rest of its life. When every worker ran its own, each
worker kept that peak. Here one process holds it, and no event loop shares the interpreter lock with
its decodes. A decoder's crash on a hostile file ends this process, not a worker serving hits: the
supervisor starts another, and the request gets 503.

What stays in the workers: the header read and estimate (the first trip, proxy.render.file_jobs), every
small render, and the bounds (queue, cores, memory), which a worker's thread holds while it waits here
for the answer. So the host runs at most as many renders as the server has cores, and needs no bounds
of its own beyond a cap on connections.

It imports nothing of the server but this folder's wire module and what the jobs name (previews/),
so it stays small (13 MiB idle, until its first job imports Pillow): run as
`python -m proxy.render.host SOCKET_PATH WATCH_FD HEAP_KEEP`. It binds
SOCKET_PATH itself, and ends when WATCH_FD (a pipe from the supervisor) reads EOF.
"""

import contextlib
import os
import signal
import socket
import struct
import sys
import threading

from previews.imaging.decoded import keep_decoded_images
from proxy.render.errors import HostBusy
from proxy.render.heap import keep_freed_memory, share_one_arena
from proxy.render.host_wire import receive_job, send_reply

MAX_JOBS = 64  # connections served at once; the workers' cores bound the renders far below this
# Pixels of the decodes kept for the next render of the same original at the same scale (a srcset's sizes;
# previews.imaging.decoded). One decode may take a quarter: 4 MiB, what a progressive JPEG's shared decode
# scale leaves at most (SHARED_DECODE_PIXELS), and what a 4 MP photo decoded at 1/2 holds.
DECODES_KEPT = 16 * 1024 * 1024


def serve(path: str, watch_fd: int, heap_keep: int) -> None:
    """Listen on `path` and run every job on a thread of its own, until `watch_fd` reads EOF."""
    if keep_freed_memory(heap_keep):
        # Every job runs on a thread of its own: in one arena, the next large render reuses the pages the
        # last one freed (up to heap_keep, even after two overlapped), instead of faulting in ~100 MiB
        # anew (proxy.render.heap).
        share_one_arena(heap_keep)
    # Pillow and the render modules are imported by the first job's recipe, not here: a server whose
    # renders are all small never pays for them in this process.
    keep_decoded_images(DECODES_KEPT)

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a previous host's socket
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(MAX_JOBS)
    threading.Thread(target=_end_with_supervisor, args=(watch_fd,), daemon=True, name="watch").start()
    slots = threading.BoundedSemaphore(MAX_JOBS)
    while True:
        connection, _ = listener.accept()
        if not _same_user(connection):
            connection.close()
            continue
        if not slots.acquire(blocking=False):
            with connection, contextlib.suppress(OSError):
                send_reply(connection, False, HostBusy())  # the worker runs the job itself
            continue
        threading.Thread(target=_serve_job, args=(connection, slots), daemon=True, name="render").start()


def _serve_job(connection: socket.socket, slots: threading.BoundedSemaphore) -> None:
    try:
        with connection:
            try:
                job, descriptor = receive_job(connection)
            except (EOFError, OSError, ValueError):
                return  # a broken request: the worker sees the connection close
            with os.fdopen(descriptor, "rb") as file:
                try:
                    file.seek(job.start)
                    prepared = job.work(file)
                    try:
                        result = prepared.run()
                    finally:
                        prepared.close()
                except Exception as error:
                    outcome: tuple[bool, object] = (False, error)
                else:
                    outcome = (True, result)
            with contextlib.suppress(OSError):  # the worker stopped waiting
                send_reply(connection, *outcome)
    finally:
        slots.release()


def _same_user(connection: socket.socket) -> bool:
    """The peer runs as this process's user (the socket's folder already keeps others out)."""
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid == os.getuid()


def _end_with_supervisor(watch_fd: int) -> None:
    """The supervisor holds the pipe's other end: EOF means it is gone, even SIGKILLed."""
    while os.read(watch_fd, 1):
        pass
    os._exit(0)


def main(argv: list[str]) -> None:
    """The process's entry: SIGINT and SIGHUP are the supervisor's to handle; SIGTERM ends it at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    path, watch_fd, heap_keep = argv
    serve(path, int(watch_fd), int(heap_keep))


if __name__ == "__main__":
    main(sys.argv[1:])
