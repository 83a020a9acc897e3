"""The links file in force: one Originals per entry, found by link scheme and bucket, reloaded on SIGHUP.

A reload reads and checks the new file off the event loop, then swaps the table in one step on
the loop. Requests already resolved keep the Originals (and provider) they hold, so none is
dropped; entries that did not change keep theirs, with their fills and storage-tier keys. A bad
new file is refused with one log line and the old one stays in use.
"""

import asyncio
import logging
from collections.abc import Callable

from proxy.settings.errors import ConfigError
from proxy.storage.config import StorageConfig
from proxy.storage.links.config import LinksConfig
from proxy.storage.links.entry import LinkEntry
from proxy.storage.links.sources import LinkRef, LinkTable
from proxy.storage.provider import StorageProvider
from proxy.tiers.originals import Originals

log = logging.getLogger(__name__)
Link = tuple[Originals, StorageProvider]


class LinkedOriginals:
    """Resolves link sources to the Originals of the entry that lists their bucket."""

    def __init__(self, config: LinksConfig, base: StorageConfig, build: Callable[[LinkEntry], Link],
                 on_read: Callable[[bool], object] = lambda succeeded: None) -> None:
        """`on_read` hears of every read of the file: this first one, then each reload and whether it was taken."""
        self._base = base
        self._on_read = on_read
        self._build = build
        self._table = LinkTable(config)
        self._links: dict[LinkEntry, Link] = {entry: build(entry) for entry in config.entries}
        self._retired: list[Link] = []  # replaced by a reload, kept while their fills run
        self._lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[bool]] = set()
        on_read(True)

    @property
    def config(self) -> LinksConfig:
        """The links file in force."""
        return self._table.config

    def resolve(self, link: LinkRef) -> Originals:
        """The Originals serving `link`, or ObjectNotFound (404) if no entry lists its bucket."""
        return self._links[self._table.find(link.scheme, link.ref.bucket)][0]

    def provider(self, link: LinkRef) -> StorageProvider:
        """The provider of the entry that lists `link`'s bucket (writes go there), or ObjectNotFound (404)."""
        return self._links[self._table.find(link.scheme, link.ref.bucket)][1]

    async def reload(self) -> bool:
        """Read the file again; on success swap it in, on error keep the old one. Returns which."""
        async with self._lock:
            try:
                config = await asyncio.to_thread(self._table.config.reread, self._base)
            except ConfigError as error:
                log.error("links file not reloaded; the previous one stays in use: %s", error)
                self._on_read(False)
                return False
            kept = sum(1 for entry in config.entries if entry in self._links)
            links = {entry: self._links.get(entry) or self._build(entry) for entry in config.entries}
            retired = [link for entry, link in self._links.items() if entry not in links]
            self._table, self._links = LinkTable(config), links
            self._retired = [link for link in self._retired + retired if link[0].busy]
            log.info("links file %s reloaded: %d entries (%d unchanged), %d retired",
                     config.path, len(links), kept, len(retired))
            self._on_read(True)
            return True

    def reload_soon(self) -> None:
        """Start a reload (the SIGHUP handler: it can't await)."""
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def close(self) -> None:
        """Cancel fills and release every provider, current and retired (at shutdown)."""
        for originals, provider in [*self._links.values(), *self._retired]:
            await originals.close()
            await provider.close()
