"""EnvironmentFile / unit-file reading, rendering and merging (systemd's rules)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlnode.errors import InputError
from mlnode.formats.base import DocumentKind
from mlnode.formats.envfile import merge_env, read_env, render_env
from mlnode.formats.facts import IgnoredAssignment, OverriddenAssignment, SystemdUnitFacts
from mlnode.formats.kubelet_argv import expand_exec_start, split_words
from mlnode.formats.systemd_unit import read_systemd_unit
from mlnode.knowledge.placement import Placement
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

DATA = Path(__file__).parent.parent / "data" / "formats"
K8S = Version(1, 23)
DOCKER = RuntimeSpec(RuntimeKind.DOCKER)


def placement(
    flags: dict[str, str] | None = None, fields: dict[str, object] | None = None
) -> Placement:
    return Placement(K8S, DOCKER, kubelet_fields=fields or {}, kubelet_flags=flags or {})


def env_of(text: str) -> dict[str, str]:
    return {a.name: a.value for a in read_env("f", text).env}


def flags_of(text: str, var: str | None = None) -> dict[str, str | None]:
    doc = read_env("f", text)
    return {f.name: f.value for f in doc.flags if var is None or f.origin.detail == var}


# --------------------------------------------------------------------------- systemd quoting


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("A=plain", "plain"),
        ("A=  spaced value   ", "spaced value"),
        ("A='single $x \\n'", "single $x \\n"),
        ('A="dq \\" \\\\ \\$ \\` \\n"', 'dq " \\ $ ` \\n'),
        ('A="x" y', "xy"),  # after a closing quote blanks are skipped, then it goes on
        ("A=\"x\"'y'", "xy"),
        ('A=a "b"', 'a "b"'),  # a quote inside an unquoted value is an ordinary character
        ("A=foo # not a comment", "foo # not a comment"),
        ("A=a\\ b", "a b"),
        ("A=", ""),
        ("  A = x", "x"),
    ],
)
def test_values_follow_systemd(line: str, value: str) -> None:
    assert env_of(line + "\n") == {"A": value}


def test_comments_only_at_line_start() -> None:
    text = "# c\n   ; also a comment\nA=1 ;not\n#B=2\n"
    assert env_of(text) == {"A": "1 ;not"}


def test_line_continuation_and_lines() -> None:
    text = 'A=one \\\ntwo\nB="x\\\ny"\nC=3\n'
    doc = read_env("f", text)
    assert {a.name: (a.value, a.origin.line) for a in doc.env} == {
        "A": ("one two", 1),
        "B": ("xy", 3),
        "C": ("3", 5),
    }


def test_multiline_quotes_keep_newlines_and_count_lines() -> None:
    text = "A='x\ny'\nB=1\n"
    doc = read_env("f", text)
    assert [(a.name, a.value, a.origin.line) for a in doc.env] == [("A", "x\ny", 1), ("B", "1", 3)]


def test_export_is_not_special() -> None:
    doc = read_env("f", "export KUBELET_EXTRA_ARGS=--v=2\nA=1\n")
    assert [a.name for a in doc.env] == ["A"]
    assert doc.flags == ()
    assert doc.facts.ignored_assignments == (
        IgnoredAssignment(line=1, name="export KUBELET_EXTRA_ARGS", value="--v=2"),
    )


def test_line_without_equals_is_ignored() -> None:
    doc = read_env("f", "JUNK\nA=1\n")
    assert env_of("JUNK\nA=1\n") == {"A": "1"}
    assert doc.facts.ignored_lines == (1,)


def test_crlf() -> None:
    assert env_of("A=1\r\nB='2'\r\n") == {"A": "1", "B": "2"}


def test_later_assignment_wins_for_flags() -> None:
    text = 'KUBELET_EXTRA_ARGS="--v=1"\nKUBELET_EXTRA_ARGS="--v=3"\n'
    doc = read_env("f", text)
    assert [(f.name, f.value, f.origin.line) for f in doc.flags] == [("v", "3", 2)]
    assert doc.facts.overridden == (OverriddenAssignment(name="KUBELET_EXTRA_ARGS", line=1),)


@pytest.mark.parametrize("text", ['A="open\nB=1\n', "A='x\n", 'A="x\\"'])
def test_unterminated_quote_is_an_error_with_line(text: str) -> None:
    with pytest.raises(InputError) as e:
        read_env("/etc/default/kubelet", text)
    assert e.value.line == 1
    assert str(e.value).startswith("/etc/default/kubelet:1: unterminated")


def test_comment_continuation_is_reported() -> None:
    doc = read_env("f", "# a \\\nA=1\n")
    assert env_of("# a \\\nA=1\n") == {"A": "1"}
    assert doc.facts.comment_continuations == (1,)


# --------------------------------------------------------------------------- flags


def test_classic_env_line() -> None:
    doc = read_env("/etc/default/kubelet", (DATA / "default-kubelet.env").read_text())
    assert doc.kind is DocumentKind.ENV_FILE
    assert [(f.name, f.value, f.text, f.origin.line, f.origin.detail) for f in doc.flags] == [
        ("image-gc-low-threshold", "70", "--image-gc-low-threshold 70", 2, "KUBELET_EXTRA_ARGS"),
        ("image-gc-high-threshold", "80", "--image-gc-high-threshold 80", 2, "KUBELET_EXTRA_ARGS"),
        (
            "image-pull-progress-deadline",
            "30m",
            "--image-pull-progress-deadline 30m",
            2,
            "KUBELET_EXTRA_ARGS",
        ),
    ]


def test_kubespray_env_multiline_flags_have_their_own_lines() -> None:
    doc = read_env("kubelet.env", (DATA / "kubespray-kubelet.env").read_text())
    by = {f.name: (f.value, f.origin.line, f.origin.detail) for f in doc.flags}
    assert by["v"] == ("2", 1, "KUBE_LOG_LEVEL")
    assert by["config"] == ("/etc/kubernetes/kubelet-config.yaml", 6, "KUBELET_ARGS")
    assert by["image-gc-high-threshold"] == ("90", 9, "KUBELET_ARGS")
    assert by["serialize-image-pulls"] == ("false", 9, "KUBELET_ARGS")
    assert "PATH" not in {f.origin.detail for f in doc.flags}


@pytest.mark.parametrize(
    ("value", "flags", "positional"),
    [
        ("--a=1 --b 2", {"a": "1", "b": "2"}, []),
        ("-v=2", {"v": "2"}, []),
        ("-v 4", {"v": "4"}, []),
        ("-v3", {"v": "3"}, []),
        ("--flag=", {"flag": ""}, []),
        ("--serialize-image-pulls false", {"serialize-image-pulls": None}, ["false"]),
        ("--serialize-image-pulls=false", {"serialize-image-pulls": "false"}, []),
        ("--image_gc_high_threshold=80", {"image-gc-high-threshold": "80"}, []),
        ("--x --y", {"x": None, "y": None}, []),
        # a non-boolean flag mlnode knows takes the next argument whatever it is (pflag)
        ("--image-gc-high-threshold --v=2", {"image-gc-high-threshold": "--v=2"}, []),
        ('--node-labels="a=b c" --v=1', {"node-labels": "a=b c", "v": "1"}, []),
        ("--a=1 -- rest", {"a": "1"}, ["rest"]),
    ],
)
def test_flag_parsing_like_pflag(
    value: str, flags: dict[str, str | None], positional: list[str]
) -> None:
    text = f"KUBELET_EXTRA_ARGS='{value}'\n"
    doc = read_env("f", text)
    assert {f.name: f.value for f in doc.flags} == flags
    assert doc.facts.positional_args.get("KUBELET_EXTRA_ARGS", ()) == tuple(positional)


def test_split_words_unquotes_like_systemd() -> None:
    assert [w.text for w in split_words(' a \'b c\' "d\\"e" f\\ g ')] == ["a", "b c", 'd"e', "f g"]


# --------------------------------------------------------------------------- units


def test_kubeadm_dropin_unit() -> None:
    doc = read_systemd_unit("10-kubeadm.conf", (DATA / "10-kubeadm.conf").read_text())
    assert doc.kind is DocumentKind.SYSTEMD_UNIT
    f = doc.facts_as(SystemdUnitFacts)
    assert f.environment_files == (
        "-/var/lib/kubelet/kubeadm-flags.env",
        "-/etc/default/kubelet",
    )
    assert f.environment["KUBELET_CONFIG_ARGS"] == "--config=/var/lib/kubelet/config.yaml"
    assert f.exec_start_reset is True
    assert f.exec_start_line == 11
    assert f.env_references == (
        "KUBELET_KUBECONFIG_ARGS",
        "KUBELET_CONFIG_ARGS",
        "KUBELET_KUBEADM_ARGS",
        "KUBELET_EXTRA_ARGS",
    )
    argv = expand_exec_start(
        f.exec_start_argv,
        {**f.environment, "KUBELET_EXTRA_ARGS": "--v=2 '--node-labels=a b'"},
    )
    assert argv[0] == "/usr/bin/kubelet"
    assert "--config=/var/lib/kubelet/config.yaml" in argv
    assert argv[-2:] == ["--v=2", "--node-labels=a b"]


def test_unit_literal_flags_and_continuation() -> None:
    text = (
        "[Unit]\nDescription=kubelet\n[Service]\n"
        "ExecStart=/usr/local/bin/kubelet \\\n"
        "    --config=/etc/kubernetes/kubelet-config.yaml \\\n"
        "    --config-dir /etc/kubernetes/kubelet.conf.d \\\n"
        "    $KUBELET_ARGS ${EXTRA}\n"
    )
    doc = read_systemd_unit("kubelet.service", text)
    assert {f.name: (f.value, f.origin.line) for f in doc.flags} == {
        "config": ("/etc/kubernetes/kubelet-config.yaml", 4),
        "config-dir": ("/etc/kubernetes/kubelet.conf.d", 4),
    }
    assert doc.facts.env_references == ("KUBELET_ARGS",)
    assert doc.facts.env_references_inline == ("EXTRA",)
    assert doc.facts.exec_start_reset is False


def test_unit_resets() -> None:
    text = (
        "[Service]\nEnvironmentFile=/a\nEnvironmentFile=\nEnvironmentFile=-/b\n"
        "ExecStart=/x\nExecStart=\n"
    )
    f = read_systemd_unit("u", text).facts_as(SystemdUnitFacts)
    assert f.environment_files == ("-/b",)
    assert f.environment_files_reset is True
    assert f.exec_start is None


def test_unit_bad_line() -> None:
    with pytest.raises(InputError, match=r"^u:2: expected KEY=VALUE"):
        read_systemd_unit("u", "[Service]\nnonsense\n")


# --------------------------------------------------------------------------- render / merge


def test_render_holds_only_flags() -> None:
    p = placement({"image-pull-progress-deadline": "30m0s"}, {"imageGCHighThresholdPercent": 85})
    text = render_env(p)
    assert text.startswith("# Written by mlnode")
    assert text.endswith('KUBELET_EXTRA_ARGS="--image-pull-progress-deadline=30m0s"\n')
    assert "image-gc" not in text
    assert render_env(placement()).endswith("\nKUBELET_EXTRA_ARGS=\n")


def test_merge_classic_removes_and_keeps_empty_variable() -> None:
    text = (DATA / "default-kubelet.env").read_text()
    p = placement(fields={"imageGCHighThresholdPercent": 85, "imageGCLowThresholdPercent": 80})
    out = merge_env(text, "f", p, remove_flags=frozenset({"image-pull-progress-deadline"}))
    assert out == text.splitlines(keepends=True)[0] + "KUBELET_EXTRA_ARGS=\n"


def test_merge_replaces_in_place_keeping_style() -> None:
    text = (DATA / "default-kubelet.env").read_text()
    p = placement({"image-pull-progress-deadline": "1h0m0s"}, {"imageGCLowThresholdPercent": 70})
    out = merge_env(text, "f", p)
    assert out.splitlines()[1] == (
        'KUBELET_EXTRA_ARGS="--image-gc-high-threshold 80 --image-pull-progress-deadline 1h0m0s"'
    )


def test_merge_multiline_kubespray_env() -> None:
    text = (DATA / "kubespray-kubelet.env").read_text()
    p = placement(fields={"imageGCHighThresholdPercent": 85, "serializeImagePulls": False})
    out = merge_env(text, "kubelet.env", p, variable="KUBELET_ARGS")
    assert out == text.replace(
        " \\\n --image-gc-high-threshold=90 --serialize-image-pulls=false", ""
    )
    assert flags_of(out, "KUBELET_ARGS")["config"] == "/etc/kubernetes/kubelet-config.yaml"


def test_merge_sets_flag_and_drops_it_from_other_variables() -> None:
    text = "# keep me\nKUBELET_KUBEADM_ARGS=\"--v=2 --x=1\"\nOTHER='a b'\n"
    p = placement({"x": "2"})
    out = merge_env(text, "f", p)
    assert (
        out
        == '# keep me\nKUBELET_KUBEADM_ARGS="--v=2"\nOTHER=\'a b\'\nKUBELET_EXTRA_ARGS="--x=2"\n'
    )
    assert merge_env(out, "f", p) == out


def test_merge_unquoted_and_single_quoted() -> None:
    p = placement({"image-pull-progress-deadline": "2m0s"})
    assert merge_env("KUBELET_EXTRA_ARGS=--v=2\n", "f", p) == (
        "KUBELET_EXTRA_ARGS=--v=2 --image-pull-progress-deadline=2m0s\n"
    )
    assert merge_env("KUBELET_EXTRA_ARGS='--v=2'\n", "f", p) == (
        "KUBELET_EXTRA_ARGS='--v=2 --image-pull-progress-deadline=2m0s'\n"
    )
    assert merge_env('KUBELET_EXTRA_ARGS=""\n', "f", p) == (
        'KUBELET_EXTRA_ARGS="--image-pull-progress-deadline=2m0s"\n'
    )


def test_merge_without_anything_to_do_is_identity() -> None:
    text = (DATA / "kubeadm-flags.env").read_text()
    assert merge_env(text, "f", placement(), variable="KUBELET_KUBEADM_ARGS") == text


# --------------------------------------------------------------------------- properties

flag_names = st.builds(
    lambda head, tail: head + tail, st.sampled_from("abcdefvxyz"), st.text("abcgv-019", max_size=8)
)
flag_values = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"), max_size=12
)
flag_maps = st.dictionaries(flag_names, flag_values, max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_read_env_never_crashes(text: str) -> None:
    with contextlib.suppress(InputError):
        read_env("f", text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_read_unit_never_crashes(text: str) -> None:
    with contextlib.suppress(InputError):
        read_systemd_unit("u", text)


@settings(max_examples=150, deadline=None)
@given(flag_maps, st.sampled_from(["KUBELET_EXTRA_ARGS", "KUBELET_KUBEADM_ARGS", "KUBELET_ARGS"]))
def test_render_read_roundtrip_and_stable(flags: dict[str, str], var: str) -> None:
    text = render_env(placement(flags), var)
    got = {f.name: f.value for f in read_env("f", text).flags}
    assert got == flags
    again = render_env(placement({k: v or "" for k, v in got.items()}), var)
    assert again == text


existing_flags = st.lists(
    st.tuples(flag_names, st.text("Az09.%<,/:", max_size=6), st.booleans()),
    max_size=5,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    existing_flags,
    st.sampled_from(["double", "single", "plain"]),
    st.booleans(),
    flag_maps,
    st.frozensets(flag_names, max_size=3),
)
def test_merge_idempotent_and_keeps_other_lines(
    existing: list[tuple[str, str, bool]],
    style: str,
    continuation: bool,
    wanted: dict[str, str],
    remove: frozenset[str],
) -> None:
    # A bare non-boolean flag takes the next word as its value (pflag), so a file ending in
    # one is already broken for the kubelet ("flag needs an argument"); not a merge case.
    existing = [(n, v, eq) for n, v, eq in existing if eq or v]
    words = [f"--{n}={v}" if eq else f"--{n} {v}" for n, v, eq in existing]
    joiner = " \\\n" if continuation and style != "single" else " "
    body = joiner.join(words)
    rhs = {"double": f'"{body}"', "single": f"'{body}'", "plain": body}[style]
    header = "# comment line\n; other comment\nPATH=/usr/bin:/bin\n"
    text = header + "KUBELET_EXTRA_ARGS=" + rhs + "\nTRAILER='x y'\n"
    try:
        read_env("f", text)
    except InputError:
        return
    p = placement(wanted)
    once = merge_env(text, "f", p, remove_flags=remove)
    twice = merge_env(once, "f", p, remove_flags=remove)
    assert once == twice
    for line in ("# comment line", "; other comment", "PATH=/usr/bin:/bin", "TRAILER='x y'"):
        assert line in once.splitlines()
    got = {f.name: f.value for f in read_env("f", once).flags}
    for name, v in wanted.items():
        assert got[name] == v
    for name in remove - set(wanted):
        assert name not in got
