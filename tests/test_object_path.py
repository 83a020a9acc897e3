"""`/<bucket>/<key>` parsed from the raw path, and the local provider's containment of keys in buckets."""

from pathlib import Path

import pytest

from proxy.http.object_path import MAX_KEY_BYTES, parse_object_path
from proxy.storage.errors import InvalidObjectPath, ObjectNotFound
from proxy.storage.local import LocalProvider
from proxy.storage.provider import ObjectRef

SUPERVISELY_BUCKET = "h5un6l2bnaz1vj8a9qgms4-public"
SUPERVISELY_KEY = "images/original/S/j/hJ/PwMg.png"


def test_supervisely_path() -> None:
    ref = parse_object_path(f"/{SUPERVISELY_BUCKET}/{SUPERVISELY_KEY}")
    assert ref == ObjectRef(SUPERVISELY_BUCKET, SUPERVISELY_KEY)


def test_query_string_is_not_part_of_key() -> None:
    assert parse_object_path("/bucket/a/b.png?v=2").key == "a/b.png"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("/b/my%20photo.png", "my photo.png"),
        ("/b/%E2%82%AC/price.png", "\u20ac/price.png"),
        ("/b/a%2Bb.png", "a+b.png"),
        ("/b/100%25.png", "100%.png"),
        ("/b/..hidden/x..y", "..hidden/x..y"),
    ],
)
def test_percent_decoding(raw: str, key: str) -> None:
    assert parse_object_path(raw).key == key


def test_key_at_limit_accepted() -> None:
    key = "k" * MAX_KEY_BYTES
    assert parse_object_path(f"/b/{key}").key == key


@pytest.mark.parametrize(
    "raw",
    [
        "/b/../secret.png",
        "/b/a/../../etc/passwd",
        "/b/%2e%2e/secret.png",
        "/b/%2E%2e/secret.png",
        "/b/%2e%2E",
        "/b/./x.png",
        "/b/a/%2e/x.png",
        "/b/a%2fb.png",
        "/b/a%2Fb.png",
        "/b/a%5cb.png",
        "/b/a%5Cb.png",
        "/b/a\\b.png",
        "/b/a//b.png",
        "/b//x.png",
        "//x.png",
        "/b/a%00.png",
        "/b/a%0a.png",
        "/b/a%0D.png",
        "/b/a%7f.png",
        "/b/a\x01.png",
        "/b/a%ff.png",
        "/b/%c3%28.png",
        "/bad$bucket/x.png",
        "/-bucket/x.png",
        "/%2e%2e/x.png",
        "/b%2fc/x.png",
        "/b",
        "/b/",
        "/b/dir/",
        "/",
        "",
        "b/x.png",
        "/b/" + "k" * (MAX_KEY_BYTES + 1),
        "/b/" + "%E2%82%AC" * (MAX_KEY_BYTES // 3 + 1),
    ],
)
def test_rejected_paths(raw: str) -> None:
    with pytest.raises(InvalidObjectPath) as excinfo:
        parse_object_path(raw)
    assert excinfo.value.status == 400
    assert "\n" not in excinfo.value.reason


# --- LocalProvider: keys stay inside their bucket folder, after symlinks -----------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A storage root with bucket `b` holding `real.png`, and a secret file outside every bucket."""
    storage = tmp_path / "storage"
    (storage / "b" / "dir").mkdir(parents=True)
    (storage / "b" / "real.png").write_bytes(b"inside")
    (storage / "other").mkdir()
    (storage / "other" / "theirs.png").write_bytes(b"other bucket")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    return storage


def read_in_place(provider: LocalProvider, ref: ObjectRef) -> bytes:
    file, info = provider.open_in_place(ref)
    with file:
        data = file.read()
    assert info.size == len(data)
    return data


def test_plain_file_is_read(root: Path) -> None:
    assert read_in_place(LocalProvider(root), ObjectRef("b", "real.png")) == b"inside"


def test_symlink_pointing_outside_is_absent(root: Path) -> None:
    (root / "b" / "escape.png").symlink_to(root.parent / "secret.txt")
    with pytest.raises(ObjectNotFound):
        LocalProvider(root).open_in_place(ObjectRef("b", "escape.png"))


def test_symlink_to_sibling_bucket_is_absent(root: Path) -> None:
    (root / "b" / "dir" / "theirs.png").symlink_to(root / "other" / "theirs.png")
    with pytest.raises(ObjectNotFound):
        LocalProvider(root).open_in_place(ObjectRef("b", "dir/theirs.png"))


def test_symlinked_dir_pointing_outside_is_absent(root: Path) -> None:
    (root / "b" / "up").symlink_to(root.parent)
    with pytest.raises(ObjectNotFound):
        LocalProvider(root).open_in_place(ObjectRef("b", "up/secret.txt"))


def test_symlink_within_bucket_works(root: Path) -> None:
    (root / "b" / "dir" / "alias.png").symlink_to(Path("..") / "real.png")
    assert read_in_place(LocalProvider(root), ObjectRef("b", "dir/alias.png")) == b"inside"


@pytest.mark.parametrize("key", ["/etc/passwd", "/real.png"])
def test_absolute_key_rejected(root: Path, key: str) -> None:
    with pytest.raises(InvalidObjectPath):
        LocalProvider(root).open_in_place(ObjectRef("b", key))


@pytest.mark.parametrize(("bucket", "key"), [("b", "../other/theirs.png"), ("..", "secret.txt"), ("b", "a//x")])
def test_traversal_rejected(root: Path, bucket: str, key: str) -> None:
    with pytest.raises(InvalidObjectPath):
        LocalProvider(root).open_in_place(ObjectRef(bucket, key))


def test_symlinked_bucket_folder_allowed(root: Path, tmp_path: Path) -> None:
    other_disk = tmp_path / "other-disk" / "photos"
    other_disk.mkdir(parents=True)
    (other_disk / "cat.png").write_bytes(b"on another disk")
    (root / "photos").symlink_to(other_disk, target_is_directory=True)
    assert read_in_place(LocalProvider(root), ObjectRef("photos", "cat.png")) == b"on another disk"


def test_missing_key_and_bucket_are_absent(root: Path) -> None:
    provider = LocalProvider(root)
    for ref in (ObjectRef("b", "nope.png"), ObjectRef("nobucket", "x.png"), ObjectRef("b", "dir")):
        with pytest.raises(ObjectNotFound):
            provider.open_in_place(ref)
