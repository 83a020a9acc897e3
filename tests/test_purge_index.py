"""The purge index on real tiers in a temporary folder: what a commit is checked against, how the index
stays bounded (rows of evicted entries pruned, old purge records dropped), and that a second process's
view (another PurgeIndex on the same folder) sees the same records and generation, and that the workers
of a server can open it at once on a new folder."""

import multiprocessing
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache.disk_tier import DiskTier
from cache.purge.index import ENTRY, PREFIX, SOURCE, PurgeIndex
from tests.support.disk_tiers import RecordingObserver, meta_for, payload, tier_opener

SOURCE_A, SOURCE_B = "ns\nphotos\ndir/a.jpg", "ns\nphotos\nother/b.jpg"


@pytest.fixture
def tiers(tmp_path: Path) -> Iterator[dict[str, DiskTier]]:
    """The previews and storage tiers under tmp_path/cache."""
    with tier_opener(tmp_path / "cache", RecordingObserver()) as open_tier:
        yield {name: open_tier(name) for name in ("previews", "storage")}


@pytest.fixture
def index(tmp_path: Path) -> Iterator[PurgeIndex]:
    """The purge index beside the tiers."""
    opened = PurgeIndex(tmp_path / "cache")
    yield opened
    opened.close()


def store(index: PurgeIndex, tier: DiskTier, key: str, source: str, since: int) -> bool:
    """A small entry committed through the index."""
    data = payload(key, 1000)
    return index.store_bytes(tier, key, data, meta_for(data), source, since)


@pytest.mark.parametrize(("kind", "target", "tier", "refused"), [
    (SOURCE, SOURCE_A, "", True),
    (SOURCE, SOURCE_B, "", False),  # another original
    (PREFIX, "ns\nphotos\ndir/", "", True),
    (PREFIX, "ns\nphotos\ndirt/", "", False),
    (ENTRY, f"opts\n{SOURCE_A}\n", "previews", True),
    (ENTRY, f"other-opts\n{SOURCE_A}\n", "previews", False),  # another preview of the same original
])
def test_a_commit_is_refused_only_by_a_purge_since_its_start_that_covers_it(
        tiers: dict[str, DiskTier], index: PurgeIndex, kind: str, target: str, tier: str, refused: bool):
    since = index.generation.read()
    index.purge(tiers, kind, target, tier)

    committed = store(index, tiers["previews"], f"opts\n{SOURCE_A}\n\"v1\"\npng", SOURCE_A, since)

    assert committed is not refused
    assert tiers["previews"].holds(f"opts\n{SOURCE_A}\n\"v1\"\npng") is not refused
    # Started after the purge: never refused by it.
    assert store(index, tiers["previews"], f"opts\n{SOURCE_A}\n\"v2\"\npng", SOURCE_A, index.generation.read())


def test_a_purge_removes_what_was_indexed_and_another_process_sees_it(tmp_path: Path, tiers: dict[str, DiskTier],
                                                                      index: PurgeIndex):
    for number in range(3):
        assert store(index, tiers["previews"], f"opts{number}\n{SOURCE_A}\n\"v1\"\npng", SOURCE_A, 0)
    assert store(index, tiers["storage"], SOURCE_A, SOURCE_A, 0)
    assert store(index, tiers["previews"], f"opts\n{SOURCE_B}\n\"v1\"\npng", SOURCE_B, 0)
    other_process = PurgeIndex(tmp_path / "cache")
    try:
        before = other_process.generation.read()
        assert other_process.purge(tiers, SOURCE, SOURCE_A) == {"previews": 3, "storage": 1}
        assert index.generation.read() == before + 1  # the mapped counter is shared
    finally:
        other_process.close()
    assert [row[2] for row in index.rows()] == [SOURCE_B]


def test_rows_of_evicted_entries_are_pruned_and_old_purge_records_dropped(tiers: dict[str, DiskTier],
                                                                          index: PurgeIndex):
    keys = [f"opts{number}\n{SOURCE_A}\n\"v1\"\npng" for number in range(10)]
    for key in keys:
        assert store(index, tiers["previews"], key, SOURCE_A, 0)
    for key in keys[:7]:
        tiers["previews"].remove(key)  # as an eviction would, behind the index's back

    walks = [index.prune(tiers, batch=3) for _ in range(4)]  # batches of 3: the walk ends on the 4th

    assert walks == [False, False, False, True]
    assert sorted(row[1] for row in index.rows()) == sorted(keys[7:])

    index.purge(tiers, SOURCE, SOURCE_B)
    with sqlite3.connect(index.path) as db:  # a day later, as far as the records know
        db.execute("UPDATE purges SET at = at - 2 * 86400")
    index.prune(tiers, batch=100)
    # A fill that began before the oldest record kept can't be checked: it is refused.
    assert not store(index, tiers["previews"], f"late\n{SOURCE_A}\n\"v1\"\npng", SOURCE_A, 0)
    assert store(index, tiers["previews"], f"late\n{SOURCE_A}\n\"v1\"\npng", SOURCE_A, index.generation.read())


ROUNDS, PROCESSES = 30, 4  # a fifth of the rounds failed before the set-up was taken in turns


def _open_index(root: Path, start: "multiprocessing.synchronize.Barrier",
                results: "multiprocessing.Queue[str]") -> None:
    start.wait(timeout=30)
    try:
        PurgeIndex(root).close()
        results.put("opened")
    except sqlite3.Error as error:
        results.put(repr(error))


def test_worker_processes_starting_at_once_all_open_a_new_index(tmp_path: Path) -> None:
    # fork, quicker to start than the server's spawn: each process opens its own connection all the same.
    context = multiprocessing.get_context("fork")
    failures = []
    for round_number in range(ROUNDS):
        start, results = context.Barrier(PROCESSES), context.Queue()
        processes = [context.Process(target=_open_index, args=(tmp_path / str(round_number), start, results))
                     for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=30)
        failures += [outcome for outcome in (results.get(timeout=30) for _ in processes) if outcome != "opened"]
    assert failures == []
