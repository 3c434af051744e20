"""``mlnode apply`` and ``mlnode rollback``: pure planning, thin execution.

:func:`detect_layout` reads a node's kubelet and runtime files under a root (``/`` on the
node) into a :class:`NodeLayout` — which installer laid them out, which files feed the
kubelet's command line, its ``--config``/``--config-dir``, the runtime's config files, and
the versions (from the binaries when they are there). :func:`plan_apply` is pure: from a
layout and the settings it returns an :class:`ApplyPlan` (every file's old and new text,
the flags removed, the service actions, what verification must see). :func:`execute_apply`
and :func:`execute_rollback` carry a plan out under the node lock with a backup set.

Where each setting goes (the most durable place for the layout; docs/apply.md explains):

* **kubelet 1.29+ with a --config-dir**: a drop-in ``<config-dir>/90-mlnode-images.conf``.
* **kubeadm, 1.29+, no --config-dir yet**: ``--config-dir=/etc/kubernetes/kubelet.conf.d``
  is added to ``KUBELET_EXTRA_ARGS`` in ``/etc/default/kubelet`` (deb) or
  ``/etc/sysconfig/kubelet`` (rpm) — files kubeadm never rewrites — and the drop-in goes
  there. On 1.29 the kubelet also needs ``KUBELET_CONFIG_DROPIN_DIR_ALPHA`` in its
  environment; it is added to the same EnvironmentFile (systemd exports every assignment
  of an EnvironmentFile to the process), so one durable file carries both.
  ``/var/lib/kubelet/config.yaml`` and ``kubeadm-flags.env`` (rewritten by ``kubeadm
  upgrade``) are never the only home of a value.
* **kubelet 1.28**: its drop-in merge (mergo on defaulted structs) can reset fields a
  drop-in does not mention, so mlnode does not use --config-dir there and treats 1.28 as
  older versions.
* **kubeadm before 1.29**: settings that have a flag go to ``KUBELET_EXTRA_ARGS`` (durable;
  deprecated but honoured, and they override the config file); settings without a flag
  are written to ``/var/lib/kubelet/config.yaml`` with a warning that ``kubeadm upgrade``
  replaces it (edit the ``kube-system/kubelet-config`` ConfigMap too).
* **kubespray**: 1.29+: ``--config-dir`` in ``KUBELET_ARGS`` of
  ``/etc/kubernetes/kubelet.env`` plus the drop-in; before: the fields in
  ``/etc/kubernetes/kubelet-config.yaml``. kubespray re-renders both files on its next
  run, so the plan's notes give the inventory variables (``mlnode render --format
  kubespray``).
* **plain systemd unit**: the drop-in when the unit passes --config-dir, else the
  ``--config`` file itself (nothing else rewrites it).
* Flags that would override the new values (the same setting as a flag in any
  EnvironmentFile) and flags this kubelet no longer has (``--image-pull-progress-deadline``
  from 1.24, ``--container-runtime`` from 1.27) are removed from every EnvironmentFile,
  keeping comments and the rest of the line.
* The pull deadline goes to the runtime: containerd's ``config.toml`` (or the imported file
  that already sets it, since an import overrides the main file), CRI-O's drop-in
  ``/etc/crio/crio.conf.d/90-mlnode-images.conf``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnode.errors import ApplyError, InputError, UsageError, VerificationFailed
from mlnode.formats.base import ParsedDocument
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import Placement, flag_value, place
from mlnode.knowledge.table import (
    REMOVED_FLAGS,
    config_dir_support,
    kubelet_setting_by_field,
    kubelet_setting_by_flag,
)
from mlnode.ops.fileio import (
    ApplyLock,
    BackupSet,
    atomic_write,
    create_backup,
    file_sha256,
    host_path,
    latest_backup,
    list_backups,
    load_backup,
    restore_backup,
    sha256_bytes,
    update_backup,
)
from mlnode.ops.runner import Runner, run_command
from mlnode.ops.services import ActionKind, ServiceAction, ServiceManager, perform
from mlnode.ops.verify import Expectations, RuntimeExpectation, VerificationReport, Verifier
from mlnode.versions import (
    RuntimeKind,
    RuntimeSpec,
    Version,
    parse_kubernetes_version,
    parse_runtime,
)

__all__ = [
    "DROPIN_NAME",
    "KUBEADM_CONFIG_DIR",
    "ApplyPlan",
    "ApplyRefused",
    "ApplyResult",
    "FileEdit",
    "LayoutKind",
    "NodeLayout",
    "RemovedFlag",
    "RollbackResult",
    "detect_layout",
    "execute_apply",
    "execute_rollback",
    "interrupted_backups",
    "lint_plan",
    "plan_apply",
]

DROPIN_NAME = "90-mlnode-images.conf"
KUBEADM_CONFIG_DIR = "/etc/kubernetes/kubelet.conf.d"
_ALPHA_ENV = "KUBELET_CONFIG_DROPIN_DIR_ALPHA"
_KUBEADM_FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
_KUBEADM_CONFIG = "/var/lib/kubelet/config.yaml"
_KUBESPRAY_ENV = "/etc/kubernetes/kubelet.env"
_KUBESPRAY_CONFIG = "/etc/kubernetes/kubelet-config.yaml"
_CONTAINERD_CONFIG = "/etc/containerd/config.toml"
_CRIO_CONFIG = "/etc/crio/crio.conf"
_CRIO_DIR = "/etc/crio/crio.conf.d"
# systemd's unit search path, highest precedence first.
_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system",
              "/lib/systemd/system")  # fmt: skip
_BIN_DIRS = ("/usr/bin", "/usr/local/bin", "/bin")
# The first version whose --config-dir mlnode writes to (1.28's mergo merge is unsafe).
_DROPIN_FROM = Version(1, 29)


class ApplyRefused(InputError):
    """The plan is not applied: the resulting files would be invalid (exit 2, no change)."""


class LayoutKind(enum.StrEnum):
    KUBEADM_DEB = "kubeadm-deb"
    KUBEADM_RPM = "kubeadm-rpm"
    KUBESPRAY = "kubespray"
    SYSTEMD = "systemd"


@dataclass(frozen=True)
class NodeLayout:
    """A node's kubelet and runtime files, read once; ``files`` holds every text planned on."""

    root: Path
    kind: LayoutKind
    kubernetes_version: Version
    runtime: RuntimeSpec
    versions_from: Mapping[str, str]  # "kubelet"/"runtime" -> how the version was found
    unit_files: tuple[str, ...]  # kubelet.service then its drop-ins, in systemd's order
    env_files: tuple[str, ...]  # EnvironmentFile= paths in order (existing or not)
    environment: Mapping[str, str]  # what systemd would give the kubelet
    kubelet_argv: tuple[str, ...]  # ExecStart= after $VAR expansion
    args_file: str | None  # the EnvironmentFile operators own for extra flags
    args_variable: str | None  # its variable: KUBELET_EXTRA_ARGS, KUBELET_ARGS
    config_file: str | None  # --config
    config_dir: str | None  # --config-dir
    dropins: tuple[str, ...]  # *.conf in --config-dir, in the kubelet's order
    kubelet_binary: str | None
    runtime_binary: str | None
    containerd_files: tuple[str, ...] = ()  # config.toml then imports, load order
    crio_files: tuple[str, ...] = ()
    files: Mapping[str, str | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def text(self, node_path: str) -> str | None:
        return self.files.get(node_path)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "kubernetes_version": str(self.kubernetes_version),
            "runtime": str(self.runtime),
            "versions_from": dict(self.versions_from),
            "unit_files": list(self.unit_files),
            "env_files": list(self.env_files),
            "args_file": self.args_file,
            "args_variable": self.args_variable,
            "config_file": self.config_file,
            "config_dir": self.config_dir,
            "containerd_files": list(self.containerd_files),
            "crio_files": list(self.crio_files),
        }


@dataclass(frozen=True)
class FileEdit:
    """One file's change: ``old_text`` None means the file is created."""

    path: str  # node path
    old_text: str | None
    new_text: str
    reason: str
    unit: str  # the service that reads it: kubelet | containerd | crio

    @property
    def sha256_before(self) -> str | None:
        return None if self.old_text is None else sha256_bytes(self.old_text.encode())

    @property
    def sha256_after(self) -> str:
        return sha256_bytes(self.new_text.encode())

    def diff(self) -> str:
        old = [] if self.old_text is None else self.old_text.splitlines(keepends=True)
        new = self.new_text.splitlines(keepends=True)
        lines = difflib.unified_diff(
            old,
            new,
            fromfile="/dev/null" if self.old_text is None else f"a{self.path}",
            tofile=f"b{self.path}",
        )
        return "".join(x if x.endswith("\n") else x + "\n\\ No newline at end of file\n"
                       for x in lines)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change": "created" if self.old_text is None else "modified",
            "reason": self.reason,
            "unit": self.unit,
            "sha256_before": self.sha256_before,
            "sha256_after": self.sha256_after,
            "diff": self.diff(),
        }


@dataclass(frozen=True)
class RemovedFlag:
    path: str
    flag: str  # "--image-pull-progress-deadline=30m" as written
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "flag": self.flag, "reason": self.reason}


@dataclass(frozen=True)
class ApplyPlan:
    layout: NodeLayout
    settings: ImageSettings
    placement: Placement
    edits: tuple[FileEdit, ...]
    actions: tuple[ServiceAction, ...]
    removed_flags: tuple[RemovedFlag, ...]
    expectations: Expectations
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def no_changes(self) -> bool:
        return not self.edits

    def new_files(self) -> dict[str, str | None]:
        """Every file of the layout as it will be after the apply."""
        out = dict(self.layout.files)
        for e in self.edits:
            out[e.path] = e.new_text
        return out


# --------------------------------------------------------------------------- detection


def _read(root: Path, node_path: str) -> str | None:
    p = host_path(root, node_path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InputError("is a directory, expected a file", path=p) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read: {e}", path=p) from e


def _unit_files(root: Path, unit: str) -> list[str]:
    candidates = [f"{d}/{unit}.service" for d in _UNIT_DIRS]
    main = next((c for c in candidates if host_path(root, c).is_file()), None)
    if main is None:
        raise InputError(
            f"no {unit}.service under {root} (looked in {', '.join(_UNIT_DIRS)})", path=root
        )
    dropins: dict[str, str] = {}
    for d in reversed(_UNIT_DIRS):  # higher precedence replaces same-named drop-ins
        dd = host_path(root, f"{d}/{unit}.service.d")
        if dd.is_dir():
            for p in dd.iterdir():
                if p.name.endswith(".conf") and p.is_file():
                    dropins[p.name] = f"{d}/{unit}.service.d/{p.name}"
    return [main] + [dropins[n] for n in sorted(dropins)]


def _flag(argv: Sequence[str], name: str) -> str | None:
    """The value of ``--name`` on a kubelet command line (the last occurrence wins)."""
    value = None
    for i, w in enumerate(argv):
        norm = w.replace("_", "-")
        if norm.startswith(f"--{name}="):
            value = w.split("=", 1)[1]
        elif norm == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
    return value


_VERSION_IN_OUTPUT = re.compile(r"v?(\d+\.\d+\.\d+)")


def _binary_version(root: Path, node_path: str | None, runner: Runner) -> tuple[str | None, str]:
    if node_path is None:
        return None, ""
    p = host_path(root, node_path)
    if not p.is_file():
        return None, ""
    result = runner([str(p), "--version"])
    if not result.ok:
        return None, f"{p} --version failed: {result.describe()}"
    m = _VERSION_IN_OUTPUT.search(result.stdout + " " + result.stderr)
    return (m.group(1), f"{node_path} --version") if m else (None, f"{p}: no version in output")


def _find_binary(root: Path, name: str, preferred: str | None = None) -> str | None:
    candidates = ([preferred] if preferred else []) + [f"{d}/{name}" for d in _BIN_DIRS]
    return next((c for c in candidates if host_path(root, c).is_file()), None)


def detect_layout(
    root: Path,
    *,
    kubernetes_version: Version | None = None,
    runtime: RuntimeSpec | None = None,
    runner: Runner = run_command,
) -> NodeLayout:
    """Read the node under ``root``. Versions come from the binaries when they answer
    ``--version``; the given ones are used otherwise and must agree with the binaries."""
    from mlnode.formats.envfile import expand_exec_start, read_env, read_systemd_unit

    root = root.resolve()
    files: dict[str, str | None] = {}
    notes: list[str] = []
    unit_files = _unit_files(root, "kubelet")
    env_files: list[str] = []
    environment: dict[str, str] = {}
    exec_argv: list[str] = []
    for uf in unit_files:
        text = _read(root, uf) or ""
        files[uf] = text
        doc = read_systemd_unit(str(host_path(root, uf)), text)
        if doc.facts.get("environment_files_reset"):
            env_files = []
        env_files.extend(doc.facts.get("environment_files", []))
        environment.update(doc.facts.get("environment", {}))
        if doc.facts.get("exec_start_reset"):
            exec_argv = []
        if doc.facts.get("exec_start_argv"):
            exec_argv = list(doc.facts["exec_start_argv"])
    if not exec_argv:
        raise InputError("the kubelet unit has no ExecStart=", path=host_path(root, unit_files[0]))
    env_paths: list[str] = []
    for raw in env_files:
        path = raw.lstrip("-")
        if not path.startswith("/"):
            continue
        env_paths.append(path)
        env_text = _read(root, path)
        files[path] = env_text
        if env_text is None:
            if not raw.startswith("-"):
                raise InputError(
                    "the kubelet unit requires this EnvironmentFile, which is missing",
                    path=host_path(root, path),
                )
            continue
        for a in read_env(str(host_path(root, path)), env_text).env:
            environment[a.name] = a.value
    argv = expand_exec_start(exec_argv, environment)

    if any(uf.endswith("/10-kubeadm.conf") for uf in unit_files) or _KUBEADM_FLAGS_ENV in env_paths:
        kind = (
            LayoutKind.KUBEADM_RPM
            if "/etc/sysconfig/kubelet" in env_paths
            else LayoutKind.KUBEADM_DEB
        )
    elif _KUBESPRAY_ENV in env_paths:
        kind = LayoutKind.KUBESPRAY
    else:
        kind = LayoutKind.SYSTEMD

    args_file: str | None = None
    args_variable: str | None = None
    if kind is LayoutKind.KUBEADM_DEB:
        args_file, args_variable = "/etc/default/kubelet", "KUBELET_EXTRA_ARGS"
    elif kind is LayoutKind.KUBEADM_RPM:
        args_file, args_variable = "/etc/sysconfig/kubelet", "KUBELET_EXTRA_ARGS"
    elif kind is LayoutKind.KUBESPRAY:
        args_file, args_variable = _KUBESPRAY_ENV, "KUBELET_ARGS"
    else:
        refs = {w[1:] for w in exec_argv[1:] if w.startswith("$") and not w.startswith("${")}
        for path in reversed(env_paths):
            found_text = files.get(path)
            if found_text is None:
                continue
            names = [a.name for a in read_env(path, found_text).env if a.name in refs]
            if names:
                args_file, args_variable = path, names[-1]
                break
    if args_file is not None and args_file not in files:
        files[args_file] = _read(root, args_file)

    config_file = _flag(argv, "config")
    config_dir = _flag(argv, "config-dir")
    if config_file:
        files[config_file] = _read(root, config_file)
    dropins: list[str] = []
    if config_dir:
        d = host_path(root, config_dir)
        if d.is_dir():
            found = sorted(
                (p.relative_to(d).as_posix() for p in d.rglob("*.conf") if p.is_file()),
            )
            for rel in found:
                node = f"{config_dir.rstrip('/')}/{rel}"
                dropins.append(node)
                files[node] = _read(root, node)

    # Versions -----------------------------------------------------------------------
    versions_from: dict[str, str] = {}
    kubelet_binary = _find_binary(root, "kubelet", argv[0] if argv[0].startswith("/") else None)
    found_k8s, how = _binary_version(root, kubelet_binary, runner)
    if how and not found_k8s:
        notes.append(how)
    k8s: Version | None = None
    if found_k8s:
        k8s = parse_kubernetes_version(found_k8s, option=f"{kubelet_binary} --version")
        versions_from["kubelet"] = how
        if kubernetes_version is not None and kubernetes_version.minor_line != k8s.minor_line:
            raise UsageError(
                f"the kubelet on the node ({kubelet_binary}) is {k8s}, not {kubernetes_version}",
                option="--kubernetes-version",
            )
    elif kubernetes_version is not None:
        k8s = kubernetes_version
        versions_from["kubelet"] = "--kubernetes-version"
    if k8s is None:
        raise UsageError(
            "no kubelet binary answered --version under the root; give the version",
            option="--kubernetes-version",
        )

    kind_rt = runtime.kind if runtime is not None else None
    if kind_rt is None:
        endpoint = _flag(argv, "container-runtime-endpoint") or ""
        if "crio" in endpoint:
            kind_rt = RuntimeKind.CRIO
        elif (
            "containerd" in endpoint
            or _find_binary(root, "containerd")
            or host_path(root, _CONTAINERD_CONFIG).exists()
        ):
            kind_rt = RuntimeKind.CONTAINERD
        elif _find_binary(root, "crio") or host_path(root, _CRIO_DIR).exists():
            kind_rt = RuntimeKind.CRIO
    if kind_rt is None:
        raise UsageError(
            "cannot tell the container runtime of this node; give it", option="--runtime"
        )
    runtime_binary: str | None = None
    rt_spec: RuntimeSpec | None = None
    if kind_rt in (RuntimeKind.CONTAINERD, RuntimeKind.CRIO):
        runtime_binary = _find_binary(root, kind_rt.value)
        found_rt, how = _binary_version(root, runtime_binary, runner)
        if how and not found_rt:
            notes.append(how)
        if found_rt:
            rt_spec = parse_runtime(
                f"{kind_rt.value}@{found_rt}", option=f"{runtime_binary} --version"
            )
            versions_from["runtime"] = how
            if (
                runtime is not None
                and runtime.version is not None
                and rt_spec.version is not None
                and runtime.version.minor_line != rt_spec.version.minor_line
            ):
                raise UsageError(
                    f"the runtime on the node ({runtime_binary}) is {rt_spec}, not {runtime}",
                    option="--runtime",
                )
    if rt_spec is None:
        if runtime is None:
            raise UsageError(
                f"no {kind_rt.value} binary answered --version under the root; give the runtime",
                option="--runtime",
            )
        rt_spec = runtime
        versions_from["runtime"] = "--runtime"

    containerd_files: list[str] = []
    crio_files: list[str] = []
    if rt_spec.kind is RuntimeKind.CONTAINERD:
        from mlnode.formats.containerd import read_containerd_with_imports

        files[_CONTAINERD_CONFIG] = _read(root, _CONTAINERD_CONFIG)
        if files[_CONTAINERD_CONFIG] is not None:
            for doc in read_containerd_with_imports(
                _CONTAINERD_CONFIG, root, runtime_version=rt_spec.version
            ):
                node = str(doc.facts["node_path"])
                containerd_files.append(node)
                files[node] = _read(root, node)
        else:
            containerd_files.append(_CONTAINERD_CONFIG)
    elif rt_spec.kind is RuntimeKind.CRIO:
        from mlnode.formats.crio import crio_dropin_files

        files[_CRIO_CONFIG] = _read(root, _CRIO_CONFIG)
        if files[_CRIO_CONFIG] is not None:
            crio_files.append(_CRIO_CONFIG)
        for p in crio_dropin_files(host_path(root, _CRIO_DIR)):
            node = "/" + p.relative_to(root).as_posix()
            crio_files.append(node)
            files[node] = _read(root, node)

    return NodeLayout(
        root=root,
        kind=kind,
        kubernetes_version=k8s,
        runtime=rt_spec,
        versions_from=versions_from,
        unit_files=tuple(unit_files),
        env_files=tuple(env_paths),
        environment=environment,
        kubelet_argv=tuple(argv),
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


# --------------------------------------------------------------------------- planning


def _flags_in(path: str, text: str) -> list[tuple[str, str]]:
    from mlnode.formats.envfile import read_env

    return [(f.name, f.text) for f in read_env(path, text).flags]


def _as_flags(
    placement: Placement, settings: ImageSettings, k8s: Version
) -> tuple[Placement, list[str]]:
    """Move fields that have a kubelet flag in ``k8s`` into flags; returns the rest's names."""
    wanted = settings.set_fields()
    flags = dict(placement.kubelet_flags)
    fields: dict[str, Any] = {}
    for name, value in placement.kubelet_fields.items():
        row = kubelet_setting_by_field(name)
        if row is not None and row.flag and row.flag_span.contains(k8s):
            flags[row.flag] = flag_value(row.kind, wanted[row.key])
        else:
            fields[name] = value
    return dataclasses.replace(placement, kubelet_fields=fields, kubelet_flags=flags), list(fields)


def _append_assignment(text: str | None, name: str, value: str, comment: str) -> str:
    base = text or ""
    if base and not base.endswith("\n"):
        base += "\n"
    return f"{base}# {comment}\n{name}={value}\n"


def plan_apply(
    layout: NodeLayout,
    settings: ImageSettings,
    k8s: Version | None = None,
    runtime: RuntimeSpec | None = None,
) -> ApplyPlan:
    """Where each setting goes on this node, as file edits and service actions. Pure.

    Raises :class:`ApplyRefused` when a setting has no home here (the placement's
    refusals) or the layout offers no durable place for it.
    """
    from mlnode.formats.envfile import merge_env
    from mlnode.formats.kubelet_config import merge_kubelet_config, render_kubelet_dropin

    k8s = k8s or layout.kubernetes_version
    runtime = runtime or layout.runtime
    if settings.is_empty():
        raise UsageError("no settings to apply")
    placement = place(settings, k8s, runtime)
    if placement.refusals:
        raise ApplyRefused(
            "cannot apply: " + "; ".join(f"{r.key}: {r.reason}" for r in placement.refusals)
        )
    new: dict[str, str] = {}
    reasons: dict[str, str] = {}
    units: dict[str, str] = {}
    warnings: list[str] = list(placement.warnings)
    notes: list[str] = []

    def current(path: str) -> str | None:
        return new.get(path, layout.files.get(path))

    def stage(path: str, text: str, reason: str, unit: str = "kubelet") -> None:
        if text == current(path):
            return
        new[path] = text
        reasons[path] = "; ".join(filter(None, [reasons.get(path), reason]))
        units[path] = unit

    # 1. Kubelet fields: drop-in, config file or flags ------------------------------------
    support = config_dir_support(k8s)
    has_kubelet_fields = bool(placement.kubelet_fields or placement.feature_gates)
    kubelet_placement = placement  # what merge_env sees as "the flags we set"
    extra_flags: dict[str, str] = {}
    dropin_path: str | None = None
    use_dropins = support.supported and k8s.at_least(_DROPIN_FROM)
    is_kubeadm = layout.kind in (LayoutKind.KUBEADM_DEB, LayoutKind.KUBEADM_RPM)
    if has_kubelet_fields:
        if use_dropins and layout.config_dir:
            dropin_path = f"{layout.config_dir.rstrip('/')}/{DROPIN_NAME}"
        elif use_dropins and layout.args_file and layout.args_variable:
            dropin_path = f"{KUBEADM_CONFIG_DIR}/{DROPIN_NAME}"
            extra_flags["config-dir"] = KUBEADM_CONFIG_DIR
        elif is_kubeadm and layout.args_file:
            kubelet_placement, rest = _as_flags(placement, settings, k8s)
            if rest:
                cfg = layout.config_file or _KUBEADM_CONFIG
                text = current(cfg)
                if text is None:
                    raise ApplyRefused(f"{', '.join(rest)} need the kubelet config file {cfg}")
                only_rest = dataclasses.replace(kubelet_placement, kubelet_flags={})
                stage(cfg, merge_kubelet_config(text, cfg, only_rest), "fields without a flag")
                warnings.append(
                    f"{', '.join(rest)} written to {cfg}, which `kubeadm upgrade` rewrites from "
                    "the kube-system/kubelet-config ConfigMap: put them there too "
                    "(docs/apply.md, 'kubeadm cluster-wide')"
                )
            notes.append(
                f"kubelet {k8s} has no usable --config-dir: the settings are flags in "
                f"{layout.args_variable} of {layout.args_file} (kubeadm never rewrites it; "
                "flags override the config file)"
            )
        elif layout.config_file:
            cfg = layout.config_file
            text = current(cfg)
            if text is None:
                raise ApplyRefused(f"the kubelet's --config file {cfg} does not exist")
            stage(cfg, merge_kubelet_config(text, cfg, placement), "kubelet config fields")
        else:
            raise ApplyRefused(
                "the kubelet unit passes neither --config-dir nor --config, and has no "
                "EnvironmentFile for flags: nowhere durable to put KubeletConfiguration fields"
            )
    if dropin_path is not None:
        existing = current(dropin_path)
        text = (
            render_kubelet_dropin(placement, path=dropin_path)
            if existing is None
            else merge_kubelet_config(existing, dropin_path, placement)
        )
        stage(dropin_path, text, "kubelet image settings drop-in (--config-dir)")
        if support.env_required and support.env_required not in layout.environment:
            if not layout.args_file:
                raise ApplyRefused(
                    f"kubelet {k8s} reads --config-dir only with {support.env_required} set, "
                    "and the unit has no EnvironmentFile to set it in"
                )
            stage(
                layout.args_file,
                _append_assignment(
                    current(layout.args_file),
                    support.env_required,
                    "true",
                    f"mlnode: kubelet {k8s.major}.{k8s.minor} reads --config-dir only with this"
                    " set",
                ),
                f"{support.env_required} for --config-dir",
            )

    # 2. Flags (ours) and flags to remove, in every EnvironmentFile ------------------------
    removed_names = {r.flag for r in REMOVED_FLAGS if k8s.at_least(r.removed_in)}
    ours = {**kubelet_placement.kubelet_flags, **extra_flags}
    if ours and not (layout.args_file and layout.args_variable):
        raise ApplyRefused(
            "the kubelet unit reads no EnvironmentFile mlnode can put flags in "
            f"({', '.join('--' + f for f in ours)})"
        )
    set_placement = dataclasses.replace(kubelet_placement, kubelet_flags=ours)
    # Flags that would override a field we set, wherever the field is written.
    override = {
        row.flag
        for fld in placement.kubelet_fields
        if (row := kubelet_setting_by_field(fld)) is not None and row.flag
    } - set(ours)
    removed: list[RemovedFlag] = []
    env_targets = list(dict.fromkeys([*layout.env_files, *filter(None, [layout.args_file])]))
    for path in env_targets:
        text = current(path)
        is_target = path == layout.args_file
        if text is None and not (is_target and ours):
            continue
        before = _flags_in(path, text or "")
        if is_target:
            assert layout.args_variable is not None
            merged = merge_env(
                text or "",
                path,
                set_placement,
                variable=layout.args_variable,
                remove_flags=frozenset(removed_names | override),
            )
        else:
            merged = merge_env(
                text or "",
                path,
                dataclasses.replace(placement, kubelet_flags={}),
                variable="__MLNODE_NONE__",
                remove_flags=frozenset(removed_names | override | set(ours)),
            )
        after = {name for name, _ in _flags_in(path, merged)}
        for name, written in before:
            if name in after:
                continue
            if name in removed_names:
                why = f"removed from the kubelet in {_removed_in(name)}: it would stop the kubelet"
            elif name in override:
                why = "a flag overrides the config file: it would shadow the new value"
            else:
                why = f"mlnode sets it in {layout.args_file}"
            removed.append(RemovedFlag(path, written, why))
        if merged != (text or ""):
            what = []
            if ours and is_target:
                what.append("set " + " ".join(f"--{k}" for k in ours))
            if any(r.path == path for r in removed):
                what.append("remove stale or overriding flags")
            stage(path, merged, "; ".join(what) or "kubelet flags")
    # Flags written literally in the unit cannot be edited safely: say so.
    for uf in layout.unit_files:
        from mlnode.formats.envfile import read_systemd_unit

        for f in read_systemd_unit(uf, layout.files.get(uf) or "").flags:
            if f.name in removed_names or f.name in override:
                warnings.append(
                    f"{uf}: ExecStart= passes {f.text} itself; mlnode does not edit unit "
                    "command lines: remove it by hand"
                )

    # 3. Runtime values ---------------------------------------------------------------------
    runtime_changed = False
    if placement.runtime_values:
        if runtime.kind is RuntimeKind.CONTAINERD:
            runtime_changed = _plan_containerd(layout, placement, current, stage)
        elif runtime.kind is RuntimeKind.CRIO:
            runtime_changed = _plan_crio(layout, placement, current, stage, warnings)
        else:
            raise ApplyRefused(
                f"{runtime.kind.value} settings are its own service's flags; mlnode apply does "
                "not edit them (see `mlnode render`)"
            )

    # 4. Notes for installers that re-render files ------------------------------------------
    if layout.kind is LayoutKind.KUBESPRAY and new:
        notes.append(
            "kubespray re-renders /etc/kubernetes/kubelet.env and kubelet-config.yaml on its "
            "next run: put these settings in the inventory too (`mlnode render --format "
            "kubespray ...`)"
            + (
                f", and add --config-dir={KUBEADM_CONFIG_DIR} to kubelet_custom_flags"
                if "config-dir" in extra_flags
                else ""
            )
        )
    if is_kubeadm and new:
        notes.append(
            "kubeadm's cluster-wide kubelet config (ConfigMap kube-system/kubelet-config) is "
            "unchanged; new nodes get it, not these values (docs/apply.md)"
        )

    edits = tuple(FileEdit(p, layout.files.get(p), t, reasons[p], units[p]) for p, t in new.items())
    kubelet_changed = any(e.unit == "kubelet" for e in edits)
    actions: list[ServiceAction] = []
    restarted: list[str] = []
    if edits:
        actions.append(
            ServiceAction(ActionKind.DAEMON_RELOAD, None, "re-read units and their drop-ins")
        )
    if runtime_changed:
        unit = runtime.kind.value
        actions.append(
            ServiceAction(ActionKind.RESTART, unit, f"{unit} reads its config only at start")
        )
        restarted.append(unit)
    if kubelet_changed:
        actions.append(
            ServiceAction(
                ActionKind.RESTART, "kubelet", "the kubelet reads flags and config at start"
            )
        )
        restarted.append("kubelet")
    expect_fields = dict(placement.kubelet_fields)
    for flag, value in kubelet_placement.kubelet_flags.items():
        row = kubelet_setting_by_flag(flag)
        if row is not None and row.field and row.field_span.contains(k8s):
            expect_fields[row.field] = placement.kubelet_fields.get(row.field, value)
    expectations = Expectations(
        units=tuple(restarted),
        check_healthz=kubelet_changed,
        kubelet_fields=expect_fields if kubelet_changed else {},
        runtime_values=tuple(
            RuntimeExpectation(pv.row.table, pv.row.name, pv.value)
            for pv in placement.runtime_values
        )
        if runtime_changed
        else (),
    )
    return ApplyPlan(
        layout=layout,
        settings=settings,
        placement=placement,
        edits=edits,
        actions=tuple(actions),
        removed_flags=tuple(removed),
        expectations=expectations,
        warnings=tuple(dict.fromkeys(warnings)),
        notes=tuple(notes),
    )


def _removed_in(flag: str) -> str:
    return next((str(r.removed_in) for r in REMOVED_FLAGS if r.flag == flag), "?")


def _plan_containerd(
    layout: NodeLayout,
    placement: Placement,
    current: Callable[[str], str | None],
    stage: Callable[..., None],
) -> bool:
    from mlnode.formats.containerd import merge_containerd, read_containerd, render_containerd

    names = {pv.row.name for pv in placement.runtime_values}
    target = _CONTAINERD_CONFIG
    # An imported file overrides the main one: edit the last file that already sets a key.
    for path in layout.containerd_files:
        text = current(path)
        if text is None:
            continue
        if any(v.name in names for v in read_containerd(path, text).runtime_values):
            target = path
    text = current(target)
    merged = (
        render_containerd(placement) if text is None else merge_containerd(text, target, placement)
    )
    before = text
    stage(target, merged, "containerd image settings", "containerd")
    return merged != before


def _plan_crio(
    layout: NodeLayout,
    placement: Placement,
    current: Callable[[str], str | None],
    stage: Callable[..., None],
    warnings: list[str],
) -> bool:
    from mlnode.formats.crio import DROPIN_SUGGESTED_PATH, merge_crio, read_crio, render_crio

    names = {pv.row.name for pv in placement.runtime_values}
    target = DROPIN_SUGGESTED_PATH
    for path in layout.crio_files:
        text = current(path)
        if text is None or (path <= target and path.startswith(_CRIO_DIR + "/")):
            continue
        if path.startswith(_CRIO_DIR + "/") and any(
            v.name in names for v in read_crio(path, text).runtime_values
        ):
            target = path  # it sorts after ours and would win: edit it instead
            warnings.append(f"{path} sorts after {DROPIN_SUGGESTED_PATH}: edited in place")
    text = current(target)
    merged = render_crio(placement) if text is None else merge_crio(text, target, placement)
    stage(target, merged, "CRI-O image settings drop-in", "crio")
    return merged != text


# --------------------------------------------------------------------------- lint gate


def _documents(layout: NodeLayout, files: Mapping[str, str | None]) -> list[ParsedDocument]:
    from mlnode.formats.base import DocumentKind
    from mlnode.formats.containerd import read_containerd
    from mlnode.formats.crio import read_crio
    from mlnode.formats.envfile import read_env, read_systemd_unit
    from mlnode.formats.kubelet_config import read_kubelet_config

    def hp(p: str) -> str:
        return str(host_path(layout.root, p))

    docs: list[ParsedDocument] = []
    for p in layout.unit_files:
        docs.append(read_systemd_unit(hp(p), files.get(p) or ""))
    for p in dict.fromkeys([*layout.env_files, *filter(None, [layout.args_file])]):
        text = files.get(p)
        if text is not None:
            docs.append(read_env(hp(p), text))
    if layout.config_file and files.get(layout.config_file) is not None:
        docs.append(read_kubelet_config(hp(layout.config_file), files[layout.config_file] or ""))
    dropins = sorted(
        p
        for p, t in files.items()
        if t is not None
        and p.endswith(".conf")
        and (
            (layout.config_dir and p.startswith(layout.config_dir.rstrip("/") + "/"))
            or p.startswith(KUBEADM_CONFIG_DIR + "/")
        )
    )
    for p in dropins:
        docs.append(read_kubelet_config(hp(p), files[p] or "", kind=DocumentKind.KUBELET_DROPIN))
    for p in sorted(
        p for p, t in files.items() if t is not None and p.startswith("/etc/containerd/")
    ):
        docs.append(read_containerd(hp(p), files[p] or ""))
    for p in sorted(p for p, t in files.items() if t is not None and p.startswith("/etc/crio/")):
        docs.append(read_crio(hp(p), files[p] or ""))
    return docs


def lint_plan(plan: ApplyPlan) -> list[str]:
    """Lint errors in the files as the plan leaves them (each ``path:line: CODE message``)."""
    from mlnode.lint.engine import LintContext, lint_documents
    from mlnode.lint.findings import Severity

    layout = plan.layout
    docs = _documents(layout, plan.new_files())
    report = lint_documents(
        docs, LintContext(plan.placement.kubernetes_version, plan.placement.runtime)
    )
    out = []
    for f in report.findings:
        if f.severity is not Severity.ERROR:
            continue
        where = ""
        if f.origin is not None:
            where = f"{f.origin.path}:{f.origin.line}: " if f.origin.line else f"{f.origin.path}: "
        out.append(f"{where}{f.code} {f.message}")
    return out


# --------------------------------------------------------------------------- execution


@dataclass(frozen=True)
class FileResult:
    path: str
    existed_before: bool
    sha256_before: str | None
    sha256_after: str | None
    change: str  # created | modified | restored | removed | unchanged

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "existed_before": self.existed_before,
            "sha256_before": self.sha256_before,
            "sha256_after": self.sha256_after,
            "change": self.change,
        }


@dataclass
class ApplyResult:
    """What :func:`execute_apply` did. ``status``: no-change | applied | written | restored."""

    plan: ApplyPlan
    status: str
    backup: BackupSet | None = None
    files: list[FileResult] = field(default_factory=list)
    actions_done: list[str] = field(default_factory=list)
    verification: VerificationReport | None = None
    restore_verification: VerificationReport | None = None
    error: str | None = None
    error_kind: str | None = None  # "verification" | "write" | "restart"

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_status(self) -> None:
        if self.error is None:
            return
        if self.error_kind == "verification":
            raise VerificationFailed(self.error)
        raise ApplyError(self.error)

    def to_json(self) -> dict[str, Any]:
        return _result_json(self.plan, self.status, self)


def _result_json(plan: ApplyPlan, status: str, result: ApplyResult | None) -> dict[str, Any]:
    files = []
    by_path = {f.path: f for f in (result.files if result else [])}
    for e in plan.edits:
        d = e.to_json()
        fr = by_path.get(e.path)
        if fr is not None:
            d["sha256_after"] = fr.sha256_after
            d["result"] = fr.change
        files.append(d)
    done = set(result.actions_done) if result else set()
    return {
        "schema": "mlnode.apply/v1",
        "status": status,
        "root": str(plan.layout.root),
        "layout": plan.layout.to_json(),
        "files": files,
        "removed_flags": [r.to_json() for r in plan.removed_flags],
        "actions": [
            {**a.to_json(), "command": str(a), "done": str(a) in done or _described(a, done)}
            for a in plan.actions
        ],
        "verification": result.verification.to_json() if result and result.verification else None,
        "restore_verification": (
            result.restore_verification.to_json()
            if result and result.restore_verification
            else None
        ),
        "backup": (
            {"id": result.backup.id, "path": str(result.backup.directory)}
            if result and result.backup
            else None
        ),
        "warnings": list(plan.warnings),
        "notes": list(plan.notes) + list(plan.layout.notes),
        "error": result.error if result else None,
    }


def _described(action: ServiceAction, done: set[str]) -> bool:
    tail = "daemon-reload" if action.kind is ActionKind.DAEMON_RELOAD else f"restart {action.unit}"
    return any(d.endswith(tail) for d in done)


def _units_of(paths: Sequence[str]) -> list[str]:
    units = []
    if any(p.startswith("/etc/containerd/") for p in paths):
        units.append("containerd")
    if any(p.startswith("/etc/crio/") for p in paths):
        units.append("crio")
    if any(not p.startswith(("/etc/containerd/", "/etc/crio/")) for p in paths):
        units.append("kubelet")
    return units


def _restart_actions(units: Sequence[str], reason: str) -> list[ServiceAction]:
    return [ServiceAction(ActionKind.DAEMON_RELOAD, None, reason)] + [
        ServiceAction(ActionKind.RESTART, u, reason) for u in units
    ]


def _health(units: Sequence[str]) -> Expectations:
    return Expectations(units=tuple(units), check_healthz="kubelet" in units)


def execute_apply(
    plan: ApplyPlan,
    *,
    services: ServiceManager,
    verifier: Verifier | None = None,
    timeout_seconds: float = 120.0,
    restart: bool = True,
    write: Callable[..., None] = atomic_write,
    now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
) -> ApplyResult:
    """Carry out ``plan``: lock, back up, write atomically, restart, verify; restore on failure.

    Raises :class:`LockHeld` when another apply runs, :class:`ApplyError` when the files
    changed since the plan was made. Failures after the backup are *returned* (status
    ``restored``, ``error`` set; :meth:`ApplyResult.raise_for_status` raises them).
    """
    root = plan.layout.root
    if plan.no_changes:
        return ApplyResult(plan, "no-change")
    lock = ApplyLock(root)
    try:
        lock.acquire()
    except PermissionError as e:
        raise ApplyError(f"{lock.path}: permission denied (run as root)") from e
    try:
        return _execute_locked(plan, services, verifier, timeout_seconds, restart, write, now)
    finally:
        lock.release()


def _execute_locked(
    plan: ApplyPlan,
    services: ServiceManager,
    verifier: Verifier | None,
    timeout_seconds: float,
    restart: bool,
    write: Callable[..., None],
    now: Callable[[], _dt.datetime],
) -> ApplyResult:
    root = plan.layout.root
    for e in plan.edits:
        if file_sha256(host_path(root, e.path)) != e.sha256_before:
            raise ApplyError(
                f"{host_path(root, e.path)} changed since the plan was made; run again"
            )
    units = [a.unit for a in plan.actions if a.kind is ActionKind.RESTART and a.unit]
    try:
        backup = create_backup(
            root,
            [e.path for e in plan.edits],
            command="apply",
            extra={"units": units, "settings": _settings_json(plan.settings)},
            now=now,
        )
    except OSError as err:
        raise ApplyError(f"cannot create the backup set, nothing written: {err}") from err
    result = ApplyResult(plan, "written", backup=backup)
    written: list[str] = []
    try:
        for e in plan.edits:
            write(host_path(root, e.path), e.new_text.encode())
            written.append(e.path)
    except Exception as exc:  # any failure mid-way: put every file back
        restore_backup(root, backup)
        update_backup(backup, status="restored")
        result.status = "restored"
        result.error = (
            f"writing {host_path(root, plan.edits[len(written)].path)} failed ({exc}); "
            f"restored {len(plan.edits)} file(s) from backup {backup.id}"
        )
        result.error_kind = "write"
        result.files = _file_results(plan, root, restored=True)
        return result
    result.backup = backup = update_backup(backup, status="written", root=root)
    result.files = _file_results(plan, root, restored=False)
    if not restart:
        return result
    try:
        result.actions_done = perform(services, plan.actions)
    except ApplyError as exc:
        return _rollback_after_failure(
            plan, result, services, verifier, timeout_seconds, f"restart failed: {exc}", "restart"
        )
    if verifier is not None:
        report = verifier.verify(plan.expectations, timeout_seconds)
        result.verification = report
        if not report.ok:
            return _rollback_after_failure(
                plan, result, services, verifier, timeout_seconds, report.summary(), "verification"
            )
    result.backup = update_backup(backup, status="applied")
    result.status = "applied"
    return result


def _rollback_after_failure(
    plan: ApplyPlan,
    result: ApplyResult,
    services: ServiceManager,
    verifier: Verifier | None,
    timeout_seconds: float,
    why: str,
    kind: str,
) -> ApplyResult:
    root = plan.layout.root
    assert result.backup is not None
    restore_backup(root, result.backup)
    result.backup = update_backup(result.backup, status="restored")
    result.files = _file_results(plan, root, restored=True)
    units = [a.unit for a in plan.actions if a.kind is ActionKind.RESTART and a.unit]
    restart_note = ""
    try:
        result.actions_done += perform(services, _restart_actions(units, "after restoring"))
    except ApplyError as exc:
        restart_note = f"; restarting after the restore failed too: {exc}"
    if verifier is not None and not restart_note:
        health = verifier.verify(_health(units), timeout_seconds)
        result.restore_verification = health
        if not health.ok:
            restart_note = f"; after the restore: {health.summary()}"
    result.status = "restored"
    result.error_kind = kind
    result.error = (
        f"{why}; restored {len(plan.edits)} file(s) from backup {result.backup.id}{restart_note}"
    )
    return result


def _file_results(plan: ApplyPlan, root: Path, *, restored: bool) -> list[FileResult]:
    out = []
    for e in plan.edits:
        after = file_sha256(host_path(root, e.path))
        if restored:
            change = "restored" if e.old_text is not None else "removed"
        else:
            change = "created" if e.old_text is None else "modified"
        out.append(FileResult(e.path, e.old_text is not None, e.sha256_before, after, change))
    return out


def _settings_json(settings: ImageSettings) -> dict[str, Any]:
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in settings.set_fields().items()}


# --------------------------------------------------------------------------- rollback


@dataclass
class RollbackResult:
    backup: BackupSet
    status: str  # rolled-back | restored-unhealthy
    files: list[FileResult] = field(default_factory=list)
    actions: list[ServiceAction] = field(default_factory=list)
    actions_done: list[str] = field(default_factory=list)
    verification: VerificationReport | None = None
    error: str | None = None

    def raise_for_status(self) -> None:
        if self.error is not None:
            raise VerificationFailed(self.error)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "mlnode.rollback/v1",
            "status": self.status,
            "backup": {
                "id": self.backup.id,
                "path": str(self.backup.directory),
                "created_at": self.backup.created_at,
                "command": self.backup.command,
            },
            "files": [f.to_json() for f in self.files],
            "actions": [
                {**a.to_json(), "command": str(a), "done": _described(a, set(self.actions_done))}
                for a in self.actions
            ],
            "verification": self.verification.to_json() if self.verification else None,
            "error": self.error,
        }


_ROLLBACK_FROM = ("prepared", "written", "applied")


def execute_rollback(
    root: Path,
    *,
    backup_id: str | None = None,
    services: ServiceManager,
    verifier: Verifier | None = None,
    timeout_seconds: float = 120.0,
    restart: bool = True,
) -> RollbackResult:
    """Restore the newest backup set that is not already undone (or ``backup_id``),
    then restart what it touched and check the services come back healthy.

    An interrupted apply (status ``prepared``: the process died mid-way) is rolled back too.
    """
    root = root.resolve()
    lock = ApplyLock(root)
    lock.acquire()
    try:
        backup = (
            load_backup(root, backup_id)
            if backup_id
            else latest_backup(root, statuses=_ROLLBACK_FROM)
        )
        restored = restore_backup(root, backup)
        files = [
            FileResult(
                r.path,
                backup.entry(r.path).existed,
                r.sha256_before,
                r.sha256_after,
                r.action,
            )
            for r in restored
        ]
        backup = update_backup(backup, status="rolled-back")
        changed = [r.path for r in restored if r.action != "unchanged"]
        units = list(backup.extra.get("units") or _units_of([e.path for e in backup.entries]))
        actions = _restart_actions(units, f"rollback to before {backup.id}") if changed else []
        result = RollbackResult(backup, "rolled-back", files, actions)
        if not restart or not actions:
            return result
        try:
            result.actions_done = perform(services, actions)
        except ApplyError as exc:
            result.status = "restored-unhealthy"
            result.error = f"files restored from {backup.id}, but {exc}"
            return result
        if verifier is not None:
            result.verification = verifier.verify(_health(units), timeout_seconds)
            if not result.verification.ok:
                result.status = "restored-unhealthy"
                result.error = (
                    f"files restored from {backup.id}, but {result.verification.summary()}"
                )
        return result
    finally:
        lock.release()


def interrupted_backups(root: Path) -> list[BackupSet]:
    """Backup sets of applies that died before finishing (status ``prepared``)."""
    return [b for b in list_backups(root) if b.status == "prepared"]
