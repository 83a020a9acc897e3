"""What every pipeline step may read: the options, facts about the source, the output and a deadline."""

import time
from dataclasses import dataclass

from PIL import Image

from previews.errors import RenderTimedOut
from previews.formats import OutputFormat
from previews.options import ProcessingOptions


@dataclass(frozen=True)
class SourceFacts:
    """Read from the source's header and metadata before its pixels are decoded."""

    format: str
    width: int
    height: int
    orientation: int  # EXIF orientation, 1 (upright) to 8
    icc_profile: bytes | None
    exif: Image.Exif | None  # kept as parsed; serialised only if the output keeps metadata


@dataclass(frozen=True)
class Job:
    """One render: steps read it, never change it."""

    options: ProcessingOptions
    source: SourceFacts
    output: OutputFormat
    quality: int
    deadline: float  # time.monotonic() after which the render gives up

    def check_deadline(self, step: str) -> None:
        """Raise RenderTimedOut once the deadline has passed; called between steps."""
        if time.monotonic() > self.deadline:
            raise RenderTimedOut(f"render timed out before {step}")
