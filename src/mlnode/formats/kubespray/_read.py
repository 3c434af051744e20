"""Reading a group_vars file: its variables, and the fields, flags and runtime keys they
produce.
"""

from __future__ import annotations

from collections.abc import Mapping

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mlnode.errors import InputError
from mlnode.formats.base import (
    DocumentKind,
    FieldOccurrence,
    FlagOccurrence,
    ParsedDocument,
    RuntimeValueOccurrence,
    VarOccurrence,
)
from mlnode.formats.facts import KubesprayFacts
from mlnode.formats.kubelet_argv import parse_flags, split_words
from mlnode.formats.kubelet_config import (
    _compose_all,
    _construct,
    _effective,
    _is_null,
    _line,
    _pairs,
    _plain,
)
from mlnode.formats.kubespray._variables import (
    BY_NAME,
    DEDICATED,
    TEMPLATE_ALWAYS_WRITES,
    TEMPLATED,
    Target,
)
from mlnode.knowledge.model import Origin

__all__ = ["read_kubespray"]


def _flags_of_item(path: str, line: int, detail: str, text: str) -> list[FlagOccurrence]:
    flags, _ = parse_flags(split_words(text), source=text, path=path, line=line, detail=detail)
    return flags


def read_kubespray(path: str, text: str) -> ParsedDocument:
    """Variables of one group_vars file, plus the fields/flags/runtime keys they produce."""
    docs = [d for d in _compose_all(path, text) if d is not None]
    if not docs or _is_null(docs[0]):
        return ParsedDocument(DocumentKind.KUBESPRAY, path, facts=KubesprayFacts())
    root = docs[0]
    if not isinstance(root, MappingNode):
        raise InputError(
            "group_vars must be a YAML mapping of variables", path=path, line=_line(root)
        )
    last, dups = _effective(_pairs(path, root))
    variables: list[VarOccurrence] = []
    fields: list[FieldOccurrence] = []
    flags: list[FlagOccurrence] = []
    runtime: list[RuntimeValueOccurrence] = []
    templated: list[str] = []
    gates: dict[str, bool] = {}
    given_as_string: list[str] = []
    for name, (kn, vn) in last.items():
        value = _plain(_construct(path, vn))
        line = _line(kn)
        variables.append(VarOccurrence(name, value, Origin(path, line, name)))
        row = BY_NAME.get(name)
        if row is None:
            continue
        if isinstance(value, str) and TEMPLATED.search(value):
            templated.append(name)
            continue
        origin = Origin(path, line, name)
        if row.target is Target.FIELD:
            if value is None or (row.variable.startswith("eviction_hard") and value == {}):
                continue
            fields.append(FieldOccurrence(row.setting, value, origin))
        elif row.target is Target.FIELDS:
            if value is None:
                continue
            if not isinstance(vn, MappingNode):
                raise InputError(
                    f"{name} must be a mapping of KubeletConfiguration fields", path=path, line=line
                )
            for fld, fkn, fvn in _pairs(path, vn):
                fval = _plain(_construct(path, fvn))
                fields.append(FieldOccurrence(fld, fval, Origin(path, _line(fkn), name)))
        elif row.target is Target.FLAGS:
            flags.extend(_read_flag_list(path, name, vn, given_as_string))
        elif row.target is Target.FEATURE_GATES:
            gates_here = _read_gates(path, name, vn)
            if name == "kubelet_feature_gates" or "kubelet_feature_gates" not in last:
                gates.update(gates_here)
        elif row.target is Target.RUNTIME and value is not None:
            if not isinstance(value, str):
                raise InputError(
                    f'{name} must be a duration string such as "5m"', path=path, line=line
                )
            runtime.append(RuntimeValueOccurrence(row.table, row.setting, value, origin))
    facts = KubesprayFacts(
        duplicate_key_lines={k: tuple(lines) for k, lines in dups.items()},
        templated=tuple(templated),
        feature_gates=gates,
        flags_given_as_string=tuple(given_as_string),
        extra_args_duplicating_template=_duplicating_template(path, last, gates),
    )
    return ParsedDocument(
        DocumentKind.KUBESPRAY,
        path,
        flags=tuple(flags),
        fields=tuple(fields),
        runtime_values=tuple(runtime),
        variables=tuple(variables),
        facts=facts,
    )


def _duplicating_template(
    path: str, last: Mapping[str, tuple[Node, Node]], gates: Mapping[str, bool]
) -> tuple[str, ...]:
    """Keys of ``kubelet_config_extra_args`` that kubespray's template writes too, sorted."""
    extra = last.get("kubelet_config_extra_args")
    if extra is None or not isinstance(extra[1], MappingNode):
        return ()
    keys = {k for k, _, _ in _pairs(path, extra[1])}
    dup_template = set(keys & TEMPLATE_ALWAYS_WRITES)
    for fld, var in DEDICATED.items():
        if fld in keys and var in last:
            dup_template.add(fld)
    if "featureGates" in keys and gates:
        dup_template.add("featureGates")
    return tuple(sorted(dup_template))


def _read_flag_list(
    path: str, name: str, node: Node, given_as_string: list[str]
) -> list[FlagOccurrence]:
    """The flags of a flag-list variable; its name goes to ``given_as_string`` when the
    value is one string instead of a list."""
    if isinstance(node, ScalarNode):
        value = _construct(path, node)
        if value is None:
            return []
        given_as_string.append(name)
        return _flags_of_item(path, _line(node), name, str(value))
    if not isinstance(node, SequenceNode):
        raise InputError(f"{name} must be a list of flags", path=path, line=_line(node))
    out: list[FlagOccurrence] = []
    for item in node.value:
        value = _construct(path, item)
        if not isinstance(value, str):
            raise InputError(
                f'{name} entries must be strings such as "--flag=value"',
                path=path,
                line=_line(item),
            )
        out.extend(_flags_of_item(path, _line(item), name, value))
    return out


def _read_gates(path: str, name: str, node: Node) -> dict[str, bool]:
    value = _construct(path, node)
    if value is None:
        return {}
    if not isinstance(value, list):
        raise InputError(
            f'{name} must be a list of "Gate=true" strings', path=path, line=_line(node)
        )
    gates: dict[str, bool] = {}
    for item in value:
        gate, eq, val = str(item).partition("=")
        if not eq or val.strip().lower() not in ("true", "false"):
            raise InputError(
                f"{name}: {item!r} is not Gate=true|false", path=path, line=_line(node)
            )
        gates[gate.strip()] = val.strip().lower() == "true"
    return gates
