"""systemd EnvironmentFile= files and kubelet units: the kubelet flags they carry.

Files: ``/etc/default/kubelet`` (DEB), ``/etc/sysconfig/kubelet`` (RPM),
``/var/lib/kubelet/kubeadm-flags.env`` (kubeadm) and kubespray's ``/etc/kubernetes/kubelet.env``,
plus the unit ``kubelet.service`` and its drop-ins (``10-kubeadm.conf``) that name them.

**How systemd reads an EnvironmentFile** (``src/basic/env-file.c``, ``parse_env_file_internal``;
this module reimplements the behaviour, it does not port the code):

- ``#`` and ``;`` start a comment only as the first non-blank character of a line; a comment
  always ends at the newline (since v254 a trailing backslash no longer continues it — older
  versions did; such lines are listed in ``facts["comment_continuations"]``).
- ``KEY=VALUE``: blanks around the key and before the value are skipped; trailing blanks of an
  unquoted value are chomped. A line without ``=`` is ignored.
- Quotes are special only where a value (segment) starts: ``'...'`` is literal, ``"..."``
  un-escapes ``\\"``, ``\\\\``, ``\\``` and ``\\$`` and keeps the backslash before any other
  character. After a closing quote systemd skips blanks and goes on, so ``A="x" y`` is ``xy``.
  A quote in the middle of an unquoted value is an ordinary character.
- Unquoted, a backslash escapes the next character; backslash-newline (also inside double
  quotes) joins lines. Newlines inside quotes are kept.
- ``export FOO=1`` is *not* special: the key ``export FOO`` is not a valid name, and the unit
  loader drops it with "Ignoring invalid environment assignment" (``strv_env_clean_with_callback``;
  names are ``[A-Za-z_][A-Za-z0-9_]*``, ``env-util.c``). Such lines are in
  ``facts["ignored_assignments"]``. A later assignment of a name replaces an earlier one.
- systemd accepts an unterminated quote and takes the rest of the file as the value; mlnode
  refuses the file instead (:class:`~mlnode.errors.InputError`), because that is never meant.

**How the value reaches the kubelet** (``replace_env_argv`` in ``env-util.c``): in ``ExecStart=``
a word that is exactly ``$VAR`` becomes the value split at whitespace, with quotes removed
(``EXTRACT_UNQUOTE|EXTRACT_RELAX``), i.e. zero or more arguments; ``${VAR}`` is replaced
in place and always yields one argument. The kubelet then parses the arguments with pflag:
``--name=value``, ``--name value`` (non-boolean flags take the next argument), bare boolean
flags, ``-v=2``/``-v 2``/``-v2``; ``_`` in names is normalised to ``-`` (``WordSepNormalizeFunc``).
Any leftover positional argument makes the kubelet exit ("unknown command").
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlnode.errors import InputError
from mlnode.formats.base import DocumentKind, EnvAssignment, FlagOccurrence, ParsedDocument
from mlnode.knowledge.model import Origin
from mlnode.knowledge.placement import Placement
from mlnode.knowledge.table import KUBELET_SETTINGS, ValueKind, kubelet_setting_by_field

__all__ = [
    "BOOLEAN_KUBELET_FLAGS",
    "KUBELET_ARGS_VARIABLES",
    "Word",
    "expand_exec_start",
    "field_override_flags",
    "is_kubelet_args_variable",
    "merge_env",
    "parse_flags",
    "read_env",
    "read_systemd_unit",
    "render_env",
    "split_words",
]

# Variables whose value ends up on the kubelet's command line. kubeadm's 10-kubeadm.conf:
# ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS
# $KUBELET_EXTRA_ARGS. kubespray's kubelet.service.j2 (v2.31): $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL
# $KUBELET_API_SERVER $KUBELET_ADDRESS $KUBELET_PORT $KUBELET_HOSTNAME $KUBELET_ARGS $DOCKER_SOCKET
# $KUBELET_NETWORK_PLUGIN $KUBELET_VOLUME_PLUGIN $KUBELET_CLOUDPROVIDER, all set in kubelet.env.
KUBELET_ARGS_VARIABLES: frozenset[str] = frozenset(
    {
        "KUBELET_KUBECONFIG_ARGS",
        "KUBELET_CONFIG_ARGS",
        "KUBELET_KUBEADM_ARGS",
        "KUBELET_EXTRA_ARGS",
        "KUBELET_ARGS",
        "KUBE_LOGTOSTDERR",
        "KUBE_LOG_LEVEL",
        "KUBELET_API_SERVER",
        "KUBELET_ADDRESS",
        "KUBELET_PORT",
        "KUBELET_HOSTNAME",
        "DOCKER_SOCKET",
        "KUBELET_NETWORK_PLUGIN",
        "KUBELET_VOLUME_PLUGIN",
        "KUBELET_CLOUDPROVIDER",
    }
)
_ARGS_NAME = re.compile(r"^KUBELET_[A-Z0-9_]*ARGS$")

# Boolean kubelet flags (pflag NoOptDefVal "true": a following word is NOT their value).
# From cmd/kubelet/app/options/options.go and the klog/logs flags the kubelet registers.
BOOLEAN_KUBELET_FLAGS: frozenset[str] = frozenset(
    {
        "serialize-image-pulls",
        "fail-swap-on",
        "fail-cgroupv1",
        "rotate-certificates",
        "rotate-server-certificates",
        "register-node",
        "register-schedulable",
        "enable-server",
        "enable-debugging-handlers",
        "enable-controller-attach-detach",
        "enable-cadvisor-json-endpoints",
        "enable-load-reader",
        "make-iptables-util-chains",
        "protect-kernel-defaults",
        "cgroups-per-qos",
        "kernel-memcg-notification",
        "keep-terminated-pod-volumes",
        "exit-on-lock-contention",
        "anonymous-auth",
        "authentication-token-webhook",
        "cpu-cfs-quota",
        "localstorage-capacity-isolation",
        "seccomp-default",
        "containerized",
        "allow-privileged",
        "redirect-container-streaming",
        "experimental-check-node-capabilities-before-mount",
        "docker-disable-shared-pid",
        "logtostderr",
        "alsologtostderr",
        "add-dir-header",
        "skip-headers",
        "skip-log-headers",
        "one-output",
        "log-json-split-stream",
        "version",
        "help",
    }
)
_BOOLEAN_SHORTHANDS = frozenset({"h"})
# Non-boolean flags mlnode cares about: pflag gives them the next argument whatever it is.
_VALUE_FLAGS = frozenset(
    r.flag for r in KUBELET_SETTINGS if r.flag and r.kind is not ValueKind.BOOL
) | frozenset({"config", "config-dir", "kubeconfig", "bootstrap-kubeconfig", "v"})

_WS = " \t\n\r"
_NL = "\n\r"
_DQ_ESCAPABLE = '"\\`$'
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_kubelet_args_variable(name: str) -> bool:
    """True for variables that feed the kubelet's command line (see KUBELET_ARGS_VARIABLES)."""
    return name in KUBELET_ARGS_VARIABLES or bool(_ARGS_NAME.match(name))


# --------------------------------------------------------------------------- env file parsing


class _Q(enum.Enum):
    NONE = "none"
    SINGLE = "single"
    DOUBLE = "double"


@dataclass(frozen=True)
class _Assignment:
    name: str
    value: str
    line: int  # where the key starts
    start: int  # offset of the key's first character
    end: int  # offset of the terminating newline, or len(text)
    offsets: tuple[int, ...]  # raw offset of each value character
    contexts: tuple[_Q, ...]  # quoting in force for each value character
    style: _Q  # how the value starts: unquoted, '...' or "..."


class _Lines:
    def __init__(self, text: str) -> None:
        self._nl = [i for i, c in enumerate(text) if c == "\n"]

    def line(self, offset: int) -> int:
        return bisect.bisect_left(self._nl, offset) + 1


def _parse(path: str, text: str) -> tuple[list[_Assignment], dict[str, Any]]:
    if "\x00" in text:
        lines = _Lines(text)
        raise InputError(
            "contains a NUL byte; not a text file", path=path, line=lines.line(text.index("\x00"))
        )
    lines = _Lines(text)
    out: list[_Assignment] = []
    ignored_lines: list[int] = []
    comment_cont: list[int] = []

    state = "pre_key"
    key: list[str] = []
    key_start = 0
    key_ws: int | None = None  # index in key where trailing whitespace starts
    val: list[str] = []
    offs: list[int] = []
    ctxs: list[_Q] = []
    val_ws: int | None = None
    style: _Q | None = None
    quote_open = 0

    def push(end: int) -> None:
        nonlocal key, val, offs, ctxs, val_ws, key_ws, style
        name = "".join(key[:key_ws] if key_ws is not None else key)
        n = len(val) if (state != "value" or val_ws is None) else val_ws
        out.append(
            _Assignment(
                name=name,
                value="".join(val[:n]),
                line=lines.line(key_start),
                start=key_start,
                end=end,
                offsets=tuple(offs[:n]),
                contexts=tuple(ctxs[:n]),
                style=style or _Q.NONE,
            )
        )
        key, val, offs, ctxs = [], [], [], []
        val_ws = key_ws = None
        style = None

    def add(c: str, i: int, q: _Q) -> None:
        val.append(c)
        offs.append(i)
        ctxs.append(q)

    for i, c in enumerate(text):
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif c not in _WS:
                state = "key"
                key = [c]
                key_start = i
                key_ws = None
        elif state == "key":
            if c in _NL:
                ignored_lines.append(lines.line(key_start))
                state = "pre_key"
                key = []
            elif c == "=":
                state = "pre_value"
                val_ws = None
            else:
                if c not in _WS:
                    key_ws = None
                elif key_ws is None:
                    key_ws = len(key)
                key.append(c)
        elif state == "pre_value":
            if c in _NL:
                push(i)
                state = "pre_key"
            elif c == "'":
                style = style or _Q.SINGLE
                quote_open = i
                state = "single"
            elif c == '"':
                style = style or _Q.DOUBLE
                quote_open = i
                state = "double"
            elif c == "\\":
                style = style or _Q.NONE
                state = "value_escape"
            elif c not in _WS:
                style = style or _Q.NONE
                state = "value"
                add(c, i, _Q.NONE)
        elif state == "value":
            if c in _NL:
                push(i)
                state = "pre_key"
            elif c == "\\":
                state = "value_escape"
                val_ws = None
            else:
                if c not in _WS:
                    val_ws = None
                elif val_ws is None:
                    val_ws = len(val)
                add(c, i, _Q.NONE)
        elif state == "value_escape":
            state = "value"
            if c not in _NL:
                add(c, i, _Q.NONE)
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                add(c, i, _Q.SINGLE)
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                add(c, i, _Q.DOUBLE)
        elif state == "double_escape":
            state = "double"
            if c in _DQ_ESCAPABLE:
                add(c, i, _Q.DOUBLE)
            elif c != "\n":
                add("\\", i - 1, _Q.DOUBLE)
                add(c, i, _Q.DOUBLE)
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c in _NL:
                state = "pre_key"
        elif state == "comment_escape":
            if c in _NL:
                comment_cont.append(lines.line(i))
                state = "pre_key"
            else:
                state = "comment"

    if state in ("single", "double", "double_escape"):
        kind = "single" if state == "single" else "double"
        raise InputError(
            f"unterminated {kind} quote in the value of {''.join(key).strip()} "
            "(systemd would take the rest of the file as its value)",
            path=path,
            line=lines.line(quote_open),
        )
    if state in ("pre_value", "value", "value_escape"):
        push(len(text))
    elif state == "key":
        ignored_lines.append(lines.line(key_start))

    facts: dict[str, Any] = {
        "ignored_lines": ignored_lines,
        "comment_continuations": comment_cont,
    }
    return out, facts


# --------------------------------------------------------------------------- words and flags


@dataclass(frozen=True)
class Word:
    """One argument after systemd's ``$VAR`` split; ``start``/``end`` index the value."""

    text: str
    start: int
    end: int


def split_words(value: str) -> list[Word]:
    """Split a variable's value the way ``$VAR`` in ExecStart= does (unquote, relaxed)."""
    return _split(value, unit=False)


_C_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "s": " ",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
}


def _split(value: str, *, unit: bool) -> list[Word]:
    """Whitespace-separated words with quotes removed.

    ``unit`` selects unit-file rules (C escapes resolved, ``%%`` is ``%``, a trailing
    backslash kept) over the ``$VAR`` expansion rules (a backslash keeps the next character).
    """
    words: list[Word] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in _WS:
            i += 1
        if i >= n:
            break
        start = i
        buf: list[str] = []
        quote: str | None = None
        while i < n:
            c = value[i]
            if c == "\\" and (i + 1 < n or not unit):
                if i + 1 < n:
                    nxt = value[i + 1]
                    buf.append(_C_ESCAPES.get(nxt, nxt) if unit else nxt)
                i += 2
                continue
            if unit and c == "%" and i + 1 < n and value[i + 1] == "%":
                buf.append("%")
                i += 2
                continue
            if quote:
                if c == quote:
                    quote = None
                else:
                    buf.append(c)
            elif c in "'\"":
                quote = c
            elif c in _WS:
                break
            else:
                buf.append(c)
            i += 1
        words.append(Word("".join(buf), start, min(i, n)))
    return words


def _normalize(name: str) -> str:
    return name.replace("_", "-")


def parse_flags(
    words: Sequence[Word | None],
    *,
    source: str,
    path: str,
    line_of: Callable[[int], int] | None = None,
    line: int | None = None,
    detail: str = "",
) -> tuple[list[FlagOccurrence], list[str]]:
    """Parse kubelet arguments like pflag. ``None`` entries are barriers (unexpanded ``$VAR``).

    Returns the flags and the positional arguments (which make the kubelet exit).
    ``source`` is the text the words index (for ``FlagOccurrence.text``); ``line_of`` maps a
    word's start index to a file line (else ``line`` is used).
    """
    flags: list[FlagOccurrence] = []
    positional: list[str] = []
    i = 0

    def next_word(j: int) -> Word | None:
        return words[j] if j < len(words) else None

    while i < len(words):
        w = words[i]
        if w is None:
            i += 1
            continue
        t = w.text
        end_word = w
        value: str | None
        if t == "--":
            positional.extend(x.text for x in words[i + 1 :] if x is not None)
            break
        if t.startswith("--") and len(t) > 2:
            name, eq, rest = t[2:].partition("=")
            name = _normalize(name)
            if eq:
                value = rest
            elif name in BOOLEAN_KUBELET_FLAGS:
                value = None
            else:
                nxt = next_word(i + 1)
                if nxt is not None and (name in _VALUE_FLAGS or not nxt.text.startswith("-")):
                    value = nxt.text
                    end_word = nxt
                    i += 1
                else:
                    value = None
        elif t.startswith("-") and len(t) > 1:
            name = t[1]
            rest = t[2:]
            if rest.startswith("="):
                value = rest[1:]
            elif rest:
                value = rest
            elif name in _BOOLEAN_SHORTHANDS:
                value = None
            else:
                nxt = next_word(i + 1)
                if nxt is not None and (name in _VALUE_FLAGS or not nxt.text.startswith("-")):
                    value = nxt.text
                    end_word = nxt
                    i += 1
                else:
                    value = None
        else:
            positional.append(t)
            i += 1
            continue
        ln = line_of(w.start) if line_of is not None else line
        flags.append(
            FlagOccurrence(
                name=name,
                value=value,
                origin=Origin(path, ln, detail),
                text=source[w.start : end_word.end],
            )
        )
        i += 1
    return flags, positional


# --------------------------------------------------------------------------- read_env


def read_env(path: str, text: str) -> ParsedDocument:
    """Read an EnvironmentFile; flags come from the kubelet-args variables' effective values."""
    assignments, facts = _parse(path, text)
    lines = _Lines(text)
    env: list[EnvAssignment] = []
    ignored: list[dict[str, Any]] = []
    effective: dict[str, _Assignment] = {}
    for a in assignments:
        if not _NAME_RE.match(a.name):
            ignored.append({"line": a.line, "name": a.name, "value": a.value})
            continue
        env.append(EnvAssignment(a.name, a.value, Origin(path, a.line, a.name)))
        effective[a.name] = a
    flags: list[FlagOccurrence] = []
    positional: dict[str, list[str]] = {}
    for name, a in effective.items():
        if not is_kubelet_args_variable(name):
            continue
        found, pos = _flags_of(path, a, lines)
        flags.extend(found)
        if pos:
            positional[name] = pos
    facts["ignored_assignments"] = ignored
    facts["positional_args"] = positional
    facts["overridden"] = [
        {"name": a.name, "line": a.line}
        for a in assignments
        if _NAME_RE.match(a.name) and effective[a.name] is not a
    ]
    return ParsedDocument(
        kind=DocumentKind.ENV_FILE, path=path, env=tuple(env), flags=tuple(flags), facts=facts
    )


def _flags_of(path: str, a: _Assignment, lines: _Lines) -> tuple[list[FlagOccurrence], list[str]]:
    def line_of(idx: int) -> int:
        return lines.line(a.offsets[idx]) if idx < len(a.offsets) else a.line

    return parse_flags(
        split_words(a.value), source=a.value, path=path, line_of=line_of, detail=a.name
    )


# --------------------------------------------------------------------------- render / merge


def _quote_word(w: str) -> str:
    """Quote one argument for systemd's $VAR split (second level of quoting)."""
    if w and not any(c in _WS or c in "'\"\\" for c in w):
        return w
    return '"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _flag_text(name: str, value: str | None, *, separate: bool = False) -> str:
    if value is None:
        return f"--{name}"
    if separate and name not in BOOLEAN_KUBELET_FLAGS:
        return f"--{name} {_quote_word(value)}"
    return _quote_word(f"--{name}={value}")


def _encode(s: str, ctx: _Q) -> str | None:
    """Encode value text for the file at a position quoted as ``ctx`` (None if impossible)."""
    if ctx is _Q.DOUBLE:
        return "".join("\\" + c if c in _DQ_ESCAPABLE else c for c in s)
    if ctx is _Q.SINGLE:
        return None if "'" in s else s
    if "\n" in s or "\r" in s:
        return None
    return s.replace("\\", "\\\\")


def _format_assignment(name: str, value: str, style: _Q) -> str:
    if value == "":
        return f"{name}="
    if style is _Q.SINGLE and "'" not in value and "\n" not in value:
        return f"{name}='{value}'"
    plain_ok = (
        style is _Q.NONE
        and value[0] not in "'\"" + _WS
        and value[-1] not in _WS
        and not any(c in value for c in "\\\n\r")
    )
    if plain_ok:
        return f"{name}={value}"
    enc = _encode(value, _Q.DOUBLE)
    return f'{name}="{enc}"'


def field_override_flags(placement: Placement) -> frozenset[str]:
    """Flags that would override a field the placement sets (flags beat the config file)."""
    names = set()
    for fld in placement.kubelet_fields:
        row = kubelet_setting_by_field(fld)
        if row is not None and row.flag:
            names.add(row.flag)
    return frozenset(names)


def render_env(placement: Placement, variable: str = "KUBELET_EXTRA_ARGS") -> str:
    """A complete EnvironmentFile holding only the placement's kubelet flags."""
    k8s = placement.kubernetes_version
    words = [_flag_text(n, v) for n, v in placement.kubelet_flags.items()]
    head = [
        "# Written by mlnode: kubelet flags that have no KubeletConfiguration field in "
        f"Kubernetes {k8s}.",
        "# Settings with a config field belong in the kubelet config file, not here: a flag",
        "# overrides the file and is deprecated. systemd reads this file as an EnvironmentFile=",
        f"# and passes ${variable} to the kubelet split at whitespace.",
    ]
    return "\n".join(head) + "\n" + _format_assignment(variable, " ".join(words), _Q.DOUBLE) + "\n"


@dataclass
class _Tok:
    name: str
    value: str | None
    start: int  # index in the value
    end: int
    separate: bool  # "--name value" rather than "--name=value"


def _tokens(a: _Assignment) -> list[_Tok]:
    words = split_words(a.value)
    flags, _ = parse_flags(words, source=a.value, path="", detail="")
    toks: list[_Tok] = []
    # Re-walk the words to get each flag's extent (parse_flags consumed them in order).
    wi = 0
    for f in flags:
        while wi < len(words) and not a.value.startswith(f.text, words[wi].start):
            wi += 1
        if wi >= len(words):
            break
        start = words[wi].start
        end = start + len(f.text)
        sep = f.value is not None and "=" not in words[wi].text
        toks.append(_Tok(f.name, f.value, start, end, sep))
        while wi < len(words) and words[wi].start < end:
            wi += 1
    return toks


def _raw_ok(text: str, a: _Assignment, raw_from: int, raw_to: int) -> bool:
    """True when text[raw_from:raw_to] holds no quote delimiters (only value chars/escapes)."""
    mapped = set(a.offsets)
    return all(i in mapped or text[i] in "\\\n\r" for i in range(raw_from, raw_to))


def _edit_assignment(
    text: str,
    a: _Assignment,
    set_flags: Mapping[str, str],
    drop: frozenset[str],
) -> list[tuple[int, int, str]] | None:
    """Edits (raw start, raw end, replacement) for one assignment, or None if nothing changes."""
    toks = _tokens(a)
    keep: list[tuple[_Tok, str | None]] = []  # (token, replacement text or None = unchanged)
    seen: set[str] = set()
    changed = False
    for t in toks:
        if t.name in set_flags:
            if t.name in seen:
                changed = True
                continue
            seen.add(t.name)
            want = set_flags[t.name]
            if t.value == want:
                keep.append((t, None))
            else:
                keep.append((t, _flag_text(t.name, want, separate=t.separate)))
                changed = True
        elif t.name in drop:
            changed = True
        else:
            keep.append((t, None))
    added = [_flag_text(n, v) for n, v in set_flags.items() if n not in seen]
    if added:
        changed = True
    if not changed:
        return None

    def full() -> list[tuple[int, int, str]]:
        parts = [a.value[t.start : t.end] if r is None else r for t, r in keep] + added
        value = " ".join(parts)
        return [(a.start, a.end, _format_assignment(a.name, value, a.style))]

    if not keep or not a.offsets:
        return full()
    edits: list[tuple[int, int, str]] = []
    kept_ids = {id(t) for t, _ in keep}
    # Removals: each run of dropped tokens is cut up to the next kept token, or (at the end)
    # from the end of the previous kept token.
    i = 0
    while i < len(toks):
        if id(toks[i]) in kept_ids:
            i += 1
            continue
        j = i
        while j < len(toks) and id(toks[j]) not in kept_ids:
            j += 1
        if j < len(toks):
            r0, r1 = a.offsets[toks[i].start], a.offsets[toks[j].start]
        else:
            prev = toks[i - 1]
            r0, r1 = a.offsets[prev.end - 1] + 1, a.offsets[toks[j - 1].end - 1] + 1
        if not _raw_ok(text, a, r0, r1):
            return full()
        edits.append((r0, r1, ""))
        i = j
    for t, repl in keep:
        if repl is None:
            continue
        r0, r1 = a.offsets[t.start], a.offsets[t.end - 1] + 1
        ctx = a.contexts[t.start]
        enc = _encode(repl, ctx)
        if enc is None or not _raw_ok(text, a, r0, r1) or a.contexts[t.end - 1] is not ctx:
            return full()
        edits.append((r0, r1, enc))
    if added:
        last = keep[-1][0]
        pos = a.offsets[last.end - 1] + 1
        enc = _encode(" " + " ".join(added), a.contexts[last.end - 1])
        if enc is None:
            return full()
        edits.append((pos, pos, enc))
    return edits


def merge_env(
    text: str,
    path: str,
    placement: Placement,
    *,
    variable: str = "KUBELET_EXTRA_ARGS",
    remove_flags: frozenset[str] = frozenset(),
) -> str:
    """Set the placement's flags in ``variable`` and drop obsolete ones, editing in place.

    ``remove_flags`` (names without dashes) are dropped from every kubelet-args variable of
    the file, and so are flags that would override a field the placement sets (a flag beats
    the config file). The placement's flags are set in the effective (last) assignment of
    ``variable`` (replacing the first occurrence, dropping repeats) and removed from the
    file's other kubelet-args variables. Comments, other variables, quoting and line
    continuations are kept; an emptied variable stays as ``VAR=``.
    """
    assignments, _ = _parse(path, text)
    wanted = dict(placement.kubelet_flags)
    drop_everywhere = (frozenset(remove_flags) | field_override_flags(placement)) - set(wanted)
    effective: dict[str, _Assignment] = {}
    for a in assignments:
        if _NAME_RE.match(a.name):
            effective[a.name] = a
    edits: list[tuple[int, int, str]] = []
    for name, a in effective.items():
        if name == variable:
            e = _edit_assignment(text, a, wanted, drop_everywhere)
        elif is_kubelet_args_variable(name):
            e = _edit_assignment(text, a, {}, drop_everywhere | frozenset(wanted))
        else:
            e = None
        if e:
            edits.extend(e)
    out = text
    for r0, r1, repl in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        out = out[:r0] + repl + out[r1:]
    if variable not in effective and wanted:
        line = _format_assignment(
            variable, " ".join(_flag_text(n, v) for n, v in wanted.items()), _Q.DOUBLE
        )
        if out and not out.endswith("\n"):
            out += "\n"
        out += line + "\n"
    return out


# --------------------------------------------------------------------------- systemd units


def _unit_words(value: str) -> list[str]:
    """Split a unit-file value into words (quotes removed, C escapes resolved, ``%%`` → ``%``)."""
    return [w.text for w in _split(value, unit=True)]


_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def read_systemd_unit(path: str, text: str) -> ParsedDocument:
    """Read kubelet.service or a drop-in: which env files and variables feed ExecStart=.

    ``facts``: ``environment_files`` (as written, a leading ``-`` means optional; an empty
    ``EnvironmentFile=`` resets the list and sets ``environment_files_reset``),
    ``environment`` (from ``Environment=``), ``exec_start`` (the last command line; an empty
    ``ExecStart=`` resets, noted as ``exec_start_reset``), ``exec_start_line``,
    ``exec_start_argv``, ``env_references`` (``$VAR`` words, split at whitespace) and
    ``env_references_inline`` (``${VAR}``, one word). ``flags`` are those written literally
    in ExecStart= (``--config=...``, ``--config-dir=...``).
    """
    if "\x00" in text:
        raise InputError("contains a NUL byte; not a text file", path=path)
    section = ""
    env_files: list[str] = []
    env_files_reset = False
    environment: dict[str, str] = {}
    env_lines: dict[str, int] = {}
    exec_start: str | None = None
    exec_line: int | None = None
    exec_reset = False
    raw_lines = text.split("\n")
    i = 0
    while i < len(raw_lines):
        start_line = i + 1
        line = raw_lines[i].rstrip("\r")
        i += 1
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        while line.endswith("\\") and i < len(raw_lines):
            line = line[:-1] + " "
            nxt = raw_lines[i].rstrip("\r")
            i += 1
            if nxt.strip()[:1] in ("#", ";"):
                continue
            line += nxt
        if line.endswith("\\"):
            line = line[:-1]
        stripped = line.strip()
        if stripped.startswith("["):
            if not stripped.endswith("]"):
                raise InputError(f"invalid section header {stripped!r}", path=path, line=start_line)
            section = stripped[1:-1]
            continue
        key, eq, value = stripped.partition("=")
        if not eq:
            raise InputError(f"expected KEY=VALUE, got {stripped!r}", path=path, line=start_line)
        key, value = key.strip(), value.strip()
        if section != "Service":
            continue
        if key == "EnvironmentFile":
            if not value:
                env_files = []
                env_files_reset = True
            else:
                env_files.append(value)
        elif key == "Environment":
            if not value:
                environment = {}
                env_lines = {}
                continue
            for word in _unit_words(value):
                name, eq2, val = word.partition("=")
                if eq2 and _NAME_RE.match(name):
                    environment[name] = val
                    env_lines[name] = start_line
        elif key == "ExecStart":
            if not value:
                exec_start = None
                exec_line = None
                exec_reset = True
            else:
                exec_start = value
                exec_line = start_line
    facts: dict[str, Any] = {
        "environment_files": env_files,
        "environment_files_reset": env_files_reset,
        "environment": environment,
        "exec_start": exec_start,
        "exec_start_line": exec_line,
        "exec_start_reset": exec_reset,
        "exec_start_argv": [],
        "env_references": [],
        "env_references_inline": [],
    }
    flags: list[FlagOccurrence] = []
    if exec_start is not None:
        argv = _unit_words(exec_start)
        if argv:
            argv[0] = argv[0].lstrip("@-:+!")
        facts["exec_start_argv"] = argv
        refs: list[str] = []
        inline: list[str] = []
        words: list[Word | None] = []
        src = ""
        for w in argv[1:]:
            if w.startswith("$") and not w.startswith(("${", "$$")):
                refs.append(w[1:])
                words.append(None)
                continue
            found = _VAR_REF.findall(w)
            if found:
                inline.extend(found)
                words.append(None)
                continue
            w = w.replace("$$", "$")
            if src:
                src += " "
            words.append(Word(w, len(src), len(src) + len(w)))
            src += w
        facts["env_references"] = refs
        facts["env_references_inline"] = inline
        flags, positional = parse_flags(
            words, source=src, path=path, line=exec_line, detail="ExecStart"
        )
        facts["positional_args"] = positional
    env = tuple(
        EnvAssignment(k, v, Origin(path, env_lines[k], "Environment"))
        for k, v in environment.items()
    )
    return ParsedDocument(
        kind=DocumentKind.SYSTEMD_UNIT, path=path, flags=tuple(flags), env=env, facts=facts
    )


def expand_exec_start(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The kubelet's argv once systemd substituted ``env`` into ExecStart= words."""
    out: list[str] = []
    for w in argv:
        if w.startswith("$") and not w.startswith(("${", "$$")):
            value = env.get(w[1:])
            if value is not None:
                out.extend(x.text for x in split_words(value))
            continue
        w = _VAR_REF.sub(lambda m: env.get(m.group(1), ""), w)
        out.append(w.replace("$$", "$"))
    return out
