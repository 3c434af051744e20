"""The kubelet's command line: how systemd's ``$VAR`` becomes arguments, and pflag parsing.

**How the value reaches the kubelet** (``replace_env_argv`` in ``env-util.c``): in ``ExecStart=``
a word that is exactly ``$VAR`` becomes the value split at whitespace, with quotes removed
(``EXTRACT_UNQUOTE|EXTRACT_RELAX``), i.e. zero or more arguments; ``${VAR}`` is replaced
in place and always yields one argument. The kubelet then parses the arguments with pflag:
``--name=value``, ``--name value`` (non-boolean flags take the next argument), bare boolean
flags, ``-v=2``/``-v 2``/``-v2``; ``_`` in names is normalised to ``-`` (``WordSepNormalizeFunc``).
Any leftover positional argument makes the kubelet exit ("unknown command").

:func:`last_flag` is the one answer to "which ``--config`` does this kubelet use".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlnode.errors import UsageError
from mlnode.formats.base import FlagOccurrence
from mlnode.knowledge.flag_removal import shadowing_flags
from mlnode.knowledge.model import ImageSettings, Origin
from mlnode.knowledge.placement import Placement
from mlnode.knowledge.table import KUBELET_SETTINGS, ValueKind, kubelet_setting_by_flag
from mlnode.knowledge.values import parse_flag_value

__all__ = [
    "BOOLEAN_KUBELET_FLAGS",
    "INLINE_VAR_REF",
    "Word",
    "expand_exec_start",
    "field_override_flags",
    "last_flag",
    "parse_flags",
    "parse_kubelet_args",
    "split_words",
]

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
# ``${VAR}`` inside an ExecStart= word: replaced in place, always one argument.
INLINE_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Word:
    """One argument after systemd's ``$VAR`` split; ``start``/``end`` index the value."""

    text: str
    start: int
    end: int


def split_words(value: str, *, unit: bool = False) -> list[Word]:
    """Split a variable's value the way ``$VAR`` in ExecStart= does (unquote, relaxed);
    ``unit``: the way a unit file's value is split (C escapes, ``%%``)."""
    return _split(value, unit=unit)


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

    def takes_next(name: str, j: int) -> tuple[str | None, Word, int]:
        """pflag's "--name value": the next word is the value unless it looks like a flag
        (for flags known to take a value, even then); returns value, last word, index."""
        nxt = words[j + 1] if j + 1 < len(words) else None
        if nxt is not None and (name in _VALUE_FLAGS or not nxt.text.startswith("-")):
            return nxt.text, nxt, j + 1
        current = words[j]
        assert current is not None
        return None, current, j

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
                value, end_word, i = takes_next(name, i)
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
                value, end_word, i = takes_next(name, i)
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


def field_override_flags(placement: Placement) -> frozenset[str]:
    """Flags that would override a field the placement sets (flags beat the config file):
    the SHADOWS_CONFIG part of :mod:`mlnode.knowledge.flag_removal`, the mergers' own."""
    return shadowing_flags(placement)


def expand_exec_start(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The kubelet's argv once systemd substituted ``env`` into ExecStart= words."""
    out: list[str] = []
    for w in argv:
        if w.startswith("$") and not w.startswith(("${", "$$")):
            value = env.get(w[1:])
            if value is not None:
                out.extend(x.text for x in split_words(value))
            continue
        w = INLINE_VAR_REF.sub(lambda m: env.get(m.group(1), ""), w)
        out.append(w.replace("$$", "$"))
    return out


def last_flag(argv: Sequence[str], name: str) -> str | None:
    """The value of ``--name`` on a kubelet command line (without argv[0]) as pflag
    parses it: names normalised (``_`` → ``-``), the last occurrence wins."""
    words: list[Word | None] = []
    pos = 0
    for a in argv:
        words.append(Word(a, pos, pos + len(a)))
        pos += len(a) + 1
    flags, _ = parse_flags(words, source=" ".join(argv), path="", detail="")
    value = None
    for f in flags:
        if f.name == name:
            value = f.value
    return value


def parse_kubelet_args(
    line: str, *, option: str = "--from-kubelet-args"
) -> tuple[ImageSettings, tuple[str, ...]]:
    """Read the image settings out of a kubelet flag line, split and parsed as the kubelet
    gets it from ``$KUBELET_EXTRA_ARGS`` (the env-file reader's own flag parser)."""
    quote = _open_quote(line)
    if quote is not None:
        raise UsageError(f"unbalanced {quote} quote: the line ends inside it", option=option)
    flags, positional = parse_flags(split_words(line), source=line, path=option, line=1)
    if positional:
        raise UsageError(
            f"{positional[0]!r} is not a flag (the kubelet exits on it)", option=option
        )
    values: dict[str, Any] = {}
    ignored: list[str] = []
    for flag in flags:
        row = kubelet_setting_by_flag(flag.name)
        if row is None:
            ignored.append(flag.text)
            continue
        try:
            parsed = parse_flag_value(row, flag.value)
        except ValueError as e:
            raise UsageError(str(e), option=option) from None
        if row.key in values and values[row.key] != parsed:
            raise UsageError(f"--{flag.name} is given twice with different values", option=option)
        values[row.key] = parsed
    return ImageSettings(**values), tuple(ignored)


def _open_quote(line: str) -> str | None:
    """The quote left open at the end of ``line`` (systemd would close it silently, which
    hides a pasting mistake), with the backslash and quote rules of :func:`split_words`."""
    quote: str | None = None
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if quote is not None:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        i += 1
    return quote
