"""How many workers of a multi-worker server listen, as the supervisor counts them: what /healthz waits for.

Workers share the port with SO_REUSEPORT, and the kernel gives each *new connection* to one of the
sockets listening at that moment. A client that connects as soon as the first worker answers (a
browser, an SDK with a keep-alive pool, a load balancer's connection pool) keeps its connections on
that worker while the others sit idle. So a multi-worker server says it is ready only once every
worker listens: each worker says READY once its socket listens, the supervisor counts the READYs in
this shared counter, and /healthz (and /readyz) answer 503 "starting: k of n workers listening" until
the count reaches n.

Why 503 rather than holding the port closed: a probe then gets an answer that says what it waits
for, and the workers need no second step (listen later, on a go from the supervisor) that could
itself fail.

Why only at start-up: once every worker has listened, the server stays ready. A worker that dies is
replaced while the others keep answering; making the whole server unready for that time would let a
load balancer take a mostly working instance out of rotation, turning a partial, brief loss into a
whole one. The replacement answers 200 as soon as it listens (the count is complete already). The
connections clients opened meanwhile stay on the other workers until they close: an imbalance that
passes, not an outage.

One process (no supervisor) has no counter: it listens, so it is ready.
"""

import ctypes
from multiprocessing.context import BaseContext

# What a worker tells the supervisor once it accepts connections. Here, beside the count, so the
# supervisor need not import the app (and its image and video libraries) just to read it.
READY = b"ready"


class WorkersListening:
    """A count in shared memory: the supervisor writes it, every worker reads it (pickled into each at spawn)."""

    def __init__(self, total: int, context: BaseContext) -> None:
        self.total = total
        # A lock-free int: one writer (the supervisor's thread), and readers that only compare it.
        self._count = context.RawValue(ctypes.c_int, 0)

    def count(self) -> int:
        """Workers the supervisor has seen listening while the server started."""
        return int(self._count.value)

    def set_count(self, count: int) -> None:
        """The supervisor's update, each time a worker says READY during start-up."""
        self._count.value = count

    def complete(self) -> bool:
        """True once every worker has listened: the server is ready from then on."""
        return self.count() >= self.total

    def describe(self) -> str:
        """The one-line answer of a probe while the server starts."""
        return f"starting: {self.count()} of {self.total} workers listening"
