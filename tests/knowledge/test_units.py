from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlnode.units import format_go_duration, parse_bytes, parse_go_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("1h30m", 5400),
        ("2m0s", 120),
        ("0", 0),
        ("0s", 0),
        ("1.5h", 5400),
        ("300ms", 0.3),
        ("-5s", -5),
        ("1h0m0s", 3600),
        ("1ns", 1e-9),
    ],
)
def test_parse_go_duration(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1800, "30m0s"),
        (3600, "1h0m0s"),
        (5400, "1h30m0s"),
        (90, "1m30s"),
        (1e-9, "1ns"),
        (-1e-9, "-1ns"),
        (0.3, "300ms"),
        (1.5, "1.5s"),
    ],
)
def test_format_like_go(seconds: float, text: str) -> None:
    assert format_go_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [("30", "missing unit"), ("abc", "invalid"), ("", "invalid"), ("5x", "invalid")],
)
def test_go_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_go_duration(text)


@given(st.integers(min_value=0, max_value=10**6))
def test_whole_seconds_round_trip(n: int) -> None:
    assert parse_go_duration(format_go_duration(n)) == n


def test_parse_bytes() -> None:
    assert parse_bytes("15GiB") == 15 * 1024**3
    assert parse_bytes("15G") == 15 * 10**9
    assert parse_bytes("1048576") == 1048576
    with pytest.raises(ValueError):
        parse_bytes("lots")


# Go's time.ParseDuration (src/time/format.go) works in int64 nanoseconds: an integer part
# past 1<<63, a unit product past 1<<63, a sum past 1<<63, or a positive total past
# 1<<63 - 1 is 'time: invalid duration "<text>"'; -1<<63 itself is accepted.
@pytest.mark.parametrize(
    "text",
    [
        "99999999999999999h",
        "2562048h",
        "2562047h47m16.854775808s",
        "9223372036854775808ns",
        "-9223372036854775809ns",
        "-2562047h47m16.854775809s",
        "1" + "0" * 30 + "ns",
        "2562047h2562047h",
        "9223372036s1s",
    ],
)
def test_go_overflow_is_invalid(text: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_go_duration(text)
    assert str(e.value) == f'time: invalid duration "{text}"'


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2562047h47m16.854775807s", 9223372036.854775807),
        ("9223372036854775807ns", 9223372036.854775807),
        ("-9223372036854775808ns", -9223372036.854775808),
        ("-2562047h47m16.854775808s", -9223372036.854775808),
        ("9223372036854775807.9ns", 9223372036.854775807),  # the fraction truncates to 0 ns
        ("1." + "9" * 40 + "s", 2.0),  # fraction digits past int64 stop counting
    ],
)
def test_go_accepts_up_to_the_int64_edge(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)
