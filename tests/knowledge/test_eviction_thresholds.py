"""evictionHard as the kubelet reads it: pflag's SIGNAL<VALUE pairs, then the eviction
manager's threshold rules (pkg/kubelet/eviction/helpers.go parseThresholdStatement), with
the kubelet's own wording."""

from __future__ import annotations

import re

import pytest

from mlnode.errors import InvalidValue
from mlnode.knowledge.table import kubelet_setting
from mlnode.knowledge.values import (
    EVICTION_SIGNALS,
    parse_field_value,
    parse_flag_value,
    parse_signal_map,
    split_signal_map,
)


def test_pflag_split() -> None:
    # component-base LangleSeparatedMapStringString: spaces trimmed, empty parts skipped,
    # the last of a repeated signal wins, an empty name is kept (and refused later)
    assert split_signal_map(" memory.available < 100Mi,,nodefs.available<10%") == {
        "memory.available": "100Mi",
        "nodefs.available": "10%",
    }
    assert split_signal_map("imagefs.available<10%,imagefs.available<20%") == {
        "imagefs.available": "20%"
    }
    assert split_signal_map("<5%") == {"": "5%"}
    with pytest.raises(InvalidValue, match="malformed pair 'one', expect string<string"):
        split_signal_map("one")
    with pytest.raises(InvalidValue, match="malformed pair ' '"):
        split_signal_map("imagefs.available<5%, ")  # only an empty part is skipped


@pytest.mark.parametrize(
    "text",
    [
        "imagefs.available<15%",
        "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%",
        "imagefs.inodesFree<5%,pid.available<1k,containerfs.available<10%",
        "imagefs.available<0%",  # the kubelet ignores exactly 0% and 100%
        "imagefs.available<100%",
        "imagefs.available<12.5%",
        "imagefs.available<1e3",
        "memory.available<1.5Gi",
        "memory.available<+500M",
        "memory.available<.5Gi",
        "memory.available<5.",
        "memory.available<1E3",
    ],
)
def test_accepted(text: str) -> None:
    assert parse_signal_map(text) == split_signal_map(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("imagefs.avail<15%", "unsupported eviction signal imagefs.avail"),
        ("<15%", "unsupported eviction signal ''"),
        (
            "imagefs.available<-1%",
            "eviction percentage threshold imagefs.available must be >= 0%: -1%",
        ),
        (
            "imagefs.available<101%",
            "eviction percentage threshold imagefs.available must be <= 100%",
        ),
        ("imagefs.available<0", "eviction threshold imagefs.available must be positive: 0"),
        ("memory.available<-100Mi", "eviction threshold memory.available must be positive"),
        ("memory.available<100MB", "quantities must match the regular expression"),
        ("memory.available<1Zi", "quantities must match the regular expression"),
        ("memory.available<1K", "unable to parse quantity's suffix"),
        ("memory.available<1Mii", "unable to parse quantity's suffix"),
        ("memory.available<Mi", "eviction threshold memory.available must be positive: Mi"),
        ("memory.available<0.000", "eviction threshold memory.available must be positive"),
        ("imagefs.available<<<", "quantities must match the regular expression"),
        ("imagefs.available<", "quantities must match the regular expression"),
        ("imagefs.available<abc%", 'strconv.ParseFloat: parsing "abc": invalid syntax'),
        ("imagefs.available<1e39%", "value out of range"),
        ("imagefs.available<nan%", "must be a percentage"),
    ],
)
def test_refused_with_the_kubelets_words(text: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=re.escape(message)):
        parse_signal_map(text)


def test_signals_are_the_eviction_managers() -> None:
    assert (
        "imagefs.available" in EVICTION_SIGNALS
        and "allocatableMemory.available" in EVICTION_SIGNALS
    )
    assert "imagefs.used" not in EVICTION_SIGNALS


def test_flag_and_field_both_checked() -> None:
    row = kubelet_setting("eviction_hard")
    with pytest.raises(
        InvalidValue, match=r'invalid argument "x" for "--eviction-hard" flag: malformed'
    ):
        parse_flag_value(row, "x")
    with pytest.raises(InvalidValue, match=r"^--eviction-hard: unsupported eviction signal foo$"):
        parse_flag_value(row, "foo<5%")
    with pytest.raises(InvalidValue, match=r"^evictionHard: eviction percentage threshold"):
        parse_field_value(row, {"imagefs.available": "150%"})
    assert parse_field_value(row, {"imagefs.available": "15%"}) == {"imagefs.available": "15%"}
