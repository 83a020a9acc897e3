"""`preview-proxy cache stats | purge | verify [--fix]` run as real subprocesses on the cache folders of a
server that is running: the purge reaches the server (its memory too), verify finds and fixes damage."""

import io
import os
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from tests.conftest import REPO, StartServer
from tests.support.http import request
from tests.support.previews_kit import place, poll


def noise_jpeg(width: int, height: int) -> bytes:
    """A small JPEG of noise."""
    out = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(out, "JPEG")
    return out.getvalue()


def cache_cli(data_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`preview-proxy cache <args>` on DATA_PATH's caches, bounded in time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_"))}
    return subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "cache", *args], cwd=REPO,
                          env={**env, "DATA_PATH": str(data_path)}, capture_output=True, text=True, timeout=30,
                          check=False)


def wait_for_previews(data_path: Path, count: int) -> None:
    """Until the previews tier holds `count` entry files: a render is answered before its entry is on disk."""
    folder = data_path / "cache" / "previews"
    poll(lambda: len(list(folder.rglob("*.val"))) == count or None, f"{count} previews on disk")


def stats(data_path: Path) -> dict[str, dict[str, str]]:
    """`cache stats` as {tier: {field: value}}."""
    done = cache_cli(data_path, "stats")
    assert done.returncode == 0, done.stderr
    return {line.split(":")[0]: dict(part.split("=", 1) for part in line.split(": ", 1)[1].split())
            for line in done.stdout.splitlines()}


def test_stats_and_purge_while_the_server_runs(data_path: Path, start_server: StartServer):
    for name in ("a.jpg", "b.jpg"):
        place(data_path, "photos", name, noise_jpeg(64, 48))
    server = start_server()
    previews = {(name, width): f"/previews/q/rs:fit:{width}:0/plain/photos/{name}@png"
                for name in ("a.jpg", "b.jpg") for width in (16, 32)}
    for path in [*previews.values(), *previews.values()]:  # twice: the second is kept in memory
        assert request(server.url(path)).status == 200
    wait_for_previews(data_path, 4)

    found = stats(data_path)
    assert found["previews"]["entries"] == "4"
    assert int(found["previews"]["bytes"]) > 0 and found["previews"]["capacity"] == str(1 << 30)
    assert found["previews"]["oldest"].startswith(time.strftime("%Y-%m-%dT", time.gmtime()))
    assert found["storage"]["oldest"] == "-"  # local originals are served in place, never cached

    done = cache_cli(data_path, "purge", "photos/a.jpg")
    assert (done.returncode, done.stdout.strip()) == (0, "previews=2 storage=0 image-converter=0")
    for (name, _), path in previews.items():
        assert request(server.url(path)).headers["X-Cache"] == ("MISS" if name == "a.jpg" else "HIT")
    assert cache_cli(data_path, "purge", "photos/*").returncode == 2  # a whole bucket: refused
    done = cache_cli(data_path, "purge", "photos/b*")
    assert done.stdout.strip() == "previews=2 storage=0 image-converter=0"
    wait_for_previews(data_path, 2)
    assert stats(data_path)["previews"]["entries"] == "2"  # the two a.jpg rendered again


def test_verify_reports_damage_and_fix_repairs_it(data_path: Path, start_server: StartServer):
    place(data_path, "photos", "a.jpg", noise_jpeg(64, 48))
    server = start_server()
    for width in (16, 32):
        assert request(server.url(f"/previews/q/rs:fit:{width}:0/plain/photos/a.jpg@png")).status == 200
    wait_for_previews(data_path, 2)
    assert cache_cli(data_path, "verify").stdout.strip() == "verify: 0 problem(s)"

    tier = data_path / "cache" / "previews"
    entries = sorted(p for p in tier.rglob("*.val"))
    assert len(entries) == 2
    entries[0].write_bytes(entries[0].read_bytes()[:10])  # a damaged entry
    orphan = entries[1].parent / "stray.val"  # a file no row names, older than a commit in flight
    orphan.write_bytes(b"x")
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))

    found = cache_cli(data_path, "verify")
    assert found.returncode == 1
    assert "bytes on disk" in found.stdout and f"orphan file {orphan}" in found.stdout
    assert found.stdout.strip().endswith("verify: 2 problem(s)")

    fixed = cache_cli(data_path, "verify", "--fix")
    assert fixed.returncode == 0 and not orphan.exists()
    # The damaged entry is gone; its index row goes in the same run.
    assert cache_cli(data_path, "verify").stdout.strip() == "verify: 0 problem(s)"
    assert request(server.url("/previews/q/rs:fit:16:0/plain/photos/a.jpg@png")).status == 200
