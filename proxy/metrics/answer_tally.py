"""The hot lane's answers counted as plain numbers and added to the Prometheus families once per turn
of the event loop (and before this process answers a scrape).

Why: with several workers, every increment of a Prometheus value is a write to the shared mmap'd file
behind it, with a pid check (a getpid syscall) before each: the five values a lane answer touched
(requests, their duration's bucket and sum, the tier's hits, the hot answers, the bytes served) were
about a tenth of its CPU time (py-spy, W1). Counted here they cost a few additions; one loop turn
answers many connections, and their answers reach the families in one addition per value. The
figures stay exact: the tally is added before the loop waits for more I/O, so by the time a client
could ask /metrics anything, every answer it was sent is counted, and a scrape answered by this
process adds what is pending first.
"""

import asyncio
from bisect import bisect_left
from collections.abc import Callable, Sequence

# What is added at a flush: answers, body bytes, the answers per duration bucket (the last for
# durations above every bound), and the durations' sum.
Flush = Callable[[int, int, list[int], float], None]


class AnswerTally:
    """Answers given from the event loop, counted until the end of the loop's turn. Loop only."""

    def __init__(self, bounds: Sequence[float], flush: Flush) -> None:
        self._bounds = tuple(sorted(bounds))
        self._flush = flush
        self._answers = 0
        self._body_bytes = 0
        self._buckets = [0] * (len(self._bounds) + 1)
        self._seconds = 0.0
        self._scheduled = False

    def add(self, body_bytes: int, seconds: float) -> None:
        """One answer of `body_bytes` that took `seconds`."""
        self._answers += 1
        self._body_bytes += body_bytes
        self._buckets[bisect_left(self._bounds, seconds)] += 1  # the first bound >= seconds, as `le` counts
        self._seconds += seconds
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Add what was counted since the last flush to the families (a no-op when nothing was)."""
        self._scheduled = False
        if not self._answers:
            return
        answers, body_bytes, buckets, seconds = self._answers, self._body_bytes, self._buckets, self._seconds
        self._answers, self._body_bytes, self._buckets, self._seconds = 0, 0, [0] * len(buckets), 0.0
        self._flush(answers, body_bytes, buckets, seconds)
