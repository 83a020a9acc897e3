"""A render pool's observer for tests: keeps what the pool reported about its memory budget."""


class RecordingGauges:
    """Implements the pool's RenderObserver; `memory` holds every (reserved, waiting) it reported."""

    def __init__(self) -> None:
        self.memory: list[tuple[int, int]] = []

    def render_queue(self, waiting: int, running: int) -> None:
        """Queue figures are not what these tests look at."""

    def render_memory(self, reserved: int, waiting: int) -> None:
        """Keep the report, in order."""
        self.memory.append((reserved, waiting))
