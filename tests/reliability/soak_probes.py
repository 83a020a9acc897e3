"""What the soak measures besides answers: every server process's RSS over time, and the tiers' disk use.

Processes are the server's pid and everything below it (a supervisor's workers, and the workers that
replace them), found again at each sample so that a restarted worker is seen too.
"""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024
TIERS = ("storage", "previews", "image-converter")


@dataclass
class RssTrack:
    """One process's resident set size: first sample, the sample at the end of warm-up, last and peak."""

    pid: int
    role: str
    first: int = 0
    warm: int = 0
    last: int = 0
    peak: int = 0
    samples: int = 0

    def add(self, rss: int, warmed_up: bool) -> None:
        """Record one sample."""
        if not self.samples:
            self.first = rss
        if warmed_up and not self.warm:
            self.warm = rss
        self.last, self.peak, self.samples = rss, max(self.peak, rss), self.samples + 1

    def growth_after_warm_up(self) -> int:
        """Bytes gained between the end of warm-up and the last sample (0 when it ended before warm-up)."""
        return self.last - self.warm if self.warm else 0


@dataclass
class RssSampler:
    """Samples `root` and its descendants every `interval` seconds in a thread, until stopped."""

    root: int
    interval: float
    warm_up: float  # seconds after start that count as warm-up
    tracks: dict[int, RssTrack] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "RssSampler":
        """Begin sampling."""
        self._thread.start()
        return self

    def stop(self) -> list[RssTrack]:
        """Take a last sample and return every track, the root first."""
        self._stop.set()
        self._thread.join(self.interval + 5)
        self.sample()
        return sorted(self.tracks.values(), key=lambda track: (track.pid != self.root, track.pid))

    def sample(self) -> None:
        """One sample of every live process of the tree."""
        warmed_up = time.monotonic() - self._started >= self.warm_up
        for pid in [self.root, *descendants(self.root)]:
            rss = resident_bytes(pid)
            if rss is None:
                continue
            role = "server" if pid == self.root else _role(pid)
            self.tracks.setdefault(pid, RssTrack(pid, role)).add(rss, warmed_up)
        if len(self.tracks) > 1 and self.root in self.tracks:
            self.tracks[self.root].role = "supervisor"

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def _role(pid: int) -> str:
    """What a process below the server is, from its command line (multiprocessing's spawn helpers say)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "gone"
    if b"proxy.render.host" in command:
        return "render-host"
    return "resource-tracker" if b"resource_tracker" in command else "worker"


def resident_bytes(pid: int) -> int | None:
    """VmRSS of `pid`, or None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def descendants(root: int) -> list[int]:
    """Every process below `root`, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found: list[int] = []
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - set(found)
        found += sorted(frontier)
    return found


def tier_sizes(cache_root: Path) -> dict[str, int]:
    """Bytes on disk under each tier's folder (entries, part files, the database and its WAL)."""
    sizes = {}
    for tier in TIERS:
        folder = cache_root / tier
        total = 0
        if folder.is_dir():
            for path in folder.rglob("*"):
                try:
                    if path.is_file():
                        total += path.stat().st_size
                except OSError:
                    continue  # evicted meanwhile
        sizes[tier] = total
    return sizes
