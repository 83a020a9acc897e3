"""How soon a thread holding the interpreter lock hands it to a render thread that asks for it.

A render spends most of its time in C without the lock (decode, resize, encode), but takes it back
between those steps, and then waits until the holder lets it go: the event loop, most often, which
is asked to at the end of its switch interval (5 ms by default). A 15 ms thumbnail crosses that
point a dozen times or more, so beside a busy event loop it took three to four times as long. With
a 1 ms interval the same render took 1.5 times as long (a 6 MB JPEG, read in large blocks as well:
previews.imaging.decode.DECODE_BLOCK), and the event loop gives up the lock only when a render
asks for it.
"""

import sys

SWITCH_INTERVAL = 0.001  # seconds


def hand_over_sooner() -> None:
    """Set this process's switch interval for renders on threads beside an event loop."""
    sys.setswitchinterval(SWITCH_INTERVAL)
