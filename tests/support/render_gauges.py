"""A render pool's observer for tests: keeps what the pool reported about its queue and memory budget."""


class RecordingGauges:
    """Implements the pool's RenderObserver; `queue` holds every (waiting, running) it reported, `memory`
    every (reserved, waiting)."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, int]] = [(0, 0)]
        self.memory: list[tuple[int, int]] = []

    def render_queue(self, waiting: int, running: int) -> None:
        """Keep the report, in order."""
        self.queue.append((waiting, running))

    def render_memory(self, reserved: int, waiting: int) -> None:
        """Keep the report, in order."""
        self.memory.append((reserved, waiting))
