"""A DATA_PATH to attack: small images to serve, secrets around them, a links file, and a tripwire port.

Layout under `root` (a temporary folder):
    secret.txt, secret.jpg           outside DATA_PATH (the JPEG is a real image: a preview would render it)
    data/secret-in-data.txt          beside storage/, inside DATA_PATH
    data/storage/b/img.jpg, sub/img.png and symlinks pointing out (to-secret, to-root, ...)
    linked/                          the `fs` link `local`, with an image and symlinks pointing out
    remote_links.yml                 `local` (fs) and `cars` (minio, through a counting TCP proxy to moto,
                                     listing one bucket; another bucket on moto holds a secret and is unlisted)
Every secret carries one random token, so a leak is found by searching any answer for it.
"""

import io
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoS3
from tests.support.tcp_proxy import TcpProxy

BUCKET = "b"
FS_LINK = "local"


def small_jpeg(size: tuple[int, int] = (48, 32), colour: tuple[int, int, int] = (200, 40, 10)) -> bytes:
    """A tiny JPEG: renders in a millisecond, so fuzzed previews of it cost little."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Site:
    """Where everything is, and the token that must never leave the server."""

    root: Path
    data_path: Path
    links_file: Path
    token: str
    listed: str  # the bucket the links file opens on moto
    unlisted: str  # a bucket on the same moto that it does not
    s3_proxy: TcpProxy

    def env(self, **extra: str) -> dict[str, str]:
        """The server's environment for this site."""
        return {"DATA_PATH": str(self.data_path), "REMOTE_LINKS_PATH": str(self.links_file), **extra}


def build_site(root: Path, moto: MotoS3, s3_proxy: TcpProxy) -> Site:
    """Lay out the site under `root` and seed moto."""
    token = uuid.uuid4().hex
    suffix = token[:8]
    data_path, linked = root / "data", root / "linked"
    bucket = data_path / "storage" / BUCKET
    (bucket / "sub").mkdir(parents=True)
    linked.mkdir()
    image = small_jpeg()
    (root / "secret.txt").write_text(f"OUTSIDE-SECRET-{token}\n")
    (root / "secret.jpg").write_bytes(small_jpeg((40, 40), (1, 2, 3)) + f"SECRET-{token}".encode())
    (data_path / "secret-in-data.txt").write_text(f"DATA-SECRET-{token}\n")
    (bucket / "img.jpg").write_bytes(image)
    Image.new("RGBA", (20, 30), (0, 90, 200, 128)).save(bucket / "sub" / "img.png")
    for name, target in (("to-secret", root / "secret.txt"), ("to-secret.jpg", root / "secret.jpg"),
                         ("to-root", root), ("to-data-secret", Path("..") / ".." / "secret-in-data.txt"),
                         ("to-linked", linked)):
        (bucket / name).symlink_to(target, target_is_directory=target.is_dir())
    (bucket / "loop").symlink_to("loop")  # resolving it fails with ELOOP
    (linked / "img.jpg").write_bytes(image)
    (linked / "escape.jpg").symlink_to(root / "secret.jpg")
    (linked / "up").symlink_to(root, target_is_directory=True)
    listed, unlisted = moto.create_bucket(f"listed-{suffix}"), moto.create_bucket(f"unlisted-{suffix}")
    moto.put(listed, "img.jpg", image, "image/jpeg")
    moto.put(unlisted, "img.jpg", small_jpeg((40, 40), (1, 2, 3)) + f"S3-SECRET-{token}".encode(), "image/jpeg")
    links_file = root / "remote_links.yml"
    links_file.write_text(
        f"{FS_LINK}: {{provider: fs, path: {linked}}}\n"
        f"cars: {{provider: minio, endpoint: \"{s3_proxy.endpoint}\", access_key: {ACCESS_KEY}, "
        f"secret_key: {SECRET_KEY}, region: {REGION}, buckets: [{listed}]}}\n")
    return Site(root, data_path, links_file, token, listed, unlisted, s3_proxy)


class Tripwire:
    """A loopback port that counts every connection made to it: an SSRF target that must stay untouched."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        """Stop listening."""
        self._listener.close()
