"""Objects in moto, a concurrent wave of cold requests for them, and the checks of what came back.

Every object is a real photograph with a trailer of its own after the JPEG's end marker, so each
key's bytes are unique (an entry served under the wrong key shows) and still decode. A wave runs
in a thread of its own, so a test can kill processes while it is in flight; it records every
answer, and a connection cut by a kill is recorded as an error, not raised.
"""

import asyncio
import hashlib
import io
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
from PIL import Image
from yarl import URL

from tests.support.s3 import MotoS3

T = TypeVar("T")
PREVIEW_BOX = 192
TIERS = ("storage", "previews", "image-converter")


@dataclass(frozen=True)
class Objects:
    """Keys put into one bucket, and the bytes each holds."""

    bucket: str
    bodies: dict[str, bytes]

    def original_path(self, key: str) -> str:
        """The original's URL path."""
        return f"/{self.bucket}/{key}"

    def preview_path(self, key: str) -> str:
        """A preview of it, PNG or JPEG by key (both encoders get killed midway)."""
        fmt = "png" if zlib.crc32(key.encode()) % 2 else "jpeg"
        return f"/previews/q/rs:fit:{PREVIEW_BOX}:{PREVIEW_BOX}/f:{fmt}/plain/{self.bucket}/{key}"

    def all_paths(self) -> list[str]:
        """Every original and every preview, interleaved."""
        return [path for key in self.bodies for path in (self.original_path(key), self.preview_path(key))]


def seed_photos(moto: MotoS3, bucket: str, photos: Sequence[Path], count: int) -> Objects:
    """`count` objects from the corpus: the smaller photos first, then the multi-megabyte ones once each."""
    by_size = sorted(photos, key=lambda p: p.stat().st_size)
    small = [p for p in by_size if 150_000 <= p.stat().st_size <= 1_300_000]
    chosen = [p for p in by_size if p.stat().st_size > 1_300_000][:2]
    chosen += [small[index % len(small)] for index in range(count - len(chosen))]
    bodies = {}
    for index, photo in enumerate(chosen):
        key = f"wave/{index:03d}-{photo.stem}.jpg"
        body = photo.read_bytes() + f"\n{key} {uuid.uuid4().hex}\n".encode()
        moto.put(bucket, key, body, "image/jpeg")
        bodies[key] = body
    return Objects(bucket, bodies)


@dataclass
class Outcome:
    """One request of a wave: its status and body, or the error the client saw instead."""

    path: str
    status: int | None = None
    x_cache: str = ""
    body: bytes | None = None
    error: str = ""


@dataclass
class Wave:
    """GET every path at once on its own connection, in a background thread."""

    base_url: str
    paths: Sequence[str]
    timeout: float = 60.0
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> "Wave":
        """Send the requests; returns at once."""
        self._thread.start()
        return self

    def finished(self) -> int:
        """How many requests have an outcome so far."""
        with self._lock:
            return len(self.outcomes)

    def join(self) -> list[Outcome]:
        """Wait for every outcome (bounded by the client timeout) and return them."""
        self._thread.join(self.timeout + 10)
        assert not self._thread.is_alive(), "the wave's client did not finish"
        return self.outcomes

    async def _run(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(*(self._one(session, path) for path in self.paths))

    async def _one(self, session: aiohttp.ClientSession, path: str) -> None:
        outcome = Outcome(path)
        try:
            async with session.get(URL(self.base_url + path, encoded=True)) as response:
                outcome.status, outcome.x_cache = response.status, response.headers.get("X-Cache", "")
                outcome.body = await response.read()  # aiohttp raises if the body ends short
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as error:
            outcome.status, outcome.body, outcome.error = None, None, f"{type(error).__name__}: {error}"
        with self._lock:
            self.outcomes.append(outcome)


def run_wave(base_url: str, paths: Sequence[str], timeout: float = 60.0) -> list[Outcome]:
    """A whole wave, waited for."""
    return Wave(base_url, paths, timeout).start().join()


def wrong_answers(objects: Objects, outcomes: Sequence[Outcome]) -> list[str]:
    """Every complete 200 whose body is not the object (or not a whole preview of it); errors pass."""
    problems = []
    originals = {objects.original_path(key): body for key, body in objects.bodies.items()}
    for outcome in outcomes:
        if outcome.status != 200 or outcome.body is None:
            continue
        if outcome.path in originals:
            expected = originals[outcome.path]
            if _sha(outcome.body) != _sha(expected):
                problems.append(f"{outcome.path} ({outcome.x_cache}): {len(outcome.body)} bytes, "
                                f"not the {len(expected)} put")
        elif (problem := preview_problem(outcome.body)) is not None:
            problems.append(f"{outcome.path} ({outcome.x_cache}): {problem}")
    return problems


def preview_problem(body: bytes) -> str | None:
    """Why `body` is not a whole preview fitted into the box, or None when it is."""
    try:
        with Image.open(io.BytesIO(body)) as image:
            image.load()  # a truncated PNG or JPEG raises here (LOAD_TRUNCATED_IMAGES is off)
            size = image.size
    except (OSError, SyntaxError, ValueError) as error:
        return f"does not decode: {error}"
    if max(size) != PREVIEW_BOX:
        return f"decodes to {size}, not fitted into {PREVIEW_BOX}px"
    return None


def integrity_problems(cache_root: Path) -> dict[str, str]:
    """`PRAGMA integrity_check` of every tier's cache.db that exists: {tier: result}, 'ok' when sound."""
    results = {}
    for tier in TIERS:
        database = cache_root / tier / "cache.db"
        if not database.exists():
            continue
        connection = sqlite3.connect(database, timeout=10)
        try:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
        finally:
            connection.close()
        results[tier] = "; ".join(str(row[0]) for row in rows)
    return results


def committed_entries(tier_folder: Path) -> int:
    """Entries whose commit is done (rows of diskcache's table in the tier's cache.db); 0 before it exists."""
    database = tier_folder / "cache.db"
    if not database.exists():
        return 0
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        return int(connection.execute("SELECT COUNT(*) FROM Cache").fetchone()[0])
    except sqlite3.OperationalError:  # the table isn't made yet
        return 0
    finally:
        connection.close()


def part_files(cache_root: Path) -> list[Path]:
    """Unfinished fills: the part files of every tier."""
    return sorted(path for tier in TIERS if (cache_root / tier / "partial").is_dir()
                  for path in (cache_root / tier / "partial").iterdir())


def wait_until(condition: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """Poll `condition` (bounded in time and count) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        if result := condition():
            return result
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)  # pause between probes of a condition, not a wait for an event
    raise AssertionError(f"no {what} within {timeout}s")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
