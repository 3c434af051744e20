"""Read a node into a :class:`NodeLayout` — a thin layer over :mod:`mlnode.node` (strict).

Which installer laid the node out, which EnvironmentFile operators own for extra flags, the
kubelet's ``--config``/``--config-dir``, the runtime's config files, and the versions (from
the binaries when they answer ``--version``, the options given otherwise).
"""

from __future__ import annotations

from pathlib import Path

from mlnode.errors import UsageError
from mlnode.formats.envfile import read_env
from mlnode.node import (
    CONTAINERD_CONFIG,
    CRIO_CONFIG,
    CRIO_DIR,
    Binary,
    Runner,
    UnitCommand,
    containerd_config_files,
    crio_config_files,
    find_binary,
    kubelet_dropins,
    probe_version,
    read_kubelet_command,
    read_path,
    read_text,
    run_command,
    unit_binary,
)
from mlnode.ops.apply._model import LayoutKind, NodeLayout
from mlnode.versions import (
    RuntimeKind,
    RuntimeSpec,
    Version,
    parse_kubernetes_version,
    parse_runtime,
)

__all__ = ["detect_layout"]

_KUBEADM_FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
_KUBESPRAY_ENV = "/etc/kubernetes/kubelet.env"


def _layout_kind(command: UnitCommand) -> LayoutKind:
    env_paths = command.env_files
    if (
        any(uf.endswith("/10-kubeadm.conf") for uf in command.unit_files)
        or _KUBEADM_FLAGS_ENV in env_paths
    ):
        if "/etc/sysconfig/kubelet" in env_paths:
            return LayoutKind.KUBEADM_RPM
        return LayoutKind.KUBEADM_DEB
    if _KUBESPRAY_ENV in env_paths:
        return LayoutKind.KUBESPRAY
    return LayoutKind.SYSTEMD


def _args_file(kind: LayoutKind, command: UnitCommand) -> tuple[str | None, str | None]:
    """The EnvironmentFile (and its variable) operators own for extra kubelet flags."""
    if kind is LayoutKind.KUBEADM_DEB:
        return "/etc/default/kubelet", "KUBELET_EXTRA_ARGS"
    if kind is LayoutKind.KUBEADM_RPM:
        return "/etc/sysconfig/kubelet", "KUBELET_EXTRA_ARGS"
    if kind is LayoutKind.KUBESPRAY:
        return _KUBESPRAY_ENV, "KUBELET_ARGS"
    argv = command.exec_argv
    refs = {w[1:] for w in argv[1:] if w.startswith("$") and not w.startswith("${")}
    for path in reversed(command.env_files):
        found_text = command.files.get(path)
        if found_text is None:
            continue
        names = [a.name for a in read_env(path, found_text).env if a.name in refs]
        if names:
            return path, names[-1]
    return None, None


def _probe(name: str, binary: Binary | None, runner: Runner) -> tuple[Version | None, str]:
    """The binary's version and how it was found, or None and why not ("" if no binary)."""
    if binary is None:
        return None, ""
    probe = probe_version(name, binary.host, runner)
    if probe.result is not None and not probe.result.ok:
        return None, f"{binary.host} --version failed: {probe.result.describe()}"
    if probe.version is None:
        return None, f"{binary.host}: no version in output"
    return probe.version, f"{binary.path} --version"


def _kubelet_version(
    root: Path,
    command: UnitCommand,
    given: Version | None,
    runner: Runner,
    versions_from: dict[str, str],
    notes: list[str],
) -> tuple[Version, str | None]:
    binary = find_binary(root, "kubelet", exec_start=command.binary)
    found, how = _probe("kubelet", binary, runner)
    if how and not found:
        notes.append(how)
    if found is not None and binary is not None:
        k8s = parse_kubernetes_version(str(found), option=f"{binary.path} --version")
        versions_from["kubelet"] = how
        if given is not None and given.minor_line != k8s.minor_line:
            raise UsageError(
                f"the kubelet on the node ({binary.path}) is {k8s}, not {given}",
                option="--kubernetes-version",
            )
        return k8s, binary.path
    if given is None:
        raise UsageError(
            "no kubelet binary answered --version under the root; give the version",
            option="--kubernetes-version",
        )
    versions_from["kubelet"] = "--kubernetes-version"
    return given, binary.path if binary else None


def _runtime_kind(root: Path, command: UnitCommand) -> RuntimeKind | None:
    endpoint = command.flag("container-runtime-endpoint") or ""
    if "crio" in endpoint:
        return RuntimeKind.CRIO
    if (
        "containerd" in endpoint
        or find_binary(root, "containerd")
        or read_path(root, CONTAINERD_CONFIG).exists()
    ):
        return RuntimeKind.CONTAINERD
    if find_binary(root, "crio") or read_path(root, CRIO_DIR).exists():
        return RuntimeKind.CRIO
    return None


def _runtime(
    root: Path,
    command: UnitCommand,
    given: RuntimeSpec | None,
    runner: Runner,
    versions_from: dict[str, str],
    notes: list[str],
) -> tuple[RuntimeSpec, str | None]:
    kind = given.kind if given is not None else _runtime_kind(root, command)
    if kind is None:
        raise UsageError(
            "cannot tell the container runtime of this node; give it", option="--runtime"
        )
    path: str | None = None
    if kind in (RuntimeKind.CONTAINERD, RuntimeKind.CRIO):
        binary = find_binary(root, kind.value, exec_start=unit_binary(root, kind.value))
        path = binary.path if binary else None
        found, how = _probe(kind.value, binary, runner)
        if how and not found:
            notes.append(how)
        if found is not None:
            spec = parse_runtime(f"{kind.value}@{found}", option=f"{path} --version")
            versions_from["runtime"] = how
            if (
                given is not None
                and given.version is not None
                and spec.version is not None
                and given.version.minor_line != spec.version.minor_line
            ):
                raise UsageError(
                    f"the runtime on the node ({path}) is {spec}, not {given}", option="--runtime"
                )
            return spec, path
    if given is None:
        raise UsageError(
            f"no {kind.value} binary answered --version under the root; give the runtime",
            option="--runtime",
        )
    versions_from["runtime"] = "--runtime"
    return given, path


def _runtime_files(
    root: Path, runtime: RuntimeSpec, files: dict[str, str | None]
) -> tuple[list[str], list[str]]:
    """containerd's files (config.toml then imports) and CRI-O's, each read into ``files``."""
    containerd: list[str] = []
    crio: list[str] = []
    if runtime.kind is RuntimeKind.CONTAINERD:
        files[CONTAINERD_CONFIG] = read_text(root, CONTAINERD_CONFIG, strict=True)
        containerd, _ = containerd_config_files(root, runtime_version=runtime.version, strict=True)
    elif runtime.kind is RuntimeKind.CRIO:
        files[CRIO_CONFIG] = read_text(root, CRIO_CONFIG, strict=True)
        crio = crio_config_files(root)
    for node in (*containerd, *crio):
        if node not in files:
            files[node] = read_text(root, node, strict=True)
    return containerd, crio


def detect_layout(
    root: Path,
    *,
    kubernetes_version: Version | None = None,
    runtime: RuntimeSpec | None = None,
    runner: Runner = run_command,
) -> NodeLayout:
    """Read the node under ``root``. Versions come from the binaries when they answer
    ``--version``; the given ones are used otherwise and must agree with the binaries."""
    root = root.resolve()
    command = read_kubelet_command(root, strict=True)
    files = dict(command.files)
    notes = list(command.notes)
    kind = _layout_kind(command)
    args_file, args_variable = _args_file(kind, command)
    if args_file is not None and args_file not in files:
        files[args_file] = read_text(root, args_file, strict=True)
    config_file = command.flag("config")
    config_dir = command.flag("config-dir")
    if config_file:
        files[config_file] = read_text(root, config_file, strict=True)
    dropins = kubelet_dropins(root, config_dir) if config_dir else []
    for node in dropins:
        files[node] = read_text(root, node, strict=True)

    versions_from: dict[str, str] = {}
    k8s, kubelet_binary = _kubelet_version(
        root, command, kubernetes_version, runner, versions_from, notes
    )
    rt_spec, runtime_binary = _runtime(root, command, runtime, runner, versions_from, notes)
    containerd_files, crio_files = _runtime_files(root, rt_spec, files)
    return NodeLayout(
        root=root,
        kind=kind,
        kubernetes_version=k8s,
        runtime=rt_spec,
        versions_from=versions_from,
        unit_files=command.unit_files,
        env_files=command.env_files,
        environment=command.environment,
        kubelet_argv=command.argv,
        args_file=args_file,
        args_variable=args_variable,
        config_file=config_file,
        config_dir=config_dir,
        dropins=tuple(dropins),
        kubelet_binary=kubelet_binary,
        runtime_binary=runtime_binary,
        containerd_files=tuple(containerd_files),
        crio_files=tuple(crio_files),
        files=files,
        notes=tuple(notes),
    )
