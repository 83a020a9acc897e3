"""The image information document (info.json) of Image API 2.1 and 3.0, from the image's size and the limits.

Tiles are 512 px squares at scale factors that halve the image until it fits one tile; `sizes` are the
image at those factors, so a viewer's first screen is one small request. Both are made from the image's
header alone.
"""

import math
from typing import Any

from previews.iiif.output import FORMATS, QUALITIES
from previews.iiif.size import SizeLimits

TILE_SIZE = 512
PROTOCOL = "http://iiif.io/api/image"
CONTEXTS = {2: "http://iiif.io/api/image/2/context.json", 3: "http://iiif.io/api/image/3/context.json"}
PROFILES = {2: "http://iiif.io/api/image/2/level2.json", 3: "http://iiif.io/api/image/3/level2.json"}
# Beyond level 2's (3.0 section 5.3): what this server does too. `cors` only when CORS_ALLOW_ORIGINS is set.
EXTRA_FEATURES = ("baseUriRedirect", "canonicalLinkHeader", "jsonldMediaType", "mirroring", "profileLinkHeader",
                  "rotationArbitrary", "sizeUpscaling")
# 2.1's level 2 leaves these out of its profile; they are listed under `supports`.
SUPPORTS_2 = ("baseUriRedirect", "canonicalLinkHeader", "jsonldMediaType", "mirroring", "profileLinkHeader",
              "regionSquare", "rotationArbitrary", "sizeAboveFull")
LEVEL2_FORMATS = ("jpg", "png")


def scale_factors(width: int, height: int, tile: int = TILE_SIZE) -> list[int]:
    """1, 2, 4, ... up to the first factor at which the whole image fits one tile."""
    factors = [1]
    while math.ceil(max(width, height) / factors[-1]) > tile:
        factors.append(factors[-1] * 2)
    return factors


def info_document(version: int, service_id: str, width: int, height: int, limits: SizeLimits,
                  cors: bool) -> dict[str, Any]:
    """info.json for the image at `service_id` (its base URI), `width` x `height` as stored."""
    factors = scale_factors(width, height)
    sizes = [{"width": math.ceil(width / factor), "height": math.ceil(height / factor)}
             for factor in reversed(factors)]
    sizes = [size for size in sizes if _within(size["width"], size["height"], limits)]
    tiles = [{"width": TILE_SIZE, "height": TILE_SIZE, "scaleFactors": factors}]
    extra_formats = [name for name in FORMATS if name not in LEVEL2_FORMATS]
    limit_fields = {name: value for name, value in (("maxWidth", limits.max_width), ("maxHeight", limits.max_height),
                                                    ("maxArea", limits.max_area)) if value}
    if version == 2:
        profile = {"formats": list(FORMATS), "qualities": list(QUALITIES),
                   "supports": sorted([*SUPPORTS_2, *(["cors"] if cors else [])]), **limit_fields}
        return {"@context": CONTEXTS[2], "@id": service_id, "protocol": PROTOCOL, "width": width, "height": height,
                "profile": [PROFILES[2], profile], "sizes": sizes, "tiles": tiles}
    return {"@context": CONTEXTS[3], "id": service_id, "type": "ImageService3", "protocol": PROTOCOL,
            "profile": "level2", "width": width, "height": height, **limit_fields, "sizes": sizes, "tiles": tiles,
            "extraQualities": ["color", "gray", "bitonal"], "extraFormats": extra_formats,
            "extraFeatures": sorted([*EXTRA_FEATURES, *(["cors"] if cors else [])])}


def _within(width: int, height: int, limits: SizeLimits) -> bool:
    return not ((limits.max_width and width > limits.max_width) or (limits.max_height and height > limits.max_height)
                or (limits.max_area and width * height > limits.max_area))
