"""tests.benchmarks.harness's CPU counts, read from /proc for a thread and for its process."""

import os
import threading
import time

from tests.benchmarks.harness import cpu_seconds

TICKS = os.sysconf("SC_CLK_TCK")
BUSY_SECONDS = 0.2


def test_a_busy_thread_s_cpu_is_counted_for_it_and_for_its_process() -> None:
    pid, thread = os.getpid(), threading.get_native_id()
    thread_before, process_before = cpu_seconds(pid, thread), cpu_seconds(pid)
    started = time.thread_time()
    while time.thread_time() - started < BUSY_SECONDS:  # bounded: ends after that much CPU
        pass
    thread_spent = cpu_seconds(pid, thread) - thread_before
    assert BUSY_SECONDS - 0.05 <= thread_spent < BUSY_SECONDS + 1.0  # /proc counts in clock ticks
    # Each of the four counts (user and system, before and after) is cut down to whole clock ticks on its
    # own, for the thread and for the process apart: the two differences may part by up to four ticks.
    assert cpu_seconds(pid) - process_before >= thread_spent - 4 / TICKS
