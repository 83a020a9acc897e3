"""Output bombs and memory: no preview URL, alone or in a crowd, takes the server's memory.

One real server process (eight render threads, so threads alone bound nothing) gets the attacker's
five URLs, which each drove a server past several GiB before the result bounds, and then 32
concurrent previews that each decode a 50 MP JPEG at full size (about 200 MB of pixels apiece).
Every answer must be a 4xx or a valid image within 3 s, and the peak resident memory of the
server's processes must stay under 1 GiB: RENDER_MEMORY_LIMIT and RENDER_MEMORY_CONCURRENT admit two
such renders at a time, RENDER_MEMORY_LIMIT lets two more wait and turns the rest away with 429.
"""

import time
from pathlib import Path

from PIL import Image

from tests.conftest import StartServer
from tests.support.previews_kit import assert_log_clean, assert_one_line, decoded, fetch_all, place
from tests.test_output_bounds import ATTACKS  # the five URLs that once took the machine's memory

LARGE = (8640, 5760)  # 49.8 MP, under the default IMGPROXY_MAX_SRC_RESOLUTION of 50 MP
CROWD = 32
ANSWER_WITHIN = 3.0
PEAK_RSS_LIMIT = 1024**3


def gradients(size: tuple[int, int]) -> Image.Image:
    """Smooth colour gradients: quick to make and to decode at 50 MP (a photo's texture doubles the
    decode time, which is not what is tested), yet not one flat colour."""
    horizontal = Image.linear_gradient("L").rotate(90).resize(size)
    vertical = Image.linear_gradient("L").resize(size)
    return Image.merge("RGB", (horizontal, vertical, horizontal.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def peak_rss(pid: int) -> int:
    """VmHWM summed over `pid` and its descendants: at least the peak of their total."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        status = Path(f"/proc/{current}/status").read_text()
        total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:"))
        for task in Path(f"/proc/{current}/task").iterdir():
            pending.extend(int(child) for child in (task / "children").read_text().split())
    return total


def test_output_bombs_and_a_crowd_of_large_decodes_stay_in_memory_and_answer(
        start_server: StartServer, data_path: Path, tmp_path: Path) -> None:
    small, large = tmp_path / "small.jpg", tmp_path / "large.jpg"
    gradients((1280, 1024)).save(small, quality=90)
    gradients(LARGE).save(large, quality=85)
    place(data_path, "bombs", "small.jpg", small)
    place(data_path, "bombs", "large.jpg", large)
    server = start_server(IMGPROXY_WORKERS="8", RENDER_MEMORY_LIMIT="400m", RENDER_MEMORY_CONCURRENT="400m")

    started = time.monotonic()
    bombs = fetch_all(server, [f"/previews/q/{spec}/plain/bombs/small.jpg" for spec in ATTACKS])
    for answer in bombs:
        assert answer.status == 422, (answer.path, answer.status, answer.body[:200])
        assert "IMGPROXY_MAX_RESULT_DIMENSION" in assert_one_line(answer.body)
        assert answer.finished - started < ANSWER_WITHIN

    # 4400 of 8640 px is more than half: no shrink-on-load, the whole 50 MP is decoded. Widths differ
    # so that no two requests share a render.
    widths = [4400 + index for index in range(CROWD)]
    started = time.monotonic()
    crowd = fetch_all(server, [f"/previews/q/rs:fit:{width}:0/plain/bombs/large.jpg" for width in widths])
    for width, answer in zip(widths, crowd, strict=True):
        assert answer.finished - started < ANSWER_WITHIN, (answer.path, answer.finished - started)
        if answer.status == 200:
            assert decoded(answer.body).size == (width, round(LARGE[1] * width / LARGE[0]))
        else:
            assert 400 <= answer.status < 500, (answer.path, answer.status, answer.body[:200])
            assert_one_line(answer.body)
    print("crowd:", sorted((round(a.finished - started, 2), a.status) for a in crowd if a.status == 200))
    statuses = [answer.status for answer in crowd]
    assert statuses.count(200) >= 2, statuses  # real decodes ran: what the memory bound had to hold
    assert set(statuses) <= {200, 429}, statuses

    peak = peak_rss(server.pid)
    print(f"peak RSS {peak / 2**20:.0f} MiB")
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"
    assert_log_clean(server)
