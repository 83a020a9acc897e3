"""The result bounds: no image a render makes from the resize on may pass IMGPROXY_MAX_RESULT_DIMENSION
on a side or IMGPROXY_MAX_RESULT_RESOLUTION in pixels.

Each option is checked against its own bound when the URL is parsed, but together they multiply
(enlarge, dpr, zoom, min-width, extend, padding): the bounds are checked on the planned canvases
(previews.limits.render_plan), from the options and the source's header, before a pixel is decoded. Before
the resize, canvases are no larger than the source, which IMGPROXY_MAX_SRC_RESOLUTION bounds.
"""

from previews.config import RenderConfig
from previews.errors import ResultTooLarge
from previews.limits.render_plan import RenderPlan


def check_result_bounds(plan: RenderPlan, config: RenderConfig) -> None:
    """Raise ResultTooLarge (422), naming the limit and the stage, at the first canvas over a bound."""
    side, pixels = config.max_result_dimension, config.max_result_resolution
    for canvas in plan.result_canvases():
        made = f"{canvas.width}x{canvas.height}"
        if side and max(canvas.width, canvas.height) > side:
            raise ResultTooLarge(f"the request makes a {made} image ({canvas.stage}), over "
                                 f"IMGPROXY_MAX_RESULT_DIMENSION={side} px a side")
        if pixels and canvas.pixels > pixels:
            raise ResultTooLarge(f"the request makes a {made} image ({canvas.stage}, {canvas.pixels / 1e6:.1f} MP), "
                                 f"over IMGPROXY_MAX_RESULT_RESOLUTION={pixels / 1e6:g} MP")
