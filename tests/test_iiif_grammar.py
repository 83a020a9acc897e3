"""The IIIF Image API grammar (previews/iiif/): each parameter parsed, resolved against an image's size,
and refused with the spec's status; info.json's fields for both versions."""

import random
import string

import pytest

from previews.errors import PublicError
from previews.iiif.canonical import canonical_request, pixels_key
from previews.iiif.info import info_document, scale_factors
from previews.iiif.output import parse_format, parse_quality
from previews.iiif.region import parse_region
from previews.iiif.request import Resource, parse_iiif_path
from previews.iiif.rotation import parse_rotation
from previews.iiif.size import SizeLimits, parse_size

NO_LIMITS = SizeLimits()
LIMITS = SizeLimits(max_width=2000, max_height=1500, max_area=2_000_000)


def status_of(call, *args) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(PublicError) as raised:
        call(*args)
    assert "\n" not in raised.value.reason
    return raised.value.status


@pytest.mark.parametrize(("text", "box"), [
    ("full", (0, 0, 1200, 800)),
    ("square", (200, 0, 800, 800)),
    ("10,20,300,400", (10, 20, 300, 400)),
    ("1000,700,500,500", (1000, 700, 200, 100)),  # cut to the image
    ("pct:10,25,50,50", (120, 200, 600, 400)),
    ("pct:0.5,.5,99.5,99.5", (6, 4, 1194, 796)),
])
def test_regions_resolve_in_the_images_pixels(text: str, box: tuple[int, int, int, int]) -> None:
    assert parse_region(text).box(1200, 800) == box


@pytest.mark.parametrize("text", ["", "full,", "1,2,3", "1,2,3,4,5", "-1,0,10,10", "1.5,0,10,10", "0,0,0,10",
                                  "pct:1,2,3", "pct:1e2,0,1,1", "squar", "pct:0,0,0,5"])
def test_malformed_regions_are_400(text: str) -> None:
    assert status_of(parse_region, text) == 400


@pytest.mark.parametrize("text", ["1200,0,10,10", "0,800,10,10", "pct:100,0,10,10"])
def test_a_region_outside_the_image_is_400(text: str) -> None:
    assert status_of(parse_region(text).box, 1200, 800) == 400


@pytest.mark.parametrize(("text", "version", "size"), [
    ("max", 3, (600, 400)), ("^max", 3, (600, 400)), ("full", 2, (600, 400)), ("max", 2, (600, 400)),
    ("300,", 3, (300, 200)), (",100", 3, (150, 100)), ("pct:50", 3, (300, 200)), ("pct:12.5", 2, (75, 50)),
    ("200,50", 3, (200, 50)), ("!300,300", 3, (300, 200)), ("!600,100", 3, (150, 100)),
    ("^1200,", 3, (1200, 800)), ("^,800", 3, (1200, 800)), ("^pct:200", 3, (1200, 800)), ("^900,900", 3, (900, 900)),
    ("^!1200,1200", 3, (1200, 800)),
    ("1200,", 2, (1200, 800)), ("pct:200", 2, (1200, 800)), ("!1200,1200", 2, (1200, 800)),  # 2.1: sizeAboveFull
])
def test_sizes_resolve_for_a_600_by_400_region(text: str, version: int, size: tuple[int, int]) -> None:
    assert parse_size(text, version).resolve(600, 400, NO_LIMITS) == size


@pytest.mark.parametrize("text", ["601,", ",401", "pct:101", "700,300", "!1200,1200"])
def test_version_3_refuses_an_upscale_without_the_caret(text: str) -> None:
    assert status_of(parse_size(text, 3).resolve, 600, 400, NO_LIMITS) == 400


@pytest.mark.parametrize(("text", "version"), [
    ("full", 3), ("^max", 2), ("^300,", 2), ("", 3), (",", 3), ("0,", 3), (",0", 3), ("pct:0", 3), ("!300,", 3),
    ("w,h", 3), ("300,200,1", 3), ("^", 3), ("^^max", 3), ("pct:", 3), ("-3,", 2), ("+3,", 2),
])
def test_malformed_sizes_are_400(text: str, version: int) -> None:
    assert status_of(parse_size, text, version) == 400


def test_max_is_brought_within_the_limits_and_other_sizes_over_them_are_400() -> None:
    assert parse_size("max", 3).resolve(4000, 1000, LIMITS) == (2000, 500)
    assert parse_size("max", 3).resolve(2000, 2000, LIMITS) == (1414, 1414)  # maxArea
    assert parse_size("max", 2).resolve(1000, 3000, LIMITS) == (500, 1500)
    for text in ("2001,", ",1501", "^1600,1600"):
        assert status_of(parse_size(text, 3).resolve, 4000, 4000, LIMITS) == 400


@pytest.mark.parametrize(("text", "mirror", "degrees", "turns"), [
    ("0", False, 0.0, 0), ("90", False, 90.0, 1), ("!180", True, 180.0, 2), ("270", False, 270.0, 3),
    ("360", False, 0.0, 0), ("22.5", False, 22.5, None), ("!0", True, 0.0, 0),
])
def test_rotations(text: str, mirror: bool, degrees: float, turns: int | None) -> None:
    rotation = parse_rotation(text)
    assert (rotation.mirror, rotation.degrees, rotation.quarter_turns) == (mirror, degrees, turns)


@pytest.mark.parametrize("text", ["", "!", "361", "-90", "90!", "1e2", "abc", "!!90"])
def test_malformed_rotations_are_400(text: str) -> None:
    assert status_of(parse_rotation, text) == 400


def test_qualities_and_formats() -> None:
    assert [parse_quality(q) for q in ("default", "color", "gray", "bitonal")] == ["default", "color", "gray",
                                                                                   "bitonal"]
    assert status_of(parse_quality, "grey") == 400
    assert status_of(parse_quality, "native") == 400
    assert [parse_format(f) for f in ("jpg", "png", "webp", "tif", "gif")] == ["jpg", "png", "webp", "tif", "gif"]
    assert status_of(parse_format, "jp2") == 501
    assert status_of(parse_format, "pdf") == 501
    assert status_of(parse_format, "jpeg") == 400
    assert status_of(parse_format, "xyz") == 400


def test_paths_name_the_resource_and_decode_the_identifier_after_the_split() -> None:
    base = parse_iiif_path("3/photos%2Fa%20b.jpg")
    assert base is not None and (base.version, base.identifier, base.resource) == (3, "photos/a b.jpg", Resource.BASE)
    info = parse_iiif_path("2/s3%3A%2F%2Fphotos%2Fa.jpg/info.json")
    assert info is not None and (info.identifier, info.resource) == ("s3://photos/a.jpg", Resource.INFO)
    image = parse_iiif_path("3/photos%2Fa.jpg/pct:10,10,50,50/^!200,200/!90/gray.png")
    assert image is not None and image.image is not None
    assert (image.image.version, image.image.quality, image.image.format) == (3, "gray", "png")
    assert image.image.rotation.mirror and image.image.size.upscale
    # No IIIF URL: another version, an unencoded '/' in the identifier, or another shape.
    for tail in ("4/a%2Fb/info.json", "3/a/b/full/max/0/default.jpg", "3/a%2Fb/info.xml", "3/a%2Fb/full/max/0",
                 "3//info.json"):
        assert parse_iiif_path(tail) is None, tail
    assert status_of(parse_iiif_path, "3/a%2Fb/full/max/0/default") == 400
    assert status_of(parse_iiif_path, "3/a%FFb/info.json") == 400


def test_requests_for_the_same_pixels_share_a_key_in_any_syntax_and_version() -> None:
    def key(tail: str) -> str:
        path = parse_iiif_path(tail)
        assert path is not None and path.image is not None
        return pixels_key(path.image, 1200, 800, NO_LIMITS)

    same = {key("3/a%2Fb/0,0,1024,512/512,/0/default.jpg"), key("3/a%2Fb/0,0,1024,512/512,256/360/color.jpg"),
            key("3/a%2Fb/0,0,1024,512/pct:50/0/default.jpg"), key("2/a%2Fb/0,0,1024,512/512,/0/default.jpg"),
            key("2/a%2Fb/pct:0,0,85.3333333,64/!512,512/0/default.jpg")}
    assert same == {"iiif:0,0,1024,512/512,256/0/default.jpg"}
    assert key("3/a%2Fb/0,0,1024,512/512,/0/gray.jpg") not in same
    assert key("3/a%2Fb/0,0,1024,512/512,/!0/default.jpg") not in same
    assert key("3/a%2Fb/0,0,1024,512/512,/0/default.png") not in same


def test_scale_factors_halve_until_the_image_fits_one_tile() -> None:
    assert scale_factors(512, 300) == [1]
    assert scale_factors(513, 300) == [1, 2]
    assert scale_factors(8000, 6000) == [1, 2, 4, 8, 16]


def test_info_json_of_version_3() -> None:
    document = info_document(3, "https://h/iiif/3/a%2Fb", 8000, 6000, LIMITS, cors=True)
    assert document["@context"] == "http://iiif.io/api/image/3/context.json"
    assert (document["id"], document["type"], document["profile"]) == ("https://h/iiif/3/a%2Fb", "ImageService3",
                                                                       "level2")
    assert (document["width"], document["height"]) == (8000, 6000)
    assert (document["maxWidth"], document["maxHeight"], document["maxArea"]) == (2000, 1500, 2_000_000)
    assert document["tiles"] == [{"width": 512, "height": 512, "scaleFactors": [1, 2, 4, 8, 16]}]
    # Only the sizes within the limits, smallest first.
    assert document["sizes"] == [{"width": 500, "height": 375}, {"width": 1000, "height": 750}]
    assert "cors" in document["extraFeatures"] and "sizeUpscaling" in document["extraFeatures"]
    assert set(document["extraFormats"]) == {"webp", "tif", "gif"}
    assert "cors" not in info_document(3, "x", 10, 10, LIMITS, cors=False)["extraFeatures"]


def test_info_json_of_version_2() -> None:
    document = info_document(2, "http://h/iiif/2/a%2Fb", 1000, 1000, LIMITS, cors=False)
    assert (document["@context"], document["@id"]) == ("http://iiif.io/api/image/2/context.json",
                                                       "http://h/iiif/2/a%2Fb")
    assert document["protocol"] == "http://iiif.io/api/image"
    level, extras = document["profile"]
    assert level == "http://iiif.io/api/image/2/level2.json"
    assert extras["maxWidth"] == 2000 and "sizeAboveFull" in extras["supports"] and "cors" not in extras["supports"]
    assert set(extras["qualities"]) == {"default", "color", "gray", "bitonal"}


@pytest.mark.parametrize(("tail", "canonical"), [
    ("3/a%2Fb/full/max/0/default.jpg", "full/max/0/default.jpg"),
    ("3/a%2Fb/0,0,1200,800/pct:100/360/default.jpg", "full/max/0/default.jpg"),
    ("3/a%2Fb/square/300,/!90.50/gray.png", "200,0,800,800/300,300/!90.5/gray.png"),
    ("3/a%2Fb/pct:50,50,50,50/,200/0/color.webp", "600,400,600,400/300,200/0/color.webp"),
    ("2/a%2Fb/full/full/0/default.jpg", "full/full/0/default.jpg"),
    ("2/a%2Fb/full/!600,600/0/default.jpg", "full/600,/0/default.jpg"),
    ("2/a%2Fb/10,10,5000,5000/max/0/bitonal.tif", "10,10,1190,790/full/0/bitonal.tif"),
])
def test_canonical_forms_for_the_link_header(tail: str, canonical: str) -> None:
    path = parse_iiif_path(tail)
    assert path is not None and path.image is not None
    assert canonical_request(path.image, 1200, 800, NO_LIMITS) == canonical


def test_any_text_in_any_parameter_is_parsed_or_refused_in_one_line() -> None:
    # Printable ASCII, as the validator's random parameters are, plus the grammar's own characters.
    rng = random.Random(20261204)
    alphabet = string.printable.strip() + ",,,...:!^" * 3
    for case in range(4000):
        segments = ["pct:10,10,50,50", "^!300,300", "!22.5", "gray"]  # valid: one at a time goes random
        segments[case % 4] = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))).replace("/", "")
        tail = f"{2 + case % 2}/a%2Fb/" + "/".join(segments) + ".jpg"
        try:
            path = parse_iiif_path(tail)
            if path is not None and path.image is not None:
                canonical_request(path.image, 1200, 800, LIMITS)
        except PublicError as error:
            assert error.status in (400, 501) and "\n" not in error.reason, (tail, error.reason)
