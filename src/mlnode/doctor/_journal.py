"""The node's journal: kubelet, containerd and CRI-O lines about pulls, GC and startup.

:data:`JOURNAL_COMMAND` is what the node doctor runs; :func:`parse_journal` reads its
output or a saved file in either of two forms, line by line (a line that is neither is
skipped, never an error):

* ``journalctl -o json``: one JSON object a line; ``MESSAGE`` (a string, or an array of
  byte values when the text is not UTF-8), ``_SYSTEMD_UNIT`` (else ``SYSLOG_IDENTIFIER``),
  ``__REALTIME_TIMESTAMP`` (microseconds since the epoch, as a string);
* ``journalctl -o short-iso``: ``2026-11-30T10:00:00+0000 host kubelet[123]: MESSAGE``
  (newer systemd writes the offset as ``+00:00``); ``-- No entries --`` and similar
  lines are skipped.

Inside a message, :func:`klog_fields` reads the kubelet's klog header and structured
pairs (``E1130 10:00:00.000000 123 run.go:74] "command failed" err="..."``) and
:func:`logfmt_fields` containerd's logfmt (``time="..." level=error msg="..."``).

Findings (:func:`journal_findings`), one per kind and subject with counts:

=====  ==============================================================================
D307   kubelet: ``failed to parse kubelet flag: unknown flag: --X`` (the kubelet exits)
D308   containerd: ``cancel pulling image IMG because of no progress in 5m0s``; CRI-O:
       ``Timed out on waiting up to 10s for image pull progress updates``
D309   kubelet: ``Image garbage collection failed once`` / ``... multiple times in a row``
D205   any unit: ``no space left on device``
=====  ==============================================================================

Pure: no I/O (the caller runs the command or reads the file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mlnode.doctor._events import gc_numbers, parse_kube_time
from mlnode.doctor._model import Finding
from mlnode.doctor._pull_texts import effective_deadline, fix_text, go_duration
from mlnode.errors import InvalidValue
from mlnode.knowledge.table import removed_flag
from mlnode.units import format_bytes, parse_go_duration
from mlnode.versions import RuntimeSpec, Version

__all__ = [
    "JOURNAL_COMMAND",
    "JournalEntry",
    "journal_findings",
    "klog_fields",
    "logfmt_fields",
    "parse_journal",
]

JOURNAL_COMMAND: tuple[str, ...] = (
    "journalctl",
    "--unit=kubelet.service",
    "--unit=containerd.service",
    "--unit=crio.service",
    "--since=-6h",
    "--output=json",
    "--no-pager",
)


@dataclass(frozen=True)
class JournalEntry:
    timestamp: datetime | None  # UTC
    unit: str  # "kubelet", "containerd", "crio" (the unit without .service)
    message: str


_SHORT_ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\s+"
    r"(\S+)\s+([^\s\[:]+)(?:\[\d+\])?:\s?(.*)$"
)


def _unit_name(text: str) -> str:
    return text.removesuffix(".service")


def _json_entry(line: str) -> JournalEntry | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, Mapping):
        return None
    message = obj.get("MESSAGE")
    if isinstance(message, list) and all(isinstance(b, int) and 0 <= b < 256 for b in message):
        message = bytes(message).decode("utf-8", "replace")
    if not isinstance(message, str):
        return None
    unit = obj.get("_SYSTEMD_UNIT") or obj.get("SYSLOG_IDENTIFIER") or obj.get("_COMM") or ""
    stamp: datetime | None = None
    micros = obj.get("__REALTIME_TIMESTAMP")
    if isinstance(micros, str) and micros.isdigit():
        try:
            stamp = datetime.fromtimestamp(int(micros) / 1e6, tz=UTC)
        except (OverflowError, OSError, ValueError):
            stamp = None
    return JournalEntry(stamp, _unit_name(str(unit)), message)


def parse_journal(text: str) -> list[JournalEntry]:
    """Every line of ``journalctl -o json`` or ``-o short-iso`` output that is an entry."""
    out: list[JournalEntry] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("-- "):
            continue
        if line.startswith("{"):
            entry = _json_entry(line)
            if entry is not None:
                out.append(entry)
            continue
        m = _SHORT_ISO.match(line)
        if m:
            stamp = parse_kube_time(m.group(1).replace(",", "."))
            out.append(JournalEntry(stamp, _unit_name(m.group(3)), m.group(4)))
    return out


# klog: Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg
_KLOG = re.compile(r"^([IWEF])(\d{4}) (\d{2}:\d{2}:\d{2}\.\d+)\s+(\d+) ([^\s:\]]+):(\d+)\] (.*)$")
_PAIR = re.compile(r'([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value[1:-1]
        return decoded if isinstance(decoded, str) else value[1:-1]
    return value


def klog_fields(message: str) -> tuple[str, str, dict[str, str]] | None:
    """(severity letter, msg, key=value pairs) of a klog line; None when it is not one.
    Unstructured klog lines give their text as msg and no pairs."""
    m = _KLOG.match(message)
    if m is None:
        return None
    body = m.group(7)
    if body.startswith('"'):
        end = re.match(r'"(?:[^"\\]|\\.)*"', body)
        if end:
            rest = body[end.end() :]
            pairs = {k: _unquote(v) for k, v in _PAIR.findall(rest)}
            return m.group(1), _unquote(end.group(0)), pairs
    return m.group(1), body, {}


def logfmt_fields(message: str) -> dict[str, str]:
    """``time="..." level=info msg="..." error="..."`` as a dict (empty when not logfmt)."""
    pairs = {k: _unquote(v) for k, v in _PAIR.findall(message)}
    return pairs if "msg" in pairs or "level" in pairs else {}


def _text(entry: JournalEntry) -> str:
    """The message with klog's header or logfmt's fields flattened to one text."""
    klog = klog_fields(entry.message)
    if klog is not None:
        return " ".join([klog[1], *klog[2].values()])
    fields = logfmt_fields(entry.message)
    if fields:
        return " ".join(v for k, v in fields.items() if k not in ("time", "level"))
    return entry.message


_UNKNOWN_FLAG = re.compile(r"failed to parse kubelet flag: unknown flag: (--?[\w.-]+)")
_CONTAINERD_CANCEL = re.compile(
    r"cancel pulling image (\S+) because of no progress in (\S+)", re.IGNORECASE
)
_CRIO_CANCEL = re.compile(r"Timed out on waiting up to (\S+?) for image pull progress updates")
_CRIO_PULLING = re.compile(r"Pulling image: (\S+)")
_GC_FAILED = re.compile(r"Image garbage collection failed (once|multiple times in a row)")


def _stamp(t: datetime | None) -> str:
    return "unknown" if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _line(entry: JournalEntry) -> str:
    return f"{_stamp(entry.timestamp)} {entry.unit}: {entry.message}"


def _seconds(text: str) -> float | None:
    try:
        return parse_go_duration(text)
    except InvalidValue:
        return None


def _flag_findings(
    node: str,
    entries: Sequence[JournalEntry],
    kubelet_version: Version | None,
    fix_command: str | None,
) -> list[Finding]:
    by_flag: dict[str, list[JournalEntry]] = {}
    for e in entries:
        m = _UNKNOWN_FLAG.search(_text(e))
        if m:
            by_flag.setdefault(m.group(1).lstrip("-"), []).append(e)
    out = []
    for flag, items in sorted(by_flag.items()):
        removed = removed_flag(flag, kubelet_version) if kubelet_version else None
        why = (
            f"--{flag} was removed in Kubernetes {removed.removed_in} ({removed.why})"
            if removed
            else f"--{flag} is not a flag of this kubelet"
            + (f" ({kubelet_version})" if kubelet_version else "")
        )
        then = removed.fix if removed else f"remove --{flag} from that file"
        out.append(
            Finding(
                code="D307",
                title=f"the kubelet on {node} does not start: unknown flag --{flag}"
                f" (x{len(items)})",
                cause=f"{why}; the kubelet exits at once and systemd restarts it in a loop,"
                " so the node goes NotReady",
                fix=(
                    f"{fix_command}  (the file and line: the E101/E102/E112 finding)"
                    if fix_command
                    else f"mlnode doctor on the node names the file and line passing --{flag}"
                    " and, where the flag's setting has a home, the exact `mlnode apply"
                    f" --from-kubelet-args` line that moves it there; else {then}"
                ),
                evidence=tuple(_line(e) for e in items[-3:]),
                node=node,
                subject=f"--{flag}",
            )
        )
    return out


def _cancel_findings(
    node: str,
    entries: Sequence[JournalEntry],
    runtime: RuntimeSpec | None,
    deadline_seconds: float | None,
) -> list[Finding]:
    by_image: dict[str, list[tuple[JournalEntry, float | None]]] = {}
    crio_ids: dict[str, str] = {}  # CRI-O's request id → the image its PullImage pulls
    for e in entries:
        text = _text(e)
        m = _CONTAINERD_CANCEL.search(text)
        if m:
            by_image.setdefault(m.group(1).strip('"'), []).append((e, _seconds(m.group(2))))
            continue
        fields = logfmt_fields(e.message)
        pulling = _CRIO_PULLING.match(fields.get("msg", ""))
        if pulling and "id" in fields:
            crio_ids[fields["id"]] = pulling.group(1)
        c = _CRIO_CANCEL.search(text)
        if c:
            name = crio_ids.get(fields.get("id", ""), "(image not named)")
            by_image.setdefault(name, []).append((e, _seconds(c.group(1))))
    out = []
    for image, items in sorted(by_image.items()):
        said = items[-1][1]
        deadline = effective_deadline(
            runtime, said if said is not None else deadline_seconds, "the runtime's own log line"
        )
        shown = go_duration(said) if said is not None else "its deadline"
        recommended = max(900.0, 2 * (said or 0.0))
        fix = fix_text(
            "progress-timeout", _Failure(image), deadline, runtime, recommended_seconds=recommended
        )
        out.append(
            Finding(
                code="D308",
                title=f"the runtime on {node} cancelled the pull of {image}: no progress in"
                f" {shown} (x{len(items)})",
                cause=f"no byte (containerd) or progress event (CRI-O) arrived for {shown}, the"
                " runtime's pull progress deadline, so it cancelled the pull; the kubelet"
                " reports it as 'context canceled' and the retry starts again at byte 0",
                fix=fix,
                evidence=tuple(_line(e) for e, _ in items[-3:]),
                node=node,
                subject=image,
            )
        )
    return out


@dataclass(frozen=True)
class _Failure:
    """The parts of a pull failure the fix texts read."""

    image: str
    namespace: str | None = None
    pod: str | None = None
    started_at: datetime | None = None
    failed_at: datetime | None = None


def _gc_findings(node: str, entries: Sequence[JournalEntry]) -> list[Finding]:
    items = [e for e in entries if _GC_FAILED.search(_text(e))]
    if not items:
        return []
    numbers = next((gc_numbers(_text(e)) for e in reversed(items) if gc_numbers(_text(e))), None)
    detail = (
        f": wanted to free {format_bytes(numbers[0])}, only {format_bytes(numbers[1])} eligible"
        if numbers
        else ""
    )
    return [
        Finding(
            code="D309",
            title=f"image GC failed on {node}{detail} (x{len(items)})",
            cause="the kubelet's image GC could not bring the image filesystem under its low"
            " threshold: images used by any container (running or exited), pinned or younger"
            " than imageMinimumGCAge are not removed ('failed once' right after start is the"
            " stats not being ready yet)",
            fix="crictl ps -a (exited containers hold their images: crictl rm them), then crictl"
            " rmi --prune; journalctl -u kubelet for the full error",
            evidence=tuple(_line(e) for e in items[-3:]),
            node=node,
        )
    ]


DISK_FULL_FIX = (
    "mlnode gc (removes unused images, least recently used first; never one in use, pinned"
    " or being pulled), then keep headroom ahead of the next pull: mlnode agent"
    " (docs/agent.md)"
)


def _disk_findings(node: str, entries: Sequence[JournalEntry]) -> list[Finding]:
    items = [e for e in entries if "no space left on device" in e.message.lower()]
    if not items:
        return []
    units = sorted({e.unit for e in items})
    return [
        Finding(
            code="D205",
            title=f"no space left on device on {node} ({', '.join(units)}, x{len(items)})",
            cause="a write failed because the filesystem was full; a pull writes its compressed"
            " layers into the content store and unpacks them into snapshots, both on the image"
            " filesystem",
            fix=DISK_FULL_FIX,
            evidence=tuple(_line(e) for e in items[-3:]),
            node=node,
        )
    ]


def journal_findings(
    node: str,
    entries: Sequence[JournalEntry],
    *,
    runtime: RuntimeSpec | None,
    deadline_seconds: float | None,
    kubelet_version: Version | None = None,
    flag_fix_command: str | None = None,
) -> list[Finding]:
    """D307, D308, D309 and D205 from a node's journal entries (see the module table).
    ``flag_fix_command``: the exact ``mlnode apply`` line for the flags the node's files
    pass (the node doctor's lint found them), D307's fix when given."""
    return (
        _flag_findings(node, entries, kubelet_version, flag_fix_command)
        + _cancel_findings(node, entries, runtime, deadline_seconds)
        + _gc_findings(node, entries)
        + _disk_findings(node, entries)
    )
