"""Every canvas a render will allocate, and its peak memory, known from the header before any decode.

The sizes come from the same functions the steps call (previews.steps.*), so the plan and the
pipeline can't drift apart; the bytes come from previews.limits.pixel_memory. A render holds its decoded
source to the end and, during each step, the step's input and what the step allocates.
"""

import math
from dataclasses import dataclass, field

from previews.grammar.options import GravityType
from previews.imaging.job import Job
from previews.limits.pixel_memory import (
    DEFAULT_CODEC_BYTES_PER_PIXEL,
    ENCODER_BYTES_PER_PIXEL,
    ESTIMATE_MARGIN,
    JOB_OVERHEAD_BYTES,
    bytes_per_pixel,
    image_bytes,
)
from previews.steps.canvas import extended_size, needs_flatten, padded_size
from previews.steps.crop import result_crop_size, source_crop_size
from previews.steps.orient import transpositions
from previews.steps.resize import REDUCING_GAP, resize_target

_TURNS = frozenset({"TRANSPOSE", "TRANSVERSE", "ROTATE_90", "ROTATE_270"})
_GREY = frozenset({"1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
# Steps from the resize on make what the request sizes: the result bounds apply to them.
RESULT_STAGES = frozenset({"resize", "crop_to_result", "extend", "pad", "flatten", "result"})


@dataclass(frozen=True)
class Canvas:
    """One image a step allocates."""

    stage: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        """Width times height."""
        return self.width * self.height


@dataclass
class RenderPlan:
    """The canvases in order (the last is the result) and the most bytes held at any moment (with a margin)."""

    decoded_bytes: int  # the decoded source and its decoder's own buffers, held to the end
    canvases: list[Canvas] = field(default_factory=list)
    peak_bytes: int = 0
    _current: int = 0  # the picture being carried from step to step (0 while it is the source itself)

    def allocate(self, stage: str, size: tuple[int, int], mode: str, scratch: int = 0) -> None:
        """A step makes a `size` image in `mode`, using `scratch` bytes more while it runs."""
        made = image_bytes(size, mode)
        self.peak_bytes = max(self.peak_bytes, self.decoded_bytes + self._current + made + scratch)
        self._current = made
        self.canvases.append(Canvas(stage, *size))

    def encode(self, size: tuple[int, int], bytes_per_pixel: int) -> None:
        """The encoder's working memory on the final image (the result), then the margin on the peak."""
        peak = max(self.peak_bytes, self.decoded_bytes + self._current + size[0] * size[1] * bytes_per_pixel)
        self.peak_bytes = int(peak * ESTIMATE_MARGIN) + JOB_OVERHEAD_BYTES
        self.canvases.append(Canvas("result", *size))

    def result_canvases(self) -> list[Canvas]:
        """The canvases the result bounds apply to."""
        return [canvas for canvas in self.canvases if canvas.stage in RESULT_STAGES]


def plan_render(job: Job, loaded: tuple[int, int], mode: str, decoder_bytes: int) -> RenderPlan:
    """The plan of the pipeline (previews.imaging.pipeline.STEPS, then the encoder) for a source decoded at
    `loaded` in `mode`, whose decoder needs `decoder_bytes` of its own."""
    decoded = image_bytes(loaded, mode) + decoder_bytes
    plan = RenderPlan(decoded, peak_bytes=decoded)
    size = loaded
    for move in transpositions(job):
        size = (size[1], size[0]) if move.name in _TURNS else size
        plan.allocate("orient", size, mode)
    mode = _eight_bit(plan, size, mode)
    if job.source.icc_profile is not None or mode == "CMYK":
        mode = "RGBA" if mode == "RGBA" else ("L" if mode == "L" else "RGB")
        plan.allocate("to_srgb", size, mode)
    if job.options.crop is not None and source_crop_size(size, job) != size:
        size = source_crop_size(size, job)
        plan.allocate("crop_source", size, mode)
    size = _resize(plan, job, size, mode)
    if result_crop_size(size, job) != size:
        smart = image_bytes(size, "L") if job.options.gravity.type is GravityType.SMART else 0
        size = result_crop_size(size, job)
        plan.allocate("crop_to_result", size, mode, scratch=smart)
    for amount in (job.options.blur, job.options.sharpen):
        if amount > 0:
            plan.allocate("filter", size, mode, scratch=image_bytes(size, mode))
    for stage, grow in (("extend", extended_size), ("pad", padded_size)):
        grown = grow(size, job)
        if grown is not None:
            mode, copy = _placed_mode(job, size, mode)
            size = grown
            plan.allocate(stage, size, mode, scratch=copy)
    if needs_flatten(mode, job):
        mode = "RGB"
        plan.allocate("flatten", size, mode, scratch=image_bytes(size, "L"))
    encoder = ENCODER_BYTES_PER_PIXEL.get(job.output.name, DEFAULT_CODEC_BYTES_PER_PIXEL)
    plan.encode(size, encoder)
    return plan


def _eight_bit(plan: RenderPlan, size: tuple[int, int], mode: str) -> str:
    """previews.steps.colour.to_8bit's conversions: 16-bit, float, palettes and odd modes to L, RGB(A)."""
    if mode in ("RGB", "RGBA", "L", "CMYK"):
        return mode
    if mode in _GREY:
        for _ in range(2 if mode.startswith("I;16") else 1):
            plan.allocate("to_8bit", size, "I")  # 32-bit steps before the 8-bit result
        plan.allocate("to_8bit", size, "L")
        return "L"
    final = "RGBA" if "A" in mode or mode == "P" else "RGB"  # a palette may carry transparency
    plan.allocate("to_8bit", size, final)
    return final


def _placed_mode(job: Job, size: tuple[int, int], mode: str) -> tuple[str, int]:
    """previews.steps.canvas._place: the new canvas's mode, and the copy (RGBA) or mask (alpha) it takes."""
    if job.options.background is None and job.output.keeps_alpha:
        return "RGBA", 0 if mode == "RGBA" else image_bytes(size, "RGBA")
    mask = image_bytes(size, "L") if "A" in mode else 0
    return ("L" if mode == "L" and job.options.background is None else "RGB"), mask


def _resize(plan: RenderPlan, job: Job, size: tuple[int, int], mode: str) -> tuple[int, int]:
    """Image.resize with a reducing gap: a box reduction by whole factors, then Lanczos in two passes
    (the horizontal pass writes a target-wide, source-high image); alpha is premultiplied on a copy."""
    target = resize_target(job)
    if target == size:
        return size
    factor_x = int(size[0] / target[0] / REDUCING_GAP) or 1
    factor_y = int(size[1] / target[1] / REDUCING_GAP) or 1
    if factor_x > 1 or factor_y > 1:
        size = (math.ceil(size[0] / factor_x), math.ceil(size[1] / factor_y))
        plan.allocate("reduce", size, mode)
    scratch = target[0] * size[1] * bytes_per_pixel(mode) if target[0] != size[0] and target[1] != size[1] else 0
    if "A" in mode:
        scratch += image_bytes(size, mode) + image_bytes(target, mode)
    plan.allocate("resize", target, mode, scratch=scratch)
    return target
