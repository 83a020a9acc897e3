"""A matrix of S3 faults x kinds of cold request: never a short answer, never a short entry left behind.

tests/test_upstream_faults.py checks each fault's own behaviour (its status, its timeout, retries,
the breaker) on one request. Here every fault (through the TCP proxy in front of moto) meets, all at
once: a lone cold original, a crowd of joiners on one cold original, a cold preview, a range near
the start and a suffix range. While the fault lasts, each answer is an error or a whole body; once
the fault is gone, no part file remains, an original the fault broke is a MISS (nothing was left
behind), and every HIT afterwards carries the whole, sha256-equal body.
"""

import hashlib
import http.client
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import StartServer
from tests.reliability.cold_fills import Objects, Outcome, part_files, run_wave, seed_photos, wait_until, wrong_answers
from tests.support.http import request
from tests.support.previews_kit import assert_log_clean
from tests.support.s3 import MotoS3, s3_env
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import Faults, TcpProxy

KIB = 1024
JOINERS = 6
NEAR_RANGE = "bytes=0-4095"
SUFFIX_RANGE = "bytes=-4096"


@dataclass(frozen=True)
class Fault:
    """One way S3 misbehaves, and what the client may see while it lasts."""

    name: str
    inject: Callable[[Faults], None]
    statuses: frozenset[int | None]  # allowed while the fault lasts; None: the response was cut
    env: dict[str, str] = field(default_factory=dict)

    @property
    def breaks_fills(self) -> bool:
        """Whether no fill can complete while it lasts."""
        return 200 not in self.statuses


def _set(**values: object) -> Callable[[Faults], None]:
    return lambda faults: faults.__dict__.update(values)


EVERY_CONNECTION = 10**6
FAULTS = [
    Fault("latency", _set(latency=0.4), frozenset({200, 206})),
    Fault("reset-before-headers", _set(reset_after_bytes=0, reset_connections=EVERY_CONNECTION),
          frozenset({502})),
    # After the headers and part of the body: HEAD answers pass, every GET body is cut.
    Fault("reset-mid-body", _set(reset_after_bytes=96 * KIB, reset_connections=EVERY_CONNECTION),
          frozenset({None, 502})),
    Fault("black-hole", _set(black_hole=True), frozenset({504})),
    # An original's client is cut; a preview gets 502: its render's fill failed (the cause, a read
    # timeout, is in the log).
    Fault("stall-mid-body", _set(stall_after_bytes=96 * KIB), frozenset({None, 502})),
    Fault("status-500", _set(error_status=500, error_connections=EVERY_CONNECTION), frozenset({502})),
    Fault("status-503", _set(error_status=503, error_connections=EVERY_CONNECTION), frozenset({502})),
]


@dataclass(frozen=True)
class Cases:
    """One cold object per kind of request."""

    objects: Objects
    lone: str
    crowd: str
    previewed: str
    near: str
    suffix: str

    def wave_paths(self) -> list[str]:
        """The GETs sent together: the lone original, the crowd, two requests for the preview."""
        return [self.objects.original_path(self.lone), *[self.objects.original_path(self.crowd)] * JOINERS,
                *[self.objects.preview_path(self.previewed)] * 2]

    def ranges(self) -> list[tuple[str, str, bytes]]:
        """(path, Range, the bytes it must answer)."""
        near, suffix = self.objects.bodies[self.near], self.objects.bodies[self.suffix]
        return [(self.objects.original_path(self.near), NEAR_RANGE, near[:4096]),
                (self.objects.original_path(self.suffix), SUFFIX_RANGE, suffix[-4096:])]


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_a_fault_leaves_errors_or_whole_bodies_and_no_short_entry(
        fault: Fault, start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy,
        photos: list[Path], data_path: Path) -> None:
    objects = seed_photos(moto, bucket, photos, 5)
    cases = Cases(objects, *objects.bodies)
    server = start_server(**s3_env(s3_proxy.endpoint, STORAGE_RETRIES="1", STORAGE_READ_TIMEOUT="1s",
                                   STORAGE_BREAKER_FAILURES="1000000"))
    fault.inject(s3_proxy.faults)

    during = run_wave(server.base_url, cases.wave_paths(), timeout=30)
    during_ranges = [_range(server, path, header, expected) for path, header, expected in cases.ranges()]

    assert not (problems := wrong_answers(objects, during)), problems
    seen = {outcome.status for outcome in during} | {status for status, _ in during_ranges}
    assert seen <= fault.statuses, (fault.name, sorted(seen, key=str), [o.error for o in during if o.error][:3])
    assert all(whole for status, whole in during_ranges if status == 206)

    s3_proxy.faults = Faults()
    wait_until(lambda: part_files(data_path / "cache") == [], "no part files once the fault is gone", 15)
    after = run_wave(server.base_url, cases.wave_paths())
    again = run_wave(server.base_url, cases.wave_paths())
    after_ranges = [_range(server, path, header, expected) for path, header, expected in cases.ranges()]

    for outcomes in (after, again):
        assert [(o.path, o.status, o.error) for o in outcomes if o.status != 200] == []
        assert not (problems := wrong_answers(objects, outcomes)), problems
    assert after_ranges == [(206, True)] * 2
    first_of_lone = _first(after, objects.original_path(cases.lone))
    assert first_of_lone.x_cache == ("MISS" if fault.breaks_fills else "HIT"), "what the fault left behind"
    assert {o.x_cache for o in again} == {"HIT"}
    assert_log_clean(server)


def _first(outcomes: list[Outcome], path: str) -> Outcome:
    return next(outcome for outcome in outcomes if outcome.path == path)


def _range(server: ServerProcess, path: str, header: str, expected: bytes) -> tuple[int | None, bool]:
    """(status, whether a 206 carried exactly `expected`), or (None, False) when the response was cut."""
    try:
        reply = request(server.url(path), headers={"Range": header}, timeout=30)
    except TimeoutError:
        raise AssertionError(f"{path}: the server never answered") from None
    except (OSError, http.client.HTTPException):  # a reset, or IncompleteRead: the response was cut
        return None, False
    whole = reply.status == 206 and hashlib.sha256(reply.body).digest() == hashlib.sha256(expected).digest()
    return reply.status, whole
