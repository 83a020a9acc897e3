"""The named stages of one blocking image job (a render or a conversion): deadline and failure reasons.

The deadline is checked on entering each stage. Past the header, Pillow fails on what an image holds
(an odd mode, a broken profile) with exceptions of many types; such a failure becomes an
UnsupportedImage naming the stage, so that a failure of ours is told apart in the log and the body.
"""

import time
from collections.abc import Iterable
from types import TracebackType

from PIL import Image

from previews.errors import PreviewError, RenderDeadlinePassed, UnsupportedImage
from previews.imaging.job import Job
from previews.imaging.pipeline import Step


class Stages:
    """Use as `with Stages("converted", deadline) as stages:`, then `stages.enter(name)` or `stages.run(...)`."""

    def __init__(self, action: str, deadline: float) -> None:
        self.action = action  # completes "the image can't be ..."
        self.deadline = deadline  # time.monotonic() after which the job gives up
        self.current = "open"

    def enter(self, stage: str) -> None:
        """Start `stage`; raise RenderDeadlinePassed if the deadline has passed."""
        if time.monotonic() > self.deadline:
            raise RenderDeadlinePassed(f"render timed out before {stage}")
        self.current = stage

    def run(self, picture: Image.Image, steps: Iterable[Step], job: Job) -> Image.Image:
        """Apply `steps` in order, each entered as a stage under its function's name."""
        for step in steps:
            self.enter(step.__name__)
            picture = step(picture, job)
        return picture

    def __enter__(self) -> "Stages":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if isinstance(error, Exception) and not isinstance(error, PreviewError):
            reason = f"the image can't be {self.action} ({self.current}): {type(error).__name__}: {error}"
            raise UnsupportedImage(reason) from None
