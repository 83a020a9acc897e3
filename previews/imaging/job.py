"""What every pipeline step may read: the options, facts about the source, the output and a deadline."""

import time
from dataclasses import dataclass

from PIL import Image

from previews.errors import RenderDeadlinePassed
from previews.grammar.options import ProcessingOptions
from previews.imaging.formats import OutputFormat
from previews.imaging.geometry import crop_box_size

# EXIF orientations 5 to 8 turn the image a quarter: its width and height swap.
QUARTER_TURNS = frozenset({5, 6, 7, 8})


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

    def upright_size(self) -> tuple[int, int]:
        """The source's full-resolution size once EXIF orientation and `rotate` are applied."""
        source, options = self.source, self.options
        turned = (source.orientation in QUARTER_TURNS and options.auto_rotate) != (options.rotate in (90, 270))
        return (source.height, source.width) if turned else (source.width, source.height)

    def region_size(self) -> tuple[int, int]:
        """The full-resolution size of what is resized: the upright source, or its `crop`.

        Sizes are computed from this, never from the decoded image, which shrink-on-load may have
        made smaller: the output must not depend on how the source was decoded.
        """
        width, height = self.upright_size()
        crop = self.options.crop
        return crop_box_size(crop.width, crop.height, width, height) if crop else (width, height)

    def check_deadline(self, step: str) -> None:
        """Raise RenderDeadlinePassed once the deadline has passed; called between steps."""
        if time.monotonic() > self.deadline:
            raise RenderDeadlinePassed(f"render timed out before {step}")
