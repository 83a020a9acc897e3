"""The official IIIF Image API validator against a live server: every level-2 test of Image API 3.0 (on
/iiif/3/) and of 2.x (the validator's "2.0" suite, on /iiif/2/, which serves 2.1), on the validator's own
test image in local storage. Each failure is reported with the validator's message."""

from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pytest

from tests.support.iiif_validator import IDENTIFIER, Report, ensure_validator, validate, validator_image
from tests.support.images import encoded
from tests.support.previews_kit import place, running_server
from tests.support.server import ServerProcess

BUCKET = "iiif-validation"
LEVEL = 2
VALIDATOR_SECONDS = 240.0
# At least this many tests run per version (3.0 had 33 at level 2, 2.0 had 30, with iiif-validator 1.0.5):
# a validator that found no tests must not pass for one whose tests all passed.
LEAST_TESTS = 25
VALIDATOR_BUG = "module 'urllib' has no attribute 'urlopen'"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    reason = ensure_validator()
    if reason:
        pytest.skip(reason)
    data = tmp_path_factory.mktemp("iiif-validator") / "data"
    # PNG: the validator compares each square's colour within 5 levels, which a lossless source keeps exact.
    place(data, BUCKET, IDENTIFIER, encoded(validator_image(), "PNG"))
    # CORS for every origin: the validator's `cors` test (level 1) expects `Access-Control-Allow-Origin: *`.
    with running_server(data, IIIF_BUCKETS=BUCKET, CORS_ALLOW_ORIGINS="*", ACCESS_LOG="false") as started:
        yield started


def run_suite(server: ServerProcess, version: str, level: int = LEVEL) -> Report:
    host = urlsplit(server.base_url).netloc
    prefix = f"iiif/{version[0]}"
    return validate(host, prefix, quote(f"{BUCKET}/{IDENTIFIER}", safe=""), version, level, VALIDATOR_SECONDS)


@pytest.mark.parametrize("version", ["3.0", "2.0"])
def test_every_level_2_test_of_the_official_validator_passes(server: ServerProcess, version: str) -> None:
    report = run_suite(server, version)
    assert not report.failed, "\n".join(f"{name}: {message}" for name, message in report.failed.items())
    assert len(report.passed) >= LEAST_TESTS, report.output[-2000:]
    for name in ("info_json", "id_squares", "region_percent", "size_bwh", "rot_full_basic", "quality_bitonal",
                 "baseurl_redirect", "jsonld", "cors"):
        assert name in report.passed, (name, report.output[-2000:])



@pytest.mark.parametrize("version", ["3.0", "2.0"])
def test_at_level_3_only_the_validators_own_broken_tests_fail(server: ServerProcess, version: str) -> None:
    # format_jp2, format_pdf and format_webp call Python 2's urllib.urlopen and fail before asking any
    # server anything; every other level-3 test (canonical and profile Link headers, mirroring, arbitrary
    # rotation, upscaling with ^) passes.
    report = run_suite(server, version, level=3)
    broken = {name for name, message in report.failed.items() if VALIDATOR_BUG in message}
    assert set(report.failed) == broken, report.failed
    assert broken <= {"format_jp2", "format_pdf", "format_webp"}
    for name in ("linkheader_canonical", "linkheader_profile", "rot_mirror", "rot_full_non90", "size_up"):
        assert name in report.passed, (name, report.output[-2000:])
