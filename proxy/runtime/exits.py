"""How a server process leaves: after its own clean shutdown, without the interpreter's teardown."""

import logging
import os
import sys


def exit_without_teardown(code: int) -> None:
    """Leave once everything is closed, skipping the interpreter's own teardown.

    obstore's Rust runtime keeps worker threads that are not told about Python's finalisation; one
    caught mid-task as the interpreter is torn down panics with no Python frame to catch it, and the
    process aborts (SIGABRT, a core file, a failed unit) after a clean shutdown. Seen in our tests
    about once in ten runs; the same class as lancedb/lancedb#4175 (2026-09). The server has closed
    its sockets, caches and providers by now, so only flushing is left to do.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
