"""systemd unit files (``kubelet.service`` and its drop-ins): what feeds ExecStart=.

Only ``[Service]`` matters: ``EnvironmentFile=``, ``Environment=`` and ``ExecStart=`` (an empty
assignment resets each list, as systemd does). Values are split into words by unit-file rules
(:func:`mlnode.formats.kubelet_argv.split_words` with ``unit=True``); the flags written
literally in ExecStart= are parsed like the kubelet does (pflag).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from mlnode.errors import InputError
from mlnode.formats.base import DocumentKind, EnvAssignment, FlagOccurrence, ParsedDocument
from mlnode.formats.facts import SystemdUnitFacts
from mlnode.formats.kubelet_argv import INLINE_VAR_REF, Word, parse_flags, split_words
from mlnode.knowledge.model import Origin

__all__ = ["read_systemd_unit"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _unit_words(value: str) -> list[str]:
    """Split a unit-file value into words (quotes removed, C escapes resolved, ``%%`` → ``%``)."""
    return [w.text for w in split_words(value, unit=True)]


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each non-comment line, backslash continuations joined
    (a comment line inside a continuation is skipped, as systemd does)."""
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
        yield start_line, line.strip()


@dataclass
class _Service:
    """The ``[Service]`` settings read so far (later assignments win, empty ones reset)."""

    env_files: list[str] = field(default_factory=list)
    env_files_reset: bool = False
    environment: dict[str, str] = field(default_factory=dict)
    env_lines: dict[str, int] = field(default_factory=dict)
    exec_start: str | None = None
    exec_line: int | None = None
    exec_reset: bool = False

    def assign(self, key: str, value: str, line: int) -> None:
        if key == "EnvironmentFile":
            if not value:
                self.env_files = []
                self.env_files_reset = True
            else:
                self.env_files.append(value)
        elif key == "Environment":
            if not value:
                self.environment = {}
                self.env_lines = {}
                return
            for word in _unit_words(value):
                name, eq, val = word.partition("=")
                if eq and _NAME_RE.match(name):
                    self.environment[name] = val
                    self.env_lines[name] = line
        elif key == "ExecStart":
            if not value:
                self.exec_start = None
                self.exec_line = None
                self.exec_reset = True
            else:
                self.exec_start = value
                self.exec_line = line


def _read_service(path: str, text: str) -> _Service:
    section = ""
    service = _Service()
    for start_line, stripped in _logical_lines(text):
        if stripped.startswith("["):
            if not stripped.endswith("]"):
                raise InputError(f"invalid section header {stripped!r}", path=path, line=start_line)
            section = stripped[1:-1]
            continue
        key, eq, value = stripped.partition("=")
        if not eq:
            raise InputError(f"expected KEY=VALUE, got {stripped!r}", path=path, line=start_line)
        if section == "Service":
            service.assign(key.strip(), value.strip(), start_line)
    return service


def _exec_start_facts(
    path: str, exec_start: str, line: int | None, facts: SystemdUnitFacts
) -> tuple[list[FlagOccurrence], SystemdUnitFacts]:
    """ExecStart='s argv, its ``$VAR``/``${VAR}`` references and the flags written in it."""
    argv = _unit_words(exec_start)
    if argv:
        argv[0] = argv[0].lstrip("@-:+!")
    refs: list[str] = []
    inline: list[str] = []
    words: list[Word | None] = []
    src = ""
    for w in argv[1:]:
        if w.startswith("$") and not w.startswith(("${", "$$")):
            refs.append(w[1:])
            words.append(None)
            continue
        found = INLINE_VAR_REF.findall(w)
        if found:
            inline.extend(found)
            words.append(None)
            continue
        w = w.replace("$$", "$")
        if src:
            src += " "
        words.append(Word(w, len(src), len(src) + len(w)))
        src += w
    flags, positional = parse_flags(words, source=src, path=path, line=line, detail="ExecStart")
    return flags, replace(
        facts,
        exec_start_argv=tuple(argv),
        env_references=tuple(refs),
        env_references_inline=tuple(inline),
        positional_args=tuple(positional),
    )


def read_systemd_unit(path: str, text: str) -> ParsedDocument:
    """Read kubelet.service or a drop-in: which env files and variables feed ExecStart=.

    ``facts`` (:class:`~mlnode.formats.facts.SystemdUnitFacts`): the EnvironmentFile=,
    Environment= and ExecStart= settings after resets, ExecStart='s argv and the variables
    it references. ``flags`` are those written literally in ExecStart= (``--config=...``,
    ``--config-dir=...``).
    """
    if "\x00" in text:
        raise InputError("contains a NUL byte; not a text file", path=path)
    svc = _read_service(path, text)
    facts = SystemdUnitFacts(
        environment_files=tuple(svc.env_files),
        environment_files_reset=svc.env_files_reset,
        environment=svc.environment,
        exec_start=svc.exec_start,
        exec_start_line=svc.exec_line,
        exec_start_reset=svc.exec_reset,
    )
    flags: list[FlagOccurrence] = []
    if svc.exec_start is not None:
        flags, facts = _exec_start_facts(path, svc.exec_start, svc.exec_line, facts)
    env = tuple(
        EnvAssignment(k, v, Origin(path, svc.env_lines[k], "Environment"))
        for k, v in svc.environment.items()
    )
    return ParsedDocument(
        kind=DocumentKind.SYSTEMD_UNIT, path=path, flags=tuple(flags), env=env, facts=facts
    )
