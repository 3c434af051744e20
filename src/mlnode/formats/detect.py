"""Tell what kind of file a text is, from its content, and read it with the right reader.

The rules, tried in this order (the first that matches wins):

1. **systemd unit** — a ``[Unit]``, ``[Service]`` or ``[Install]`` section header line.
   (Checked before TOML because ``[Service]`` + ``Environment="..."`` also parses as TOML.)
2. **TOML** that parses:
   - a ``crio`` table (``[crio]``, ``[crio.image]``, ...) → CRI-O;
   - a ``plugins`` table or an integer ``version`` → containerd;
   - a ``host`` table or a ``server`` string → a containerd registry hosts.toml (a file
     named ``hosts.toml`` is read as one by :func:`read_any` even when it does not parse);
   - one of containerd's top-level keys (``root``, ``state``, ``imports``, ``grpc``,
     ``disabled_plugins``, ...) → containerd.
3. **YAML** that parses to one or more mappings:
   - any document with ``apiVersion: kubeadm.k8s.io/...`` → kubeadm (a kubeadm config
     often carries a KubeletConfiguration document too; the kubeadm reader handles it);
   - any document with ``kind: KubeletConfiguration`` → a kubelet config file, or a
     ``--config-dir`` drop-in when the file name ends in ``.conf``: the kubelet reads only
     ``*.conf`` from its config dir, and a ``--config`` file is by convention ``.yaml``;
   - a mapping with kubespray variables (``kubelet_*``, ``kube_*``, ``container_manager``,
     ``containerd_*``, ``crio_*``, ``eviction_hard``, ...) → kubespray group_vars.
4. **Environment file** — every non-blank, non-comment line is ``NAME=VALUE``
   (``export NAME=VALUE`` too, which systemd ignores; the env reader reports that).

Anything else is an :class:`InputError`. The file name is used only to split kubelet
config from drop-in; everything else is decided by the content.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlnode.errors import InputError
from mlnode.formats._tomlscan import duplicate_toml_line
from mlnode.formats.base import DocumentKind, ParsedDocument
from mlnode.formats.textcheck import check_text, nesting_error

__all__ = ["detect_kind", "read_any"]

_UNIT_SECTION = re.compile(r"^[ \t]*\[(Unit|Service|Install)\][ \t]*$", re.MULTILINE)
_ENV_LINE = re.compile(r"^[ \t]*(export[ \t]+)?[A-Za-z_][A-Za-z0-9_]*[ \t]*=")
_CONTAINERD_TOP_KEYS = frozenset(
    {
        "root",
        "state",
        "temp",
        "imports",
        "grpc",
        "ttrpc",
        "debug",
        "metrics",
        "cgroup",
        "disabled_plugins",
        "required_plugins",
        "plugin_dir",
        "oom_score",
        "proxy_plugins",
        "stream_processors",
        "timeouts",
    }
)
_KUBESPRAY_PREFIXES = (
    "kubelet_",
    "kube_",
    "kubeadm_",
    "containerd_",
    "crio_",
    "cri_dockerd_",
    "docker_",
    "etcd_",
)
_KUBESPRAY_KEYS = frozenset(
    {
        "container_manager",
        "eviction_hard",
        "eviction_hard_control_plane",
        "cluster_name",
        "dns_mode",
        "skip_downloads",
        "download_run_once",
    }
)
_EXPECTED = (
    "expected a containerd config.toml, a CRI-O crio.conf, a KubeletConfiguration (file or"
    " --config-dir drop-in), a kubeadm config, kubespray group_vars, a systemd unit or an"
    " environment file"
)


def detect_kind(path: str, text: str) -> DocumentKind:
    """The kind of ``text`` (read from ``path``), decided by its content; see the module doc.

    A NUL byte, nesting deeper than any configuration, and a key given twice in what is
    otherwise a TOML or YAML file of a known kind are :class:`InputError` with the line.
    """
    check_text(path, text)
    try:
        return _detect(path, text)
    except RecursionError:
        raise nesting_error(path, text) from None


def _detect(path: str, text: str) -> DocumentKind:
    if _UNIT_SECTION.search(text):
        return DocumentKind.SYSTEMD_UNIT
    toml_kind = _toml_kind(path, text)
    if toml_kind is not None:
        return toml_kind
    yaml_kind = _yaml_kind(path, text)
    if yaml_kind is not None:
        return yaml_kind
    if _is_env_file(text):
        return DocumentKind.ENV_FILE
    raise InputError(f"cannot tell what kind of file this is; {_EXPECTED}", path=path)


def _toml_kind(path: str, text: str) -> DocumentKind | None:
    import tomlkit

    try:
        data = tomlkit.parse(text).unwrap()
    except RecursionError:
        raise
    except Exception as e:  # any other parse failure: not TOML, unless it is a duplicate key
        _refuse_toml_duplicate(path, text, e)
        return None
    return _toml_data_kind(data)


def _refuse_toml_duplicate(path: str, text: str, error: Exception) -> None:
    """A key given twice in what is otherwise a containerd or CRI-O config: say so, with the
    line of the second one. TOML forbids it and both runtimes refuse the file: containerd's
    loadConfigFile fails ("failed to load TOML" in 1.x, services/server/config/config.go;
    "failed to unmarshal TOML at row R column C" in 2.x, cmd/containerd/server/config/
    config.go), and CRI-O's TOML decoder does too. A text that is no such config even
    without the duplicate (e.g. an environment file assigning a name twice) is left alone."""
    import tomlkit

    if "already exists" not in str(error):
        return
    line = duplicate_toml_line(text, error)
    if line is None:
        return
    lines = text.splitlines(keepends=True)
    without = "".join([*lines[: line - 1], "\n", *lines[line:]])
    try:
        kind = _toml_data_kind(tomlkit.parse(without).unwrap())
    except RecursionError:
        raise
    except Exception as e:  # another duplicate, or not TOML at all
        _refuse_toml_duplicate(path, without, e)
        return
    if kind is None:
        return
    key = re.search(r'Key "([^"]*)"', str(error))
    name = f'"{key.group(1)}" ' if key else ""
    raise InputError(
        f"key {name}is defined twice; TOML forbids it and {_RUNTIME_NAME[kind]} refuses to"
        " start on this file",
        path=path,
        line=line,
    )


_RUNTIME_NAME = {DocumentKind.CONTAINERD: "containerd", DocumentKind.CRIO: "CRI-O"}


def _toml_data_kind(data: Mapping[str, Any]) -> DocumentKind | None:
    if not data:
        return None
    if isinstance(data.get("crio"), Mapping):
        return DocumentKind.CRIO
    if isinstance(data.get("plugins"), Mapping):
        return DocumentKind.CONTAINERD
    version = data.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        return DocumentKind.CONTAINERD
    if isinstance(data.get("host"), Mapping) or isinstance(data.get("server"), str):
        return DocumentKind.CONTAINERD_HOSTS
    if _CONTAINERD_TOP_KEYS & set(data):
        return DocumentKind.CONTAINERD
    return None


def _yaml_docs(text: str, *, allow_duplicate_keys: bool = False) -> list[Any]:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.allow_duplicate_keys = allow_duplicate_keys
    return [d for d in yaml.load_all(text) if d is not None]


def _yaml_kind(path: str, text: str) -> DocumentKind | None:
    from ruamel.yaml.constructor import DuplicateKeyError

    try:
        loaded = _yaml_docs(text)
    except RecursionError:
        raise
    except DuplicateKeyError as e:
        _refuse_yaml_duplicate(path, text, e)
        return None
    except Exception:  # any YAML error (or a construct the safe loader refuses): not YAML
        return None
    return _yaml_docs_kind(path, loaded)


# What each consumer does with a key given twice in one mapping.
_YAML_DUPLICATE = {
    # cmd/kubelet kubeletconfig/util/codec DecodeKubeletConfiguration: sigs.k8s.io/yaml's
    # strict YAML-to-JSON conversion refuses duplicates, the kubelet then decodes leniently.
    DocumentKind.KUBELET_CONFIG: "the kubelet's strict decoding fails on it and its lenient"
    " fallback keeps the last value",
    DocumentKind.KUBELET_DROPIN: "the kubelet's strict decoding fails on it and its lenient"
    " fallback keeps the last value",
    DocumentKind.KUBEADM: "which value kubeadm and the kubelet end up with is not what the"
    " file seems to say",
    # Ansible's YAML loader (DUPLICATE_YAML_DICT_KEY=warn by default) keeps the last one.
    DocumentKind.KUBESPRAY: "Ansible warns and keeps the last value",
}


def _refuse_yaml_duplicate(path: str, text: str, error: Any) -> None:
    """A key given twice in a mapping of a kubelet, kubeadm or kubespray file: say so, with
    the line of the second one (which of the two is meant is ambiguous)."""
    try:
        kind = _yaml_docs_kind(path, _yaml_docs(text, allow_duplicate_keys=True))
    except RecursionError:
        raise
    except Exception:  # not YAML even with the duplicate allowed
        return
    if kind is None:
        return
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "found a duplicate key"
    raise InputError(
        f"{problem}: a key given twice in one mapping ({_YAML_DUPLICATE[kind]}); keep one",
        path=path,
        line=mark.line + 1 if mark is not None else None,
    )


def _yaml_docs_kind(path: str, loaded: list[Any]) -> DocumentKind | None:
    docs = [d for d in loaded if isinstance(d, Mapping)]
    if not docs:
        return None
    for d in docs:
        api = d.get("apiVersion")
        if isinstance(api, str) and api.startswith("kubeadm.k8s.io/"):
            return DocumentKind.KUBEADM
    for d in docs:
        if d.get("kind") == "KubeletConfiguration":
            if path.endswith(".conf"):
                return DocumentKind.KUBELET_DROPIN
            return DocumentKind.KUBELET_CONFIG
    for d in docs:
        keys = {str(k) for k in d}
        if keys & _KUBESPRAY_KEYS or any(k.startswith(_KUBESPRAY_PREFIXES) for k in keys):
            return DocumentKind.KUBESPRAY
    return None


def _is_env_file(text: str) -> bool:
    seen = False
    continued = False
    for line in text.splitlines():
        stripped = line.strip()
        if continued:  # a backslash-newline continuation of the previous value
            continued = stripped.endswith("\\")
            continue
        if not stripped or stripped[0] in "#;":
            continue
        if not _ENV_LINE.match(line):
            return False
        seen = True
        continued = stripped.endswith("\\")
    return seen


def read_any(path: str, text: str) -> tuple[ParsedDocument, ...]:
    """Detect the kind of ``text`` and read it; one document per file, except YAML files
    with several documents, which their reader may split."""
    if path.endswith("/hosts.toml") or path == "hosts.toml":
        # containerd's registry hosts file: read even when it does not parse, since
        # containerd then silently bypasses it (lint E113 says so, with the line).
        from mlnode.formats.containerd import read_hosts_toml

        return (read_hosts_toml(path, text),)
    kind = detect_kind(path, text)
    if kind is DocumentKind.CONTAINERD_HOSTS:
        from mlnode.formats.containerd import read_hosts_toml

        return (read_hosts_toml(path, text),)
    if kind is DocumentKind.CONTAINERD:
        from mlnode.formats.containerd import read_containerd

        return (read_containerd(path, text),)
    if kind is DocumentKind.CRIO:
        from mlnode.formats.crio import read_crio

        return (read_crio(path, text),)
    return _read_other(kind, path, text)


def _read_other(kind: DocumentKind, path: str, text: str) -> tuple[ParsedDocument, ...]:
    # The readers of these formats live in modules written alongside this one; they are
    # imported here, lazily, so that detection works whichever of them exist.
    try:
        if kind is DocumentKind.ENV_FILE:
            from mlnode.formats.envfile import read_env

            return _as_tuple(read_env(path, text))
        if kind is DocumentKind.SYSTEMD_UNIT:
            from mlnode.formats.systemd_unit import read_systemd_unit

            return _as_tuple(read_systemd_unit(path, text))
        if kind in (DocumentKind.KUBELET_CONFIG, DocumentKind.KUBELET_DROPIN):
            from mlnode.formats import kubelet_config

            return _as_tuple(kubelet_config.read_kubelet_config(path, text, kind=kind))
        if kind is DocumentKind.KUBEADM:
            from mlnode.formats import kubeadm

            return _as_tuple(kubeadm.read_kubeadm(path, text))
        if kind is DocumentKind.KUBESPRAY:
            from mlnode.formats.kubespray import read_kubespray

            return _as_tuple(read_kubespray(path, text))
    except ImportError as e:
        raise InputError(
            f"this looks like a {kind.value} file, but there is no reader for it"
            f" in this build ({e})",
            path=path,
        ) from e
    raise InputError(f"no reader for {kind.value} files", path=path)  # pragma: no cover


def _as_tuple(result: Any) -> tuple[ParsedDocument, ...]:
    if isinstance(result, ParsedDocument):
        return (result,)
    docs = tuple(result)
    if not all(isinstance(d, ParsedDocument) for d in docs):  # pragma: no cover
        raise TypeError("a reader returned something other than ParsedDocument")
    return docs
