"""Reading what a command wrote to a pseudo-terminal, for the tests of progress bars."""

import os


def read_pty(fd: int) -> str:
    """What a pty's other side wrote, until it is closed (bounded: the writer has exited)."""
    chunks = []
    for _ in range(10_000):
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the writer's side is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
