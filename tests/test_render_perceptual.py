"""The perceptual measures behind the render tests tell same from different, so passing render tests mean something."""

import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageFilter

from tests.support.images import QUADRANT_COLOURS, encoded, named_photo, quadrant_names, quadrants, upright_photo
from tests.support.perceptual import (
    brightness,
    edge_energy,
    flattened,
    mean_abs_diff,
    mean_colour,
    ssim,
)


@pytest.fixture(scope="module")
def two_photos(photos: list[Path]) -> tuple[Image.Image, Image.Image]:
    """Two unrelated photographs, both shrunk to 320x200."""
    first, second = (upright_photo(path, 400).resize((320, 200), Image.Resampling.LANCZOS)
                     for path in (named_photo(photos, "mate-aqua.jpg"), named_photo(photos, "plasma-summer-1am.jpg")))
    return first, second


def test_identical_images_measure_zero(two_photos):
    photo, _ = two_photos
    assert mean_abs_diff(photo, photo.copy()) == 0
    assert ssim(photo, photo.copy()) == pytest.approx(1.0)


def test_unrelated_photos_measure_far_apart(two_photos):
    first, second = two_photos
    assert mean_abs_diff(first, second) > 20
    assert ssim(first, second) < 0.5


def test_a_good_jpeg_of_a_photo_measures_close(two_photos):
    photo, _ = two_photos
    again = Image.open(io.BytesIO(encoded(photo, "JPEG", quality=90)))
    assert mean_abs_diff(photo, again) < 3
    assert ssim(photo, again) > 0.95


def test_a_shifted_photo_measures_far(two_photos):
    photo, _ = two_photos
    shifted = ImageChops.offset(photo, photo.width // 4, 0)
    assert mean_abs_diff(photo, shifted) > 10
    assert ssim(photo, shifted) < 0.8


def test_a_brightness_change_is_measured_by_its_size(two_photos):
    photo, _ = two_photos
    darker = photo.point(lambda value: max(0, value - 40))
    # Pixels already below 40 can't drop by the full 40, so the measure is at most 40 and near it.
    assert 25 < mean_abs_diff(photo, darker) <= 40
    assert brightness(photo) - brightness(darker) == pytest.approx(mean_abs_diff(photo, darker), abs=1.5)


def test_images_of_different_sizes_are_compared_only_at_one_size(two_photos):
    photo, _ = two_photos
    half = photo.resize((photo.width // 2, photo.height // 2), Image.Resampling.LANCZOS)
    with pytest.raises(ValueError, match="sizes differ"):
        mean_abs_diff(photo, half)
    assert mean_abs_diff(photo, half, size=(80, 50)) < 3


def test_edge_energy_orders_blurred_plain_and_sharpened(two_photos):
    photo, _ = two_photos
    blurred = photo.filter(ImageFilter.GaussianBlur(2))
    sharpened = photo.filter(ImageFilter.UnsharpMask(radius=2, percent=150, threshold=0))
    assert edge_energy(blurred) < 0.8 * edge_energy(photo)
    assert edge_energy(sharpened) > 1.2 * edge_energy(photo)


def test_transparency_is_compared_over_white():
    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert flattened(clear).getpixel((5, 5)) == (255, 255, 255)
    assert mean_colour(Image.new("LA", (4, 4), (0, 0))) == (255, 255, 255)
    with pytest.raises(ValueError, match="8-bit"):
        flattened(Image.new("I;16", (4, 4)))


def test_quadrant_names_follow_the_pixels():
    image = quadrants()
    assert quadrant_names(image) == {corner: corner for corner in QUADRANT_COLOURS}
    # A left-right mirror swaps the columns: the reader must see it.
    mirrored = quadrant_names(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert mirrored == {"tl": "tr", "tr": "tl", "bl": "br", "br": "bl"}
