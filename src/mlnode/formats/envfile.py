"""systemd EnvironmentFile= files: the kubelet flags they carry, read and edited in place.

Files: ``/etc/default/kubelet`` (DEB), ``/etc/sysconfig/kubelet`` (RPM),
``/var/lib/kubelet/kubeadm-flags.env`` (kubeadm) and kubespray's ``/etc/kubernetes/kubelet.env``,
which the unit ``kubelet.service`` and its drop-ins (``10-kubeadm.conf``) name.

**How systemd reads an EnvironmentFile** (``src/basic/env-file.c``, ``parse_env_file_internal``;
this module reimplements the behaviour, it does not port the code):

- ``#`` and ``;`` start a comment only as the first non-blank character of a line; a comment
  always ends at the newline (since v254 a trailing backslash no longer continues it — older
  versions did; such lines are listed in ``facts.comment_continuations``).
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
  ``facts.ignored_assignments``. A later assignment of a name replaces an earlier one.
- systemd accepts an unterminated quote and takes the rest of the file as the value; mlnode
  refuses the file instead (:class:`~mlnode.errors.InputError`), because that is never meant.

The kubelet's side (how ``$VAR`` reaches its argv, pflag) is in
:mod:`mlnode.formats.kubelet_argv`; unit files are :mod:`mlnode.formats.systemd_unit`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mlnode.formats._env_lexer import DQ_ESCAPABLE, Assignment, Lines, Quote, lex_env
from mlnode.formats.base import DocumentKind, EnvAssignment, FlagOccurrence, ParsedDocument
from mlnode.formats.facts import IgnoredAssignment, OverriddenAssignment
from mlnode.formats.kubelet_argv import (
    BOOLEAN_KUBELET_FLAGS,
    field_override_flags,
    parse_flags,
    split_words,
)
from mlnode.formats.textcheck import check_nul
from mlnode.knowledge.model import Origin
from mlnode.knowledge.placement import Placement

__all__ = [
    "KUBELET_ARGS_VARIABLES",
    "is_kubelet_args_variable",
    "merge_env",
    "read_env",
    "render_env",
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

_WS = " \t\n\r"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_kubelet_args_variable(name: str) -> bool:
    """True for variables that feed the kubelet's command line (see KUBELET_ARGS_VARIABLES)."""
    return name in KUBELET_ARGS_VARIABLES or bool(_ARGS_NAME.match(name))


# --------------------------------------------------------------------------- read_env


def read_env(path: str, text: str) -> ParsedDocument:
    """Read an EnvironmentFile; flags come from the kubelet-args variables' effective values."""
    check_nul(path, text)
    assignments, facts = lex_env(path, text)
    lines = Lines(text)
    env: list[EnvAssignment] = []
    ignored: list[IgnoredAssignment] = []
    effective: dict[str, Assignment] = {}
    for a in assignments:
        if not _NAME_RE.match(a.name):
            ignored.append(IgnoredAssignment(a.name, a.value, a.line))
            continue
        env.append(EnvAssignment(a.name, a.value, Origin(path, a.line, a.name)))
        effective[a.name] = a
    flags: list[FlagOccurrence] = []
    positional: dict[str, tuple[str, ...]] = {}
    for name, a in effective.items():
        if not is_kubelet_args_variable(name):
            continue
        found, pos = _flags_of(path, a, lines)
        flags.extend(found)
        if pos:
            positional[name] = tuple(pos)
    facts = replace(
        facts,
        ignored_assignments=tuple(ignored),
        positional_args=positional,
        overridden=tuple(
            OverriddenAssignment(a.name, a.line)
            for a in assignments
            if _NAME_RE.match(a.name) and effective[a.name] is not a
        ),
    )
    return ParsedDocument(
        kind=DocumentKind.ENV_FILE, path=path, env=tuple(env), flags=tuple(flags), facts=facts
    )


def _flags_of(path: str, a: Assignment, lines: Lines) -> tuple[list[FlagOccurrence], list[str]]:
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


def _encode(s: str, ctx: Quote) -> str | None:
    """Encode value text for the file at a position quoted as ``ctx`` (None if impossible)."""
    if ctx is Quote.DOUBLE:
        return "".join("\\" + c if c in DQ_ESCAPABLE else c for c in s)
    if ctx is Quote.SINGLE:
        return None if "'" in s else s
    if "\n" in s or "\r" in s:
        return None
    return s.replace("\\", "\\\\")


def _format_assignment(name: str, value: str, style: Quote) -> str:
    if value == "":
        return f"{name}="
    if style is Quote.SINGLE and "'" not in value and "\n" not in value:
        return f"{name}='{value}'"
    plain_ok = (
        style is Quote.NONE
        and value[0] not in "'\"" + _WS
        and value[-1] not in _WS
        and not any(c in value for c in "\\\n\r")
    )
    if plain_ok:
        return f"{name}={value}"
    enc = _encode(value, Quote.DOUBLE)
    return f'{name}="{enc}"'


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
    return (
        "\n".join(head) + "\n" + _format_assignment(variable, " ".join(words), Quote.DOUBLE) + "\n"
    )


@dataclass
class _Tok:
    name: str
    value: str | None
    start: int  # index in the value
    end: int
    separate: bool  # "--name value" rather than "--name=value"


def _tokens(a: Assignment) -> list[_Tok]:
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


def _raw_ok(text: str, a: Assignment, raw_from: int, raw_to: int) -> bool:
    """True when text[raw_from:raw_to] holds no quote delimiters (only value chars/escapes)."""
    mapped = set(a.offsets)
    return all(i in mapped or text[i] in "\\\n\r" for i in range(raw_from, raw_to))


def _edit_assignment(
    text: str,
    a: Assignment,
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
    assignments, _ = lex_env(path, text)
    wanted = dict(placement.kubelet_flags)
    drop_everywhere = (frozenset(remove_flags) | field_override_flags(placement)) - set(wanted)
    effective: dict[str, Assignment] = {}
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
            variable, " ".join(_flag_text(n, v) for n, v in wanted.items()), Quote.DOUBLE
        )
        if out and not out.endswith("\n"):
            out += "\n"
        out += line + "\n"
    return out
