"""KubeletConfiguration files: the ``--config`` file and ``--config-dir`` drop-ins.

**The --config file** is decoded strictly, and on failure leniently ("Using lenient decoding
as strict decoding failed"): unknown fields and duplicate keys do not stop the kubelet (with
duplicates the last one wins), a value of the wrong type does. Zero durations such as
``imageMinimumGCAge: 0s`` mean "default" (the v1beta1 defaulting replaces zero values).

**kubeadm's /var/lib/kubelet/config.yaml** carries no marker comment. It is Go-marshalled: keys
in alphabetical order (so ``kind`` sits between ``imageMinimumGCAge`` and ``logging``), plus
zero-valued durations kubeadm never set (``cpuManagerReconcilePeriod: 0s``,
``syncFrequency: 0s``, ...). ``facts.kubeadm_shape`` is True when both hold; the reliable
signal stays the path plus ``/var/lib/kubelet/kubeadm-flags.env`` next to it, and
``kubeadm upgrade`` rewrites the file from the ``kube-system/kubelet-config`` ConfigMap.

**Drop-ins** (``--config-dir``, see :data:`DROPIN_MERGE`): only ``*.conf`` files, walked with
Go's ``filepath.WalkDir`` (lexical order, subdirectories included), each must carry
``apiVersion`` and ``kind`` ("Object 'Kind' is missing"). Since 1.29 each file is applied to
the running config as an RFC 7386 JSON merge patch: maps such as ``evictionHard`` and
``featureGates`` merge key by key, lists replace, ``null`` deletes. Kubelet 1.28 merged with
``mergo.WithOverride`` on decoded, defaulted structs, which could reset fields the drop-in
did not mention to defaults (kubernetes#121193 review; backported by Bottlerocket as
kubernetes@ee5578be).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from mlnode.errors import InputError, UsageError
from mlnode.formats._yamlsplice import splice_top_level
from mlnode.formats.base import DocumentKind, FieldOccurrence, ParsedDocument
from mlnode.formats.facts import KubeletConfigFacts
from mlnode.formats.textcheck import check_text, check_yaml_expansion, nesting_error
from mlnode.knowledge.model import Origin
from mlnode.knowledge.placement import Placement
from mlnode.knowledge.spans import Span, v
from mlnode.knowledge.table import CONFIG_DIR_SUPPORT

__all__ = [
    "DEFAULT_DROPIN_PATH",
    "DROPIN_MERGE",
    "KUBELET_API_VERSION",
    "KUBELET_KIND",
    "DropinMerge",
    "merge_into_document",
    "merge_kubelet_config",
    "read_dropin_dir",
    "read_kubelet_config",
    "render_kubelet_config",
    "render_kubelet_dropin",
]

KUBELET_API_VERSION = "kubelet.config.k8s.io/v1beta1"
KUBELET_KIND = "KubeletConfiguration"
DEFAULT_DROPIN_PATH = "/etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf"


@dataclass(frozen=True)
class DropinMerge:
    span: Span
    strategy: str
    source: str


DROPIN_MERGE: tuple[DropinMerge, ...] = (
    DropinMerge(
        Span(since=v("1.28"), until=v("1.29")),
        "mergo.WithOverride on decoded structs: zero values (false, 0, 0s) in a drop-in do not"
        " override, and fields a drop-in omits may be reset to defaults",
        "kubelet-facts.md [1.28] mergeKubeletConfigurations; kubernetes#121193 review thread;"
        " bottlerocket-core-kit#613 (backport of kubernetes@ee5578be)",
    ),
    DropinMerge(
        Span(since=v("1.29")),
        "RFC 7386 JSON merge patch per file: maps merge key-wise, lists replace, null deletes",
        "cmd/kubelet/app/server.go mergeKubeletConfigurations (jsonpatch.MergePatch);"
        " versioned serialisation and apiVersion check from 1.32 (kubernetes#127421)",
    ),
)

# Durations kubeadm's marshalled config.yaml carries as 0s (never set by kubeadm).
_KUBEADM_ZERO_MARKERS = ("cpuManagerReconcilePeriod", "syncFrequency", "volumeStatsAggPeriod")


# --------------------------------------------------------------------------- YAML helpers
# Shared with kubeadm.py and kubespray.py.


def _safe_yaml() -> YAML:
    y = YAML(typ="safe", pure=True)
    y.allow_duplicate_keys = True
    return y


_KEY_BLOCK = re.compile(r"^( *)[^\s#-][^:#]*:\s*(#.*)?$")


def _guess_indent(text: str) -> tuple[int, int]:
    """(mapping indent, dash offset) as the file writes them; (2, 0) when it does not show."""
    mapping, offset = 0, -1
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        m = _KEY_BLOCK.match(line)
        if not m:
            continue
        nxt = next((x for x in lines[i + 1 :] if x.strip() and not x.lstrip().startswith("#")), "")
        inner = len(nxt) - len(nxt.lstrip(" "))
        depth = inner - len(m.group(1))
        if depth < 0:
            continue
        if nxt.lstrip().startswith("- "):
            if offset < 0:
                offset = depth
        elif depth > 0 and not mapping:
            mapping = depth
        if mapping and offset >= 0:
            break
    return mapping or 2, max(offset, 0)


def _rt_yaml(text: str) -> YAML:
    """A round-trip YAML that writes with the indentation ``text`` uses."""
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    mapping, offset = _guess_indent(text)
    y.indent(mapping=mapping, sequence=mapping + offset if offset else mapping, offset=offset)
    if text.lstrip().startswith("---"):
        y.explicit_start = True
    return y


def _put(m: CommentedMap, key: str, value: Any) -> None:
    """Set ``key``; a new key goes last but takes over the old last key's trailing blank lines."""
    if key in m or not m:
        m[key] = value
        return
    last = list(m.keys())[-1]
    tok = m.ca.items.pop(last, None)
    m[key] = value
    if tok is not None:
        m.ca.items[key] = tok


def _delete(m: CommentedMap, key: str) -> None:
    """Delete ``key``; if it was last, its trailing blank lines move to the new last key."""
    keys = list(m.keys())
    tok = m.ca.items.get(key) if keys and keys[-1] == key else None
    del m[key]
    if tok is not None and len(keys) > 1 and keys[-2] not in m.ca.items:
        m.ca.items[keys[-2]] = [None, None, tok[2], None]


def _yaml_error(path: str, e: Exception) -> InputError:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return InputError(f"not valid YAML: {problem}", path=path, line=line)


def _compose_all(path: str, text: str) -> list[Node | None]:
    """The node tree of every YAML document (keeps duplicate keys and positions).

    NUL bytes and nesting deeper than any config are refused first, with the line."""
    check_text(path, text)
    try:
        roots: list[Node | None] = list(_safe_yaml().compose_all(text))
        check_yaml_expansion(path, roots)
        return roots
    except YAMLError as e:
        raise _yaml_error(path, e) from e
    except RecursionError:
        raise nesting_error(path, text) from None
    except (ValueError, TypeError) as e:
        raise InputError(f"not valid YAML: {e}", path=path) from e


def _construct(path: str, node: Node) -> Any:
    try:
        return _safe_yaml().constructor.construct_object(node, deep=True)
    except YAMLError as e:
        raise _yaml_error(path, e) from e
    except (ValueError, TypeError, RecursionError) as e:
        raise InputError(f"unusable YAML value: {e}", path=path, line=_line(node)) from e


def _is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and str(node.tag).endswith(":null"))


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _pairs(path: str, node: MappingNode) -> list[tuple[str, Node, Node]]:
    """(key, key node, value node) of a mapping, in order; non-string keys are refused."""
    out: list[tuple[str, Node, Node]] = []
    for k, val in node.value:
        if not isinstance(k, ScalarNode):
            raise InputError("a mapping key must be a plain string", path=path, line=_line(k))
        out.append((str(k.value), k, val))
    return out


def _effective(
    pairs: list[tuple[str, Node, Node]],
) -> tuple[dict[str, tuple[Node, Node]], dict[str, list[int]]]:
    """Last value per key (the kubelet's lenient decoding) and the lines of duplicated keys."""
    last: dict[str, tuple[Node, Node]] = {}
    lines: dict[str, list[int]] = {}
    for key, kn, vn in pairs:
        last[key] = (kn, vn)
        lines.setdefault(key, []).append(_line(kn))
    return last, {k: ls for k, ls in lines.items() if len(ls) > 1}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(x) for k, x in value.items()}
    if isinstance(value, list):
        return [_plain(x) for x in value]
    return value


# --------------------------------------------------------------------------- reading


def _read_mapping_doc(
    path: str,
    node: Node | None,
    *,
    kind: DocumentKind,
    detail: str,
    require_type_meta: bool,
) -> ParsedDocument:
    if node is None or _is_null(node):
        raise InputError(
            "empty document: a KubeletConfiguration needs apiVersion and kind", path=path, line=1
        )
    if not isinstance(node, MappingNode):
        raise InputError(
            "expected a YAML mapping (KubeletConfiguration)", path=path, line=_line(node)
        )
    last, dups = _effective(_pairs(path, node))
    for meta in ("apiVersion", "kind"):
        if meta not in last and require_type_meta:
            raise InputError(
                f"{meta} is missing; the kubelet refuses a config without apiVersion "
                f"{KUBELET_API_VERSION} and kind {KUBELET_KIND} (\"Object 'Kind' is missing\")",
                path=path,
                line=_line(node),
            )
    api = _construct(path, last["apiVersion"][1]) if "apiVersion" in last else None
    knd = _construct(path, last["kind"][1]) if "kind" in last else None
    if api is not None and api != KUBELET_API_VERSION:
        raise InputError(
            f"apiVersion {api!r} is not {KUBELET_API_VERSION}",
            path=path,
            line=_line(last["apiVersion"][0]),
        )
    if knd is not None and knd != KUBELET_KIND:
        raise InputError(
            f"kind {knd!r} is not {KUBELET_KIND}", path=path, line=_line(last["kind"][0])
        )
    fields: list[FieldOccurrence] = []
    zero: list[str] = []
    for key, (kn, vn) in last.items():
        if key in ("apiVersion", "kind"):
            continue
        value = _plain(_construct(path, vn))
        # A value of the wrong type is not an unusable file: lint reports it (E103).
        fields.append(FieldOccurrence(key, value, Origin(path, _line(kn), detail)))
        if value == "0s":
            zero.append(key)
    fields.sort(key=lambda f: f.origin.line or 0)
    gates: Any = next((f.value for f in fields if f.field == "featureGates"), {})
    keys = [k for k, _, _ in _pairs(path, node)]
    facts = KubeletConfigFacts(
        api_version=api,
        kind=knd,
        duplicate_key_lines={k: tuple(lines) for k, lines in dups.items()},
        feature_gates=dict(gates) if isinstance(gates, dict) else {},
        zero_durations=tuple(zero),
        kubeadm_shape=(
            keys == sorted(keys)
            and bool(keys)
            and keys[0] == "apiVersion"
            and all(m in zero for m in _KUBEADM_ZERO_MARKERS)
        ),
    )
    return ParsedDocument(kind=kind, path=path, fields=tuple(fields), facts=facts)


def read_kubelet_config(
    path: str, text: str, *, kind: DocumentKind = DocumentKind.KUBELET_CONFIG
) -> ParsedDocument:
    """Read a ``--config`` file or (``kind=KUBELET_DROPIN``) one ``--config-dir`` drop-in."""
    docs = [d for d in _compose_all(path, text) if d is not None]
    if len(docs) > 1:
        raise InputError(
            "holds more than one YAML document; the kubelet reads one",
            path=path,
            line=_line(docs[1]),
        )
    detail = "KubeletConfiguration" if kind is DocumentKind.KUBELET_CONFIG else "drop-in"
    return _read_mapping_doc(
        path, docs[0] if docs else None, kind=kind, detail=detail, require_type_meta=True
    )


def read_dropin_dir(directory: str | os.PathLike[str]) -> list[ParsedDocument]:
    """Every ``*.conf`` drop-in under ``directory`` in the kubelet's merge order."""
    root = Path(directory)
    if not root.is_dir():
        raise InputError("not a directory", path=str(root))
    found: list[tuple[tuple[str, ...], Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            if name.endswith(".conf"):
                p = Path(dirpath) / name
                found.append((p.relative_to(root).parts, p))
    out: list[ParsedDocument] = []
    for _, p in sorted(found):
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read: {e}", path=str(p)) from e
        out.append(read_kubelet_config(str(p), text, kind=DocumentKind.KUBELET_DROPIN))
    return out


# --------------------------------------------------------------------------- rendering


def _document(placement: Placement) -> CommentedMap:
    doc = CommentedMap()
    doc["apiVersion"] = KUBELET_API_VERSION
    doc["kind"] = KUBELET_KIND
    for fld, value in placement.kubelet_fields.items():
        doc[fld] = _to_yaml(value)
    if placement.feature_gates:
        doc["featureGates"] = CommentedMap(placement.feature_gates)
    return doc


def _to_yaml(value: Any) -> Any:
    if isinstance(value, Mapping):
        return CommentedMap((str(k), _to_yaml(x)) for k, x in value.items())
    return value


def _dump(y: YAML, data: Any) -> str:
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def render_kubelet_config(placement: Placement) -> str:
    """A minimal KubeletConfiguration holding the placed fields and feature gates."""
    head = (
        f"# Written by mlnode for kubelet {placement.kubernetes_version}: image settings.\n"
        "# Fields not listed keep the kubelet's defaults. Pass with --config=<this file>.\n"
    )
    return head + _dump(_rt_yaml(""), _document(placement))


def _dropin_support(placement: Placement) -> str:
    k8s = placement.kubernetes_version
    for row in CONFIG_DIR_SUPPORT:
        if row.span.contains(k8s):
            if not row.supported:
                raise UsageError(
                    f"kubelet {k8s} has no --config-dir (drop-ins arrived in 1.28); "
                    "write the settings into the --config file instead"
                )
            if row.env_required:
                return (
                    f"# kubelet {k8s} reads drop-ins only with {row.env_required} set in its "
                    "environment (any value).\n"
                )
            return ""
    return ""


def render_kubelet_dropin(placement: Placement, *, path: str = DEFAULT_DROPIN_PATH) -> str:
    """A ``--config-dir`` drop-in with apiVersion/kind and the placed fields."""
    note = _dropin_support(placement)
    k8s = placement.kubernetes_version
    merge = next((m for m in DROPIN_MERGE if m.span.contains(k8s)), None)
    head = (
        "# Written by mlnode: kubelet image settings as a --config-dir drop-in.\n"
        f"# Install as {path}.\n"
        "# The kubelet reads the *.conf files of its --config-dir in file-name order; later\n"
        "# files win, and flags on the command line still win over every file.\n"
        + note
        + (f"# Merge in kubelet {k8s}: {merge.strategy}.\n" if merge else "")
    )
    return head + _dump(_rt_yaml(""), _document(placement))


# --------------------------------------------------------------------------- merging


def _set_mapping(target: CommentedMap, wanted: Mapping[str, Any], *, replace: bool) -> bool:
    """Make ``target`` hold ``wanted`` (and nothing else when ``replace``); True if changed."""
    changed = False
    for k, val in wanted.items():
        if k in target and _plain(target[k]) == _plain(val):
            continue
        _put(target, k, _to_yaml(val))
        changed = True
    if replace:
        for k in [k for k in target if k not in wanted]:
            _delete(target, k)
            changed = True
    return changed


def merge_into_document(doc: CommentedMap, placement: Placement) -> bool:
    """Apply the placement to a KubeletConfiguration mapping in place; True if it changed.

    Scalars are replaced; ``evictionHard`` is made exactly the placed map (in the file it is
    the value as written; the placement's map is complete); ``featureGates`` merge key-wise.
    """
    changed = False
    keys = [str(k) for k in doc]
    alphabetical = len(keys) > 2 and keys == sorted(keys)  # kubeadm's Go-marshalled file

    def put(key: str, value: Any) -> None:
        if key in doc or not alphabetical:
            _put(doc, key, value)
            return
        pos = sum(1 for k in doc if str(k) < key)
        doc.insert(pos, key, value)

    for fld, value in placement.kubelet_fields.items():
        current = doc.get(fld)
        if isinstance(value, Mapping) and isinstance(current, CommentedMap):
            changed |= _set_mapping(current, value, replace=True)
        elif fld not in doc or _plain(current) != _plain(value):
            put(fld, _to_yaml(value))
            changed = True
    if placement.feature_gates:
        gates = doc.get("featureGates")
        if isinstance(gates, CommentedMap):
            changed |= _set_mapping(gates, placement.feature_gates, replace=False)
        else:
            put("featureGates", CommentedMap(placement.feature_gates))
            changed = True
    return changed


def merge_kubelet_config(text: str, path: str, placement: Placement) -> str:
    """Set the placement's fields in a KubeletConfiguration (or drop-in), keeping the rest.

    Comments, key order and unrelated fields are kept: top-level scalar changes are made in
    the text itself (:func:`~mlnode.formats._yamlsplice.splice_top_level`), anything else
    through a ruamel round trip; text is returned unchanged when nothing needs to change.
    An empty file becomes a minimal document.
    """
    if not text.strip():
        return render_kubelet_config(placement)
    read_kubelet_config(path, text)  # validates apiVersion/kind/types with line numbers
    y = _rt_yaml(text)
    try:
        doc = y.load(text)
    except YAMLError as e:  # duplicate keys: the round trip refuses what the kubelet tolerates
        raise _yaml_error(path, e) from e
    if not isinstance(doc, CommentedMap):
        raise InputError("expected a YAML mapping (KubeletConfiguration)", path=path, line=1)
    before = _plain(doc)
    if not merge_into_document(doc, placement):
        return text
    spliced = splice_top_level(text, before, doc, y)  # every other byte kept, when it can
    return spliced if spliced is not None else _dump(y, doc)
