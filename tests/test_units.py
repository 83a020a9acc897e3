"""proxy/settings/units.py: nginx-style sizes (`512m`, powers of 1024) and durations (`1h30m`, bare seconds)."""

import itertools

import pytest

from proxy.settings.units import parse_duration, parse_size

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512m", 512 * MIB),
        ("1g", GIB),
        ("10g", 10 * GIB),
        ("1t", TIB),
        ("64k", 64 * KIB),
        ("4096", 4096),
        ("0", 0),
    ],
)
def test_size_nginx_forms(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(("text", "same_as"), [("512M", "512m"), ("1G", "1g"), ("2T", "2t"), ("8K", "8k")])
def test_size_unit_is_case_insensitive(text: str, same_as: str) -> None:
    assert parse_size(text) == parse_size(same_as)


def test_size_ignores_surrounding_whitespace() -> None:
    assert parse_size("  10g\n") == parse_size("10g")


def test_size_units_are_powers_of_1024() -> None:
    # Each step up the unit ladder multiplies by exactly 1024, as nginx reads `max_size=`.
    ladder = [parse_size(f"3{unit}") for unit in ("", "k", "m", "g", "t")]
    assert [later // earlier for earlier, later in itertools.pairwise(ladder)] == [1024] * 4


@pytest.mark.parametrize(
    "text",
    ["", "   ", "-1", "-1g", "g", "10x", "10 gb extra", "1e9", "ten", "10gg", "0x10", "+5m", "1.5", "1.g", ".5g",
     "10ib", "10gib extra", "10bb", "1,5g"],
)
def test_size_rejects_junk(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("spelling", ["1g", "1G", "1gb", "1GB", "1GiB", "1gib", "1024m", "1024MiB", "1048576k"])
def test_every_spelling_of_a_gibibyte_is_the_same_size(spelling: str) -> None:
    # One reading for every spelling: a binary unit whether or not it says `i`, never 10**9.
    assert parse_size(spelling) == GIB


@pytest.mark.parametrize(("text", "expected"), [("1.5g", GIB + GIB // 2), ("0.5GiB", GIB // 2),
                                                ("1.5GB", GIB + GIB // 2), ("2.25k", 2304), ("0.1k", 102)])
def test_size_decimal_numbers_are_rounded_down_to_a_byte(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_size_byte_count_is_exact_when_large() -> None:
    # A float would round this; the count must come back as written.
    assert parse_size("9007199254740993") == 9007199254740993


@pytest.mark.parametrize(("text", "expected"), [("1.5h", 5400), ("0.5m", 30), ("1.5s", 1.5), ("0.25d", 21600),
                                                ("1.5ms", 0.001)])
def test_duration_decimal_numbers(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 30),
        ("10m", 600),
        ("12h", 12 * 3600),
        ("7d", 7 * 86400),
        ("1w", 7 * 86400),
        ("1h30m", 3600 + 30 * 60),
        ("1d2h3m4s", 86400 + 2 * 3600 + 3 * 60 + 4),
        ("45", 45),
        ("1m30", 90),
    ],
)
def test_duration_nginx_forms(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


def test_duration_milliseconds() -> None:
    assert parse_duration("250ms") == pytest.approx(0.25)
    # `m` followed by `s` is milliseconds, not minutes then a bare `s`.
    assert parse_duration("1500ms") < parse_duration("1m")


def test_duration_ignores_spaces() -> None:
    assert parse_duration(" 1h 30m ") == parse_duration("1h30m")


def test_duration_bare_number_is_seconds() -> None:
    assert parse_duration("90") == parse_duration("90s") == parse_duration("1m30s")


@pytest.mark.parametrize("text", ["", "   ", "h", "1.h", ".5h", "-5s", "10x", "1h-30m", "12 hours", "s30", "1hh"])
def test_duration_rejects_junk(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
