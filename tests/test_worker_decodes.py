"""A serving process keeps its renders' decodes: a photo's next size at the same scale starts from a copy.

The app is built in this process as each worker builds it (proxy.app), and the previews are rendered
through its render pool as a worker renders them: small renders run in the worker itself, with or
without a render host beside it. The bytes must be those of renders with nothing kept.
"""

import asyncio
import shutil
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image

from previews.imaging.decoded import DecodedImages, keep_decoded_images, kept_decodes
from proxy.app import DECODES_KEPT, build_app
from proxy.app_keys import RENDER_POOL
from proxy.config import Config
from tests.support.images import named_photo, render
from tests.support.render_host import render_file_async

PHOTO = "mate-ladybird.jpg"  # 2560 x 1600, baseline: 50 px and 300 px both decode at 1/8 (320 x 200)
SIZES = ("rs:fit:50:0", "rs:fit:300:0")


async def _worker_renders(tmp_path: Path, path: Path, render_host: str | None) -> tuple[list[bytes], DecodedImages]:
    """The SIZES of the photo at `path`, rendered through the render pool of an app built as a worker
    builds it, and the decodes that app's process keeps."""
    config = Config.from_env({"DATA_PATH": str(tmp_path / "data"), "CACHE_PATH": str(tmp_path / "cache")})
    app = build_app(config, render_host=render_host)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        kept = kept_decodes()
        assert kept is not None, "a serving process keeps no decodes"
        return [await render_file_async(app[RENDER_POOL], path, spec) for spec in SIZES], kept
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("render_host", [None, "no-host-listens-here"], ids=["one process", "a worker"])
def test_a_serving_process_renders_the_next_size_from_the_first_ones_decode(
        tmp_path: Path, photos: list[Path], render_host: str | None) -> None:
    path = tmp_path / PHOTO
    shutil.copyfile(named_photo(photos, PHOTO), path)
    keep_decoded_images(0)
    expected = [render(path, spec).data for spec in SIZES]
    try:
        got, kept = asyncio.run(_worker_renders(tmp_path, path, str(tmp_path / render_host) if render_host else None))
        assert kept.limit == DECODES_KEPT
        assert kept.hits == 1, "the 300 px preview decoded the photo again"
        assert got == expected
    finally:
        keep_decoded_images(0)


def test_a_worker_keeps_a_20_mp_photos_eighth() -> None:
    """The largest small render's decode, a 20 MP photo at 1/8 (754 x 424, 1.2 MiB in Pillow's four bytes a
    pixel), is within what a worker keeps of one decode."""
    store = DecodedImages(DECODES_KEPT)
    key = ((1, 2, 3, 4, 5, 0), 754, 424, "RGB")
    store.keep(key, Image.new("RGB", (754, 424)), 0.045)
    assert store.copy_of(key) is not None
