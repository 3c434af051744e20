"""A kubelet stand-in: a real process that starts, or refuses to, the way the kubelet does.

It builds its command line from the systemd unit and its drop-ins under ``--root``, as
systemd would (``Environment=``, ``EnvironmentFile=``, ``ExecStart=`` with ``$VAR`` split into
words and ``${VAR}`` kept as one), then behaves like the kubelet of ``--version``:

* an unknown flag stops it: "failed to parse kubelet flag: unknown flag: --x" (exit 1);
* ``--config-dir`` on 1.28/1.29 without KUBELET_CONFIG_DROPIN_DIR_ALPHA stops it;
* the config file, then the drop-ins (``*.conf``, by name), then the flags are merged, and
  the merged image settings are validated with the kubelet's rules
  (:mod:`mlnode.knowledge.validation`); a failure stops it with
  "failed to validate kubelet configuration, error: …";
* otherwise it serves ``/healthz`` ("ok") and ``/configz`` (``{"kubeletconfig": {...}}``,
  the merged configuration) on ``127.0.0.1:--port`` until SIGTERM.

``python standin_kubelet.py --root R --version 1.30.2 --port 0 --state-dir S`` also writes
``S/kubelet.argv.json`` (the argv it was given by "systemd") for tests to look at.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from ruamel.yaml import YAML

from mlnode.knowledge.placement import feature_gate_default, file_value
from mlnode.knowledge.table import (
    FEATURE_GATES,
    KUBELET_SETTINGS,
    kubelet_setting_by_field,
    kubelet_setting_by_flag,
)
from mlnode.knowledge.validation import validate_kubelet
from mlnode.knowledge.values import parse_field_value, parse_flag_value
from mlnode.versions import Version

UNIT_DIRS = (
    "usr/lib/systemd/system",
    "lib/systemd/system",
    "etc/systemd/system",
    "run/systemd/system",
)

# Flags the kubelet has in every version we test, besides the image settings (which come
# from mlnode's knowledge table with their version spans). Used when the researched
# per-version list (src/mlnode/knowledge/data/kubelet_flags.json) has no entry.
_COMMON_FLAGS = {
    "config",
    "config-dir",
    "kubeconfig",
    "bootstrap-kubeconfig",
    "container-runtime-endpoint",
    "image-service-endpoint",
    "pod-infra-container-image",
    "node-ip",
    "hostname-override",
    "v",
    "node-labels",
    "register-with-taints",
    "runtime-cgroups",
    "cgroup-driver",
    "cloud-provider",
    "feature-gates",
    "rotate-certificates",
    "fail-swap-on",
    "cluster-dns",
    "cluster-domain",
    "address",
    "port",
    "healthz-port",
    "healthz-bind-address",
    "root-dir",
    "max-pods",
    "kube-reserved",
    "system-reserved",
}
_BOOL_FLAGS = {"rotate-certificates", "fail-swap-on", "serialize-image-pulls"}
# Flags added in a release: (flag, first version with it).
_ADDED = {"config-dir": Version(1, 28)}
# Flags removed in a release: (flag, first version without it).
_REMOVED = {
    "container-runtime": Version(1, 27),
    "network-plugin": Version(1, 24),
    "logtostderr": Version(1, 26),
    "pod-infra-container-image": Version(1, 35),
}


class StartFailure(Exception):
    """The kubelet would exit: the message is the one it logs."""


# ------------------------------------------------------------------ systemd emulation


def _logical_lines(text: str) -> list[str]:
    out: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and (line.lstrip().startswith("#") or line.lstrip().startswith(";")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        out.append(buf + line)
        buf = ""
    if buf:
        out.append(buf)
    return out


def unit_files(root: Path, unit: str) -> list[Path]:
    """The unit file (last directory wins) and its drop-ins, in systemd's order."""
    main: Path | None = None
    for d in UNIT_DIRS:
        p = root / d / f"{unit}.service"
        if p.is_file():
            main = p if main is None or d.startswith(("etc", "run")) else main
    dropins: dict[str, Path] = {}
    for d in UNIT_DIRS:  # later directories override same-named drop-ins
        dd = root / d / f"{unit}.service.d"
        if dd.is_dir():
            for p in dd.glob("*.conf"):
                dropins[p.name] = p
    files = [main] if main else []
    return files + [dropins[n] for n in sorted(dropins)]


def parse_env_file(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in _logical_lines(text):
        s = line.strip()
        if not s or "=" not in s:
            continue
        key, _, value = s.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        value = value.strip()
        if value and value[0] in "\"'":
            words = shlex.split(value)  # systemd removes the quotes and their escapes
            env[key] = words[0] if words else ""
        else:
            env[key] = value
    return env


def systemd_command(root: Path, unit: str = "kubelet") -> tuple[list[str], dict[str, str]]:
    """The argv and environment systemd would start ``unit`` with."""
    environment: dict[str, str] = {}
    env_files: list[tuple[str, bool]] = []
    exec_start: list[str] = []
    for f in unit_files(root, unit):
        section = ""
        for line in _logical_lines(f.read_text()):
            s = line.strip()
            if s.startswith("["):
                section = s
                continue
            if section != "[Service]" or "=" not in s:
                continue
            key, _, value = s.partition("=")
            key, value = key.strip(), value.strip()
            if key == "Environment":
                for word in shlex.split(value):
                    k, _, v = word.partition("=")
                    environment[k] = v
            elif key == "EnvironmentFile":
                optional = value.startswith("-")
                env_files.append((value.lstrip("-"), optional))
            elif key == "ExecStart":
                if value == "":
                    exec_start = []
                else:
                    exec_start.append(value.lstrip("-@+!:"))
    for path, optional in env_files:
        p = root / path.lstrip("/")
        if not p.is_file():
            if optional:
                continue
            raise StartFailure(f"Failed to load environment files: {path}")
        environment.update(parse_env_file(p.read_text()))
    if len(exec_start) != 1:
        raise StartFailure(f"{unit}.service: {len(exec_start)} ExecStart= lines (need 1)")
    argv: list[str] = []
    for word in shlex.split(exec_start[0]):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:
            argv.extend(environment.get(m.group(1), "").split())
            continue
        argv.append(
            re.sub(
                r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda mm: environment.get(mm.group(1), ""), word
            )
        )
    return argv, environment


# ------------------------------------------------------------------ kubelet emulation


def known_flags(version: Version) -> set[str]:
    data = Path(__file__).resolve().parents[2] / "src/mlnode/knowledge/data/kubelet_flags.json"
    try:
        versions = json.loads(data.read_text()).get("versions", {})
    except (OSError, ValueError):
        versions = {}
    entry = versions.get(f"{version.major}.{version.minor}")
    if isinstance(entry, dict) and entry.get("flags"):
        names = (
            set(entry["flags"]) | set(entry.get("deprecated", {})) | set(entry.get("hidden", []))
        )
        return {n.lstrip("-").replace("_", "-") for n in names}
    flags = {f for f in _COMMON_FLAGS if not (f in _REMOVED and version.at_least(_REMOVED[f]))}
    flags -= {f for f, since in _ADDED.items() if not version.at_least(since)}
    flags |= {f for f in _REMOVED if not version.at_least(_REMOVED[f])}
    for row in KUBELET_SETTINGS:
        if row.flag and row.flag_span.contains(version):
            flags.add(row.flag)
    return flags


def parse_flags(args: list[str], version: Version) -> list[tuple[str, str | None]]:
    known = known_flags(version)
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if not word.startswith("--"):
            continue  # positional arguments are ignored by the kubelet
        name, eq, value = word[2:].partition("=")
        name = name.replace("_", "-")  # pflag's WordSepNormalizeFunc
        if name not in known:
            raise StartFailure(f"failed to parse kubelet flag: unknown flag: --{name}")
        if not eq:
            if name in _BOOL_FLAGS:
                out.append((name, None))
                continue
            if i >= len(args):
                raise StartFailure(
                    f"failed to parse kubelet flag: flag needs an argument: --{name}"
                )
            value = args[i]
            i += 1
        out.append((name, value))
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _load_config(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = YAML(typ="safe").load(path.read_text())
    except OSError as e:
        raise StartFailure(f"failed to load kubelet config file, path: {path}, error: {e}") from e
    if (
        not isinstance(doc, dict)
        or doc.get("kind") != "KubeletConfiguration"
        or not doc.get("apiVersion")
    ):
        raise StartFailure(f"failed to load {what} {path}: apiVersion and kind are required")
    return {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}


def effective_config(
    argv: list[str], env: dict[str, str], root: Path, version: Version
) -> dict[str, Any]:
    flags = parse_flags(argv[1:], version)
    by_name: dict[str, str | None] = {}
    for name, value in flags:
        by_name[name] = value
    config: ClassVar[dict[str, Any]] = {}
    if by_name.get("config"):
        config = _load_config(root / str(by_name["config"]).lstrip("/"), "kubelet config file")
    config_dir = by_name.get("config-dir")
    if config_dir:
        if version.minor_line < (1, 30) and "KUBELET_CONFIG_DROPIN_DIR_ALPHA" not in env:
            raise StartFailure(
                "flag --config-dir specified but environment variable "
                "KUBELET_CONFIG_DROPIN_DIR_ALPHA not set, cannot start kubelet"
            )
        d = root / config_dir.lstrip("/")
        if d.is_dir():
            for p in sorted(d.iterdir(), key=lambda x: x.name):
                if p.name.endswith(".conf") and p.is_file():
                    config = _merge(config, _load_config(p, "drop-in"))
    # Typed image settings: fields first, then flags override.
    settings: dict[str, Any] = {}
    for name, value in config.items():
        row = kubelet_setting_by_field(name)
        if row is None or not row.field_span.contains(version):
            continue
        try:
            settings[row.key] = parse_field_value(row, value)
        except ValueError as e:
            raise StartFailure(f"failed to load kubelet config file, error: {e}") from e
    for name, value in flags:
        row = kubelet_setting_by_flag(name)
        if row is None:
            continue
        try:
            settings[row.key] = parse_flag_value(row, value)
        except ValueError as e:
            raise StartFailure(f"failed to parse kubelet flag: {e}") from e
        if row.field and row.field_span.contains(version):
            config[row.field] = file_value(row.kind, settings[row.key])
    gates = {g.gate: bool(feature_gate_default(g.gate, version)) for g in FEATURE_GATES}
    gates.update({k: bool(v) for k, v in dict(config.get("featureGates") or {}).items()})
    failures = validate_kubelet(settings, version, gates)
    if failures:
        raise StartFailure(
            "failed to validate kubelet configuration, error: "
            + ", ".join(f.message for f in failures)
        )
    # configz shows defaults for what is unset.
    for row in KUBELET_SETTINGS:
        unset = row.field and row.field_span.contains(version) and row.field not in config
        if unset and row.field and row.default is not None:
            config[row.field] = file_value(row.kind, row.default)
    return config


class _Handler(BaseHTTPRequestHandler):
    config: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        if self.path == "/healthz":
            body, ctype = b"ok", "text/plain"
        elif self.path == "/configz":
            body = json.dumps({"kubeletconfig": self.config}).encode()
            ctype = "application/json"
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--unit", default="kubelet")
    ns = ap.parse_args(argv)
    version = Version.parse(ns.version)
    ns.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        cmd, env = systemd_command(ns.root, ns.unit)
        (ns.state_dir / "kubelet.argv.json").write_text(json.dumps(cmd))
        config = effective_config(cmd, env, ns.root, version)
    except StartFailure as e:
        print(f'E0000 run.go:74] "command failed" err="{e}"', file=sys.stderr, flush=True)
        return 1
    _Handler.config = config
    server = ThreadingHTTPServer(("127.0.0.1", ns.port), _Handler)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"serving on 127.0.0.1:{server.server_address[1]} pid {os.getpid()}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
