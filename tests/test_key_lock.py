"""cache.key_lock: one holder per key across processes, one file for every key, best effort.

Real processes (spawned) contend for real byte-range locks in a temporary folder; nothing is mocked.
"""

import asyncio
import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

import pytest

from cache.config import TierConfig
from cache.errors import LockTimeout
from cache.key_lock import KEYS_FILE, LOCKS_FOLDER, KeyLocks
from cache.startup import prepare_tiers

PROCESSES = 3
ROUNDS = 150


def _no_errors(operation: str, error: OSError) -> None:
    raise AssertionError(f"unexpected lock error in {operation}: {error}")


def _hammer(folder: str, counter: str, rounds: int) -> None:
    """In a spawned process: add 1 to a counter file `rounds` times, each read-modify-write under the lock."""

    async def run() -> None:
        locks = KeyLocks(Path(folder), _no_errors)
        path = Path(counter)
        for _ in range(rounds):
            async with locks.hold("the one key", max_wait=60):
                value = int(await asyncio.to_thread(path.read_text))
                await asyncio.sleep(0)  # give every other process the chance to interleave
                await asyncio.to_thread(path.write_text, str(value + 1))

    asyncio.run(run())


def test_processes_take_turns_and_share_one_file(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    folder = tmp_path / "locks"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_hammer, args=(str(folder), str(counter), ROUNDS)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    # Any overlap of two holders loses an update (both read the same value).
    assert int(counter.read_text()) == PROCESSES * ROUNDS
    assert [path.name for path in folder.iterdir()] == [KEYS_FILE], "no file per key"


def test_a_waiter_gets_the_lock_when_the_holder_lets_go(tmp_path: Path) -> None:
    async def run() -> None:
        locks = KeyLocks(tmp_path / "locks", _no_errors)
        others = KeyLocks(tmp_path / "locks", _no_errors)  # each hold opens the file: this contends like a process
        released = asyncio.Event()
        holding = asyncio.Event()

        async def holder() -> None:
            async with locks.hold("k", max_wait=5) as waited:
                assert waited is False
                holding.set()
                await released.wait()

        task = asyncio.create_task(holder())
        await holding.wait()
        with pytest.raises(LockTimeout):
            async with others.hold("k", max_wait=0.05):
                raise AssertionError("the lock is held elsewhere")
        waiter = asyncio.create_task(_enter_and_report(others, "k"))
        await asyncio.sleep(0.1)  # a bounded look: it must still be waiting, not inside
        assert not waiter.done()
        released.set()
        await task
        assert await asyncio.wait_for(waiter, 5) is True
        # An unrelated key never waits for another key's holder.
        async with locks.hold("k", max_wait=5), others.hold("another key", max_wait=0) as waited:
            assert waited is False

    asyncio.run(run())


async def _enter_and_report(locks: KeyLocks, key: str) -> bool:
    async with locks.hold(key, max_wait=5) as waited:
        return waited


def test_a_cancelled_waiter_leaves_no_lock_behind(tmp_path: Path) -> None:
    async def run() -> None:
        holder, waiter, later = (KeyLocks(tmp_path / "locks", _no_errors) for _ in range(3))
        async with holder.hold("k", max_wait=5):
            task = asyncio.create_task(_enter_and_report(waiter, "k"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        async with later.hold("k", max_wait=0) as waited:
            assert waited is False, "nobody may hold the key once its holder and the cancelled waiter are gone"

    asyncio.run(run())


def test_an_unusable_folder_runs_the_block_unlocked_and_reports_it(tmp_path: Path) -> None:
    (tmp_path / "locks").write_text("a file where the lock folder should be")
    errors: list[tuple[str, OSError]] = []

    async def run() -> bool:
        async with KeyLocks(tmp_path / "locks", lambda op, error: errors.append((op, error))).hold("k", 1) as waited:
            return waited

    assert asyncio.run(run()) is False
    assert len(errors) == 1 and isinstance(errors[0][1], OSError)


def test_a_second_hold_in_the_same_process_waits_like_another_process(tmp_path: Path) -> None:
    # A POSIX record lock belongs to the process, so a second try from it would succeed: the lock is the open file's.
    async def run() -> None:
        locks = KeyLocks(tmp_path / "locks", _no_errors)
        async with locks.hold("k", max_wait=5):
            with pytest.raises(LockTimeout):
                async with locks.hold("k", max_wait=0.05):
                    raise AssertionError("the same key twice at once")

    asyncio.run(run())


def _hold_until_killed(folder: str, holding: "multiprocessing.synchronize.Event") -> None:
    """In a spawned process: take the key's lock, say so, and keep it until killed."""

    async def run() -> None:
        async with KeyLocks(Path(folder), _no_errors).hold("k", max_wait=5):
            holding.set()
            await asyncio.Event().wait()

    asyncio.run(run())


def test_the_lock_of_a_killed_holder_is_free_at_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    holding = context.Event()
    holder = context.Process(target=_hold_until_killed, args=(str(tmp_path / "locks"), holding))
    holder.start()
    try:
        assert holding.wait(60), "the holder never took the lock"

        async def held_elsewhere() -> bool:
            try:
                async with KeyLocks(tmp_path / "locks", _no_errors).hold("k", max_wait=0):
                    return False
            except LockTimeout:
                return True

        assert asyncio.run(held_elsewhere()) is True
        holder.kill()
        holder.join(30)

        async def free() -> bool:
            async with KeyLocks(tmp_path / "locks", _no_errors).hold("k", max_wait=0) as waited:
                return waited

        assert asyncio.run(free()) is False, "the kernel let go of the dead holder's lock"
    finally:
        holder.kill()
        holder.join(30)


def test_start_up_removes_old_lock_files_and_keeps_the_keys_file(tmp_path: Path) -> None:
    config = TierConfig(name="previews", path=tmp_path / "previews", size_limit=1 << 24, idle_seconds=60.0)
    locks = config.path / LOCKS_FOLDER

    async def hold_once() -> None:
        async with KeyLocks(locks, _no_errors).hold("k", max_wait=0):
            pass

    asyncio.run(hold_once())
    (locks / f"{'0' * 64}.lock").write_text("")  # left by a crashed holder of an older version
    prepare_tiers((config,))
    assert [path.name for path in locks.iterdir()] == [KEYS_FILE]
