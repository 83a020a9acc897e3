"""The write-path benchmark (tests/benchmarks/write_path) in a small version: every contender runs once on
small files into a real moto, every object it wrote is checked by its S3 ETag, and the report judges the
ratios. The full measurement (1 GiB, 2 GiB trees, three repetitions) is run by hand; see docs/benchmarks.md.
"""

import shutil

import pytest

from tests.benchmarks.write_path.__main__ import SCENARIOS, measure, report
from tests.benchmarks.write_path.ground import MIB, Multipart, Sizes

# Multipart on both sides (S3's smallest part is 5 MiB): a 24 MiB upload goes up in five parts, the
# 12 MiB large files in three, the small ones in one PUT each.
SMALL = Sizes(upload=24 * MIB, small_files=20, large_files=2, large_size=12 * MIB)
MULTIPART = Multipart(threshold=8 * MIB, part_size=5 * MIB, concurrency=4)


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone comes with `bash deploy/dev.sh setup`")
def test_every_contender_writes_the_same_objects_and_the_report_judges_each_ratio() -> None:
    results = measure(tuple(SCENARIOS), 1, SMALL, MULTIPART)
    for name in SCENARIOS:
        ours, theirs = results[name]["ours"], results[name]["theirs"]
        assert len(ours) == len(theirs) == 1
        # Each side moved the scenario's bytes (its objects' ETags were checked inside measure) in a
        # measured time, and the endpoint's CPU was counted for both, so a gap can be told apart.
        assert ours[0].size == theirs[0].size > 0
        assert ours[0].seconds > 0 and theirs[0].seconds > 0
        assert ours[0].cpu["moto"] > 0 and theirs[0].cpu["moto"] > 0
    assert results["upload"]["ours"][0].size == SMALL.upload
    assert results["upload"]["ours"][0].cpu["preview-proxy"] > 0

    lines = report(results, SMALL, MULTIPART, quick=True, repetitions=1, load=(0.0, 0.0))
    verdicts = [line for line in lines if line.startswith(("- upload >=", "- migrate >="))]
    assert len(verdicts) == 2
    assert all(line.endswith((": met", ": **not met**")) for line in verdicts)
    assert any("not the figures to publish" in line for line in lines)
