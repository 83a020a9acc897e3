"""A request for a preview whose render runs in this process joins it without looking in the store first,
and a small stored preview is found and read in one trip off the event loop.

The app is built in this process as a worker builds it and served on a loopback port (aiohttp's
TestServer); the render is held at a gate (a slow render, injected) until the joiners have joined. The
tier's lookups and the trips off the event loop are counted, not replaced.
"""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from previews.imaging.decoded import keep_decoded_images
from proxy.app import build_app
from proxy.app_keys import RENDER_POOL, TIERS
from proxy.config import Config
from proxy.tiers import preview_store
from tests.support.previews_kit import place, smallest_file

BUCKET, KEY = "photos", "cat.jpg"
URL = f"/previews/q/rs:fit:120:0/plain/{BUCKET}/{KEY}"
JOINERS = 4


def _joined(text: str) -> float:
    """Requests that joined a previews render, from /metrics."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "preview_proxy_singleflight_waiters_total" and sample.labels.get("tier") == "previews":
                return sample.value
    return 0.0


def _counting(calls: list[str], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return function(*args, **kwargs)
    return counted


async def _joiners_and_a_hit(tmp_path: Path, photo: Path, monkeypatch: pytest.MonkeyPatch
                             ) -> tuple[list[tuple[int, str, bytes]], list[str], int]:
    place(tmp_path / "data", BUCKET, KEY, photo)
    config = Config.from_env({"DATA_PATH": str(tmp_path / "data"), "CACHE_PATH": str(tmp_path / "cache")})
    app = build_app(config)
    previews_tier = next(tier for tier in app[TIERS] if tier.name == "previews")
    lookups: list[str] = []
    previews_tier.lookup = _counting(lookups, "lookup", previews_tier.lookup)  # type: ignore[method-assign]
    gate, rendering = asyncio.Event(), asyncio.Event()
    pool = app[RENDER_POOL]
    run = pool.run

    async def held_run(*args: Any, **kwargs: Any) -> Any:
        rendering.set()
        await gate.wait()
        return await run(*args, **kwargs)

    pool.run = held_run  # type: ignore[method-assign]
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        async def get(path: str = URL) -> tuple[int, str, bytes]:
            async with session.get(server.make_url(path)) as response:
                return response.status, response.headers.get("X-Cache", ""), await response.read()

        async def joined() -> float:
            async with session.get(server.make_url("/metrics")) as response:
                return _joined(await response.text())

        first = asyncio.create_task(get())
        await asyncio.wait_for(rendering.wait(), 30)
        others = [asyncio.create_task(get()) for _ in range(JOINERS)]
        for _ in range(3000):  # bounded: 30 s at most
            if await joined() >= JOINERS:
                break
            await asyncio.sleep(0.01)
        gate.set()
        answers = [await first] + [await task for task in others]
    # Another worker's first request for it: nothing in its memory, the preview in the tier.
    other = build_app(config)
    trips: list[str] = []
    to_thread = asyncio.to_thread

    async def counted_trip(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(function, "__name__", "?"))
        return await to_thread(function, *args, **kwargs)

    async with TestServer(other) as server, aiohttp.ClientSession() as session:
        monkeypatch.setattr(preview_store.asyncio, "to_thread", counted_trip)
        async with session.get(server.make_url(URL)) as response:
            answers.append((response.status, response.headers.get("X-Cache", ""), await response.read()))
        monkeypatch.undo()
    return answers, trips, len(lookups)


def test_joiners_of_a_render_in_flight_dont_look_in_the_store(tmp_path: Path, photos: list[Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        answers, trips, lookups = asyncio.run(_joiners_and_a_hit(tmp_path, smallest_file(photos), monkeypatch))
    finally:
        keep_decoded_images(0)  # build_app turned keeping on for this process
    made, *joined, hit = answers
    assert made[:2] == (200, "MISS")
    assert all(answer == (200, "HIT", made[2]) for answer in joined)
    # The first request's look, and its look again under the lock: none for the joiners.
    assert lookups == 2, f"{lookups} lookups in the previews tier for one render and {JOINERS} joiners"
    assert hit == (200, "HIT", made[2])
    # The store's trips off the event loop for that read (the original's description has its own).
    store_trips = [trip for trip in trips if trip in ("_lookup_and_read", "lookup", "_read_all")]
    assert store_trips == ["_lookup_and_read"], trips
