"""Blocking work on an original's open file, run on the render pool, timed for the render metrics.

Previews and conversions both hand a worker thread the file of an original (local disk, a tier
entry, a fill's reader or ranges from the provider), in two trips: the first reads the header and
estimates the work's peak memory (nothing is decoded), the second runs once the pool has admitted
that estimate (proxy.render.memory). Between them no thread is held, so renders that wait for
memory don't keep small ones from the workers. A small job (estimated at most SMALL_JOB_BYTES) has
one trip: it runs on the thread that read its header, outside the memory budget (at most one such
job per thread, a few MiB each), sparing a round trip through the event loop on every thumbnail.

In a supervised server, the second trip of a large job whose original is a plain file runs in the
render host (proxy.render.host): the thread hands over the file's descriptor and the work in portable form,
and waits for the answer with the job's bounds still held. If no host takes the job, the thread runs it
itself; if the host ends while it runs the job, the request fails with 503 and the job is not run again
here (it may be what ended the host).

A trip that a thread has started owns the file (and the prepared work) and closes them however it
ends if nothing follows; whatever no thread holds when the caller is done (queue full, no memory,
deadline passed in the queue) is closed by the caller.
"""

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Generic, Protocol, TypeVar

from previews.errors import DecodeNotKept
from proxy.errors import RenderProcessEnded
from proxy.metrics.registry import Metrics
from proxy.render.errors import HostDied, HostUnavailable
from proxy.render.heap import give_back_freed_memory
from proxy.render.host_wire import Job, PortableWork, reopen_for_host, run_on_host
from proxy.render.pool import SMALL_JOB_BYTES, RenderPool
from proxy.tiers.originals import Located

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
DONE, LOST, RAN_HERE = "done", "lost", "ran_here"  # a large job handed to the render host: where it ended


class Prepared(Protocol[T_co]):
    """Work whose header is read: its estimated peak memory, the pixel work, and what to release."""

    @property
    def peak_bytes(self) -> int:
        """The most memory `run` is estimated to hold at once."""
        ...

    def run(self) -> T_co:
        """The blocking work."""
        ...

    def close(self) -> None:
        """Release what the preparation opened."""
        ...


async def run_file_job(pool: RenderPool, metrics: Metrics, operation: str, located: Located,
                       prepare: Callable[[BinaryIO], Prepared[T]], deadline: float, output_format: str,
                       format_of: Callable[[T], str], from_kept: PortableWork | None = None) -> T:
    """`prepare(file).run()` on the pool, admitted by its estimate; the time goes to
    render_duration_seconds{operation, format}.

    `output_format` labels a job that fails; `format_of` names the format of one that succeeds. A large job
    whose `prepare` is a PortableWork may run in the render host; any other callable runs in this process.
    `from_kept`: the same work, made to start from a decode the host keeps or not at all (DecodeNotKept).
    Where a decode holds much more than its pixels (`from_kept_bytes`: a progressive JPEG's coefficients)
    it is tried first, admitted by the memory of a copy and taking no core: if the host keeps no such
    decode, it says so before decoding anything (a round trip of a millisecond or two), and the whole
    work follows; if it does, it resizes a copy. So a srcset's later sizes don't wait for the memory of a
    decode that no one makes, and the question doesn't wait for a core that renders hold.
    """
    elsewhere = (pool.host, deadline) if pool.host and isinstance(prepare, PortableWork) else None
    job = _FileJob(located, prepare, output_format, format_of, elsewhere,
                   pool.memory.is_big if pool.memory is not None else None)
    asked = time.monotonic()
    try:
        first = await pool.run(job.first_trip, deadline)
        if isinstance(first, _Finished):
            return first.result
        from_kept_bytes = getattr(first, "from_kept_bytes", 0)
        if from_kept is not None and from_kept_bytes and job.goes_to_host(first):
            result = await pool.run(functools.partial(job.run_from_kept, from_kept), deadline,
                                    memory=from_kept_bytes, admitted=asked, on_a_core=False)
            if not isinstance(result, _NotKept):
                return result
        return await pool.run(job.run, deadline, memory=first.peak_bytes, admitted=asked)
    finally:
        job.caller_done()
        if job.seconds:
            metrics.render_done(operation, job.output_format, job.seconds)
        if job.host_outcome:
            metrics.render_host_job(job.host_outcome)


@dataclass(frozen=True)
class _NotKept:
    """A render from kept pixels that could not be: the decode was dropped, or the host is out of reach."""


@dataclass(frozen=True)
class _Finished(Generic[T]):
    """A small job's result, made in its first trip."""

    result: T


class _FileJob(Generic[T]):
    """The two blocking trips, and who closes the file and the prepared work."""

    def __init__(self, located: Located, prepare: Callable[[BinaryIO], Prepared[T]], output_format: str,
                 format_of: Callable[[T], str], elsewhere: tuple[str, float] | None = None,
                 is_big: Callable[[int], bool] | None = None) -> None:
        self.seconds = 0.0
        self.host_outcome = ""  # where a job handed to the render host ran: DONE, LOST or RAN_HERE
        self.output_format = output_format
        self._located = located
        self._prepare = prepare
        self._format_of = format_of
        self._elsewhere = elsewhere  # the host's address and the deadline, when the host may run `prepare`
        self._start = 0  # where the original starts in its file
        self._is_big = is_big  # a job it calls big runs here on a heap handed back to the system first
        self._prepared: Prepared[T] | None = None
        self._lock = threading.Lock()
        self._in_thread = False  # a trip is running: it closes what it holds if the caller has gone
        self._caller_done = False
        self._closed = False

    def prepare(self) -> Prepared[T]:
        """First trip: open and plan. On failure, or if the caller has gone meanwhile, close at once."""
        with self._trip():
            assert self._located.file is not None
            if self._elsewhere is not None:
                self._start = self._located.file.tell()
            self._prepared = self._prepare(self._located.file)
            return self._prepared

    def first_trip(self) -> "Prepared[T] | _Finished[T]":
        """Prepare; a small job then runs at once on the same thread, a larger one goes back to be admitted."""
        prepared = self.prepare()
        if prepared.peak_bytes > SMALL_JOB_BYTES or self._closed:  # closed: the caller has gone
            return prepared
        return _Finished(self.run())

    def run(self) -> T:
        """Second trip (or the rest of a small job's first): the work, after which everything is closed."""
        try:
            with self._trip():
                result = self._run_here_or_on_host()
                self.output_format = self._format_of(result)
                return result
        finally:
            self._close()

    def goes_to_host(self, prepared: Prepared[T]) -> bool:
        """Whether the second trip of this prepared job is for the render host."""
        return self._elsewhere is not None and prepared.peak_bytes > SMALL_JOB_BYTES

    def run_from_kept(self, work: PortableWork) -> "T | _NotKept":
        """Second trip, if the host keeps the decode: `work` there, which starts from those pixels.
        _NotKept if it can't (the job stays open for the whole render); closed like `run` otherwise."""
        with self._trip():
            descriptor = reopen_for_host(self._located.file)
            if descriptor is None:
                return _NotKept()
            try:
                result: T = self._on_host(work, descriptor)
            except (DecodeNotKept, HostUnavailable):
                self.host_outcome = ""  # the whole work follows, and says where it ran
                return _NotKept()
            self.output_format = self._format_of(result)
        self._close()
        return result

    def _run_here_or_on_host(self) -> T:
        """The prepared work, on the render host when there is one and the original is a plain file."""
        assert self._prepared is not None
        descriptor = reopen_for_host(self._located.file) if self.goes_to_host(self._prepared) else None
        if descriptor is None:
            return self._run_here()
        assert isinstance(self._prepare, PortableWork)  # run_file_job offers the host nothing else
        try:
            return self._on_host(self._prepare, descriptor)
        except HostUnavailable:
            self.host_outcome = RAN_HERE
            return self._run_here()  # the file is where the header read left it

    def _on_host(self, work: PortableWork, descriptor: int) -> T:
        """`work` on the render host, given the original behind `descriptor` (closed here). HostUnavailable
        if no host takes it; RenderProcessEnded if the host ends while it runs."""
        assert self._elsewhere is not None
        address, deadline = self._elsewhere
        try:
            self.host_outcome = DONE  # answered there, whether with a result or with the work's own error
            result: T = run_on_host(address, descriptor, Job(work, self._start), deadline)
            return result
        except HostDied:
            self.host_outcome = LOST
            raise RenderProcessEnded() from None
        finally:
            os.close(descriptor)

    def _run_here(self) -> T:
        assert self._prepared is not None
        if self._is_big is not None and self._is_big(self._prepared.peak_bytes):
            give_back_freed_memory()  # its decode can't reuse what smaller renders freed
        return self._prepared.run()

    def caller_done(self) -> None:
        """The caller stops waiting: close now unless a thread holds the job (it closes when done)."""
        with self._lock:
            self._caller_done = True
            if self._in_thread:
                return
        self._close()

    @contextlib.contextmanager
    def _trip(self) -> Iterator[None]:
        """One trip on a worker thread: timed, and marked as holding the job while it runs."""
        started = time.monotonic()
        with self._lock:
            self._in_thread = True
        failed = True
        try:
            yield
            failed = False
        finally:
            self.seconds += time.monotonic() - started
            with self._lock:
                self._in_thread = False
                close = failed or self._caller_done
            if close:
                self._close()

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._prepared is not None:
            self._prepared.close()
        self._located.close()
