"""aiohttp stays inside the versions the hot lane's imitation of it was verified on.

The hot lane (proxy/hot/lane.py) reads request heads as aiohttp's parser would and writes heads as its
writer does; no public interface describes either, so a new aiohttp may differ without notice. Widen the
pin in pyproject.toml only after tests/test_hot_lane_differential.py passes on the new version.
"""

import tomllib
from pathlib import Path

import aiohttp
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# The minor versions tests/test_hot_lane_differential.py was run on.
VERIFIED = ">=3.14,<3.15"


def aiohttp_requirement() -> Requirement:
    """The aiohttp line of pyproject.toml's dependencies."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return next(Requirement(line) for line in dependencies if Requirement(line).name == "aiohttp")


def test_pyproject_pins_aiohttp_to_the_verified_versions() -> None:
    assert aiohttp_requirement().specifier == SpecifierSet(VERIFIED), (
        "pyproject.toml's aiohttp range changed: run tests/test_hot_lane_differential.py on every version"
        " it admits, then set VERIFIED here to match")


def test_the_installed_aiohttp_is_one_the_hot_lane_was_verified_on() -> None:
    installed = Version(aiohttp.__version__)
    assert aiohttp_requirement().specifier.contains(installed, prereleases=True), (
        f"aiohttp {installed} is outside {VERIFIED}, the versions the hot lane was verified on: run"
        " tests/test_hot_lane_differential.py against it before widening the pin in pyproject.toml")
