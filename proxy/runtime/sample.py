"""A sample image in a sample bucket, so the first URL printed at start-up works."""

from pathlib import Path

from proxy.config import Config
from proxy.storage.config import LOCAL_DISK

SAMPLE_BUCKET = "sample-public"
SAMPLE_KEY = "images/sample.jpg"


def place_sample(config: Config) -> Path:
    """Draw a 1600x1067 test picture into the sample bucket, unless it is already there."""
    path = config.storage.root / SAMPLE_BUCKET / SAMPLE_KEY
    if path.exists():
        return path
    from PIL import Image, ImageDraw  # only this command needs Pillow; the server imports it lazily

    width, height = 1600, 1067
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image = Image.merge("RGB", (image.getchannel(0), image.getchannel(0).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                                Image.new("L", (width, height), 160)))
    draw = ImageDraw.Draw(image)
    for index in range(8):
        x = 100 + index * 180
        draw.ellipse((x, 380, x + 150, 530), fill=(255 - index * 30, 40 + index * 25, 90), outline="white", width=6)
    draw.text((100, 900), "preview-proxy sample", fill="white", font_size=72)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=88)
    return path


def sample_url_path(config: Config) -> str | None:
    """`/<bucket>/<key>` of the sample, when the local provider serves it."""
    if config.storage.provider != LOCAL_DISK or not (config.storage.root / SAMPLE_BUCKET / SAMPLE_KEY).is_file():
        return None
    return f"/{SAMPLE_BUCKET}/{SAMPLE_KEY}"
