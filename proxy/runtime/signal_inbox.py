"""A process's signals as bytes on a socket, for a loop that waits on file descriptors (proxy.runtime.supervisor)."""

import signal
import socket


class SignalInbox:
    """The supervisor's signals, read in its loop rather than handled in a signal handler.

    With a wakeup fd set, CPython's C-level handler writes each signal's number as one byte to it.
    The Python-level handler does nothing. The loop waits on the socket together with the workers'
    channels and sentinels, so a signal wakes it up like any other event.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __enter__(self) -> "SignalInbox":
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno())
        self._previous = {signum: signal.signal(signum, _noted) for signum in self.SIGNALS}
        return self

    def take(self) -> list[int]:
        """The signals received since the last call, in order."""
        received = b""
        while True:
            try:
                chunk = self.reader.recv(4096)
            except BlockingIOError:
                return list(received)
            if not chunk:
                return list(received)
            received += chunk

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        signal.set_wakeup_fd(self._previous_fd)
        self.reader.close()
        self._writer.close()


def _noted(signum: int, frame: object) -> None:
    """The Python-level handler: the wakeup fd already carries the signal to the loop."""
