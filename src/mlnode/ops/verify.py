"""Checking, after a restart, that the node runs with the values just written.

Within a timeout, :class:`Verifier` polls until every check passes twice in a row (a kubelet
that exits on a bad flag can look "active" for a moment):

* each unit restarted is active (through the :class:`~mlnode.ops.services.ServiceManager`);
* the kubelet's healthz (``http://127.0.0.1:10248/healthz`` by default) answers ``ok``;
* the live kubelet configuration shows every field the apply set. Its source is a
  :class:`ConfigzSource`: a URL answering ``{"kubeletconfig": {...}}`` (the kubelet's own
  ``/configz`` needs authentication on port 10250, so locally this is usually a proxy) or
  ``kubectl get --raw /api/v1/nodes/NODE/proxy/configz``;
* when the runtime's config changed, the runtime's effective config (``containerd config
  dump`` or ``crio config``) holds each value.

Every port (HTTP GET, command runner, clock, sleep) is injectable.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlnode.errors import MlnodeError
from mlnode.node import Runner, run_command
from mlnode.ops.services import ServiceManager
from mlnode.units import parse_go_duration

__all__ = [
    "DEFAULT_HEALTHZ_URL",
    "Check",
    "CommandConfigzSource",
    "CommandRuntimeConfig",
    "ConfigzSource",
    "Expectations",
    "HttpGet",
    "RuntimeConfigSource",
    "RuntimeExpectation",
    "SourceUnavailable",
    "UrlConfigzSource",
    "VerificationReport",
    "Verifier",
    "containerd_config_dump",
    "crio_config_dump",
    "http_get",
    "kubectl_configz",
    "values_match",
]

DEFAULT_HEALTHZ_URL = "http://127.0.0.1:10248/healthz"

HttpGet = Callable[[str, float], tuple[int, str]]
"""(url, timeout seconds) -> (status, body); raises OSError when nothing answers."""


def http_get(url: str, timeout_seconds: float) -> tuple[int, str]:
    import httpx

    try:
        resp = httpx.get(url, timeout=timeout_seconds)
    except httpx.HTTPError as e:
        raise OSError(f"GET {url}: {e}") from e
    return resp.status_code, resp.text


class SourceUnavailable(MlnodeError):
    """A configz or runtime-config source gave no usable answer (this attempt).

    Internal: :class:`Verifier` catches it and records a failed check (retried until the
    deadline); it never reaches the user as an exception. It is an ``MlnodeError`` anyway,
    so a source used elsewhere (the agent) cannot leak a bare exception.
    """


class ConfigzSource(Protocol):
    def fetch(self) -> Mapping[str, Any]:
        """The live ``kubeletconfig`` object; raises SourceUnavailable."""
        ...

    def describe(self) -> str: ...


def _kubeletconfig(body: str, where: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise SourceUnavailable(f"{where}: not JSON: {e}") from e
    cfg = doc.get("kubeletconfig") if isinstance(doc, dict) else None
    if not isinstance(cfg, dict):
        raise SourceUnavailable(f'{where}: no "kubeletconfig" object in the answer')
    return cfg


@dataclass(frozen=True)
class UrlConfigzSource:
    """A URL that serves the kubelet's configz JSON without further authentication."""

    url: str
    get: HttpGet = http_get
    timeout_seconds: float = 5.0

    def fetch(self) -> Mapping[str, Any]:
        try:
            status, body = self.get(self.url, self.timeout_seconds)
        except OSError as e:
            raise SourceUnavailable(str(e)) from e
        if status != 200:
            raise SourceUnavailable(f"GET {self.url}: HTTP {status}")
        return _kubeletconfig(body, self.url)

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class CommandConfigzSource:
    """A command printing the configz JSON, e.g. ``kubectl get --raw …/proxy/configz``."""

    argv: tuple[str, ...]
    runner: Runner = run_command

    def fetch(self) -> Mapping[str, Any]:
        result = self.runner(self.argv)
        if not result.ok:
            raise SourceUnavailable(result.describe())
        return _kubeletconfig(result.stdout, " ".join(self.argv))

    def describe(self) -> str:
        return " ".join(self.argv)


def kubectl_configz(
    node: str, *, runner: Runner = run_command, kubectl: str = "kubectl"
) -> CommandConfigzSource:
    return CommandConfigzSource(
        (kubectl, "get", "--raw", f"/api/v1/nodes/{node}/proxy/configz"), runner
    )


class RuntimeConfigSource(Protocol):
    def dump(self) -> Mapping[str, Any]:
        """The runtime's effective configuration as parsed TOML; raises SourceUnavailable."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class CommandRuntimeConfig:
    """A command that prints the runtime's effective TOML config."""

    argv: tuple[str, ...]
    runner: Runner = run_command

    def dump(self) -> Mapping[str, Any]:
        result = self.runner(self.argv)
        if not result.ok:
            raise SourceUnavailable(result.describe())
        try:
            return tomllib.loads(result.stdout)
        except tomllib.TOMLDecodeError as e:
            raise SourceUnavailable(f"{' '.join(self.argv)}: output is not TOML: {e}") from e

    def describe(self) -> str:
        return " ".join(self.argv)


def containerd_config_dump(
    *, runner: Runner = run_command, containerd: str = "containerd"
) -> CommandRuntimeConfig:
    return CommandRuntimeConfig((containerd, "config", "dump"), runner)


def crio_config_dump(*, runner: Runner = run_command, crio: str = "crio") -> CommandRuntimeConfig:
    return CommandRuntimeConfig((crio, "config"), runner)


@dataclass(frozen=True)
class RuntimeExpectation:
    table: tuple[str, ...]
    name: str
    value: Any

    @property
    def key(self) -> str:
        return ".".join((*self.table, self.name))


@dataclass(frozen=True)
class Expectations:
    """What must hold after a restart."""

    units: tuple[str, ...] = ("kubelet",)
    check_healthz: bool = True
    kubelet_fields: Mapping[str, Any] = field(default_factory=dict)
    runtime_values: tuple[RuntimeExpectation, ...] = ()


@dataclass(frozen=True)
class Check:
    name: str  # "unit kubelet active", "healthz", "configz imageGCHighThresholdPercent", ...
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class VerificationReport:
    checks: tuple[Check, ...]
    attempts: int
    elapsed_seconds: float
    timeout_seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def summary(self) -> str:
        if self.ok:
            return f"verified in {self.elapsed_seconds:.1f}s ({len(self.checks)} checks)"
        bad = "; ".join(f"{c.name}: {c.detail}" for c in self.failures())
        return f"not verified within {self.timeout_seconds:g}s: {bad}"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "attempts": self.attempts,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "timeout_seconds": self.timeout_seconds,
            "checks": [c.to_json() for c in self.checks],
        }


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ("duration", parse_go_duration(value))
        except ValueError:
            return value
    return value


def values_match(expected: Any, actual: Any) -> bool:
    """Equal as the kubelet means it: ``30m`` == ``30m0s``, maps compared key by key."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping) or set(expected) != set(actual):
            return False
        return all(str(expected[k]) == str(actual[k]) for k in expected)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    ne, na = _norm(expected), _norm(actual)
    if isinstance(ne, tuple) and isinstance(na, tuple):
        return bool(abs(ne[1] - na[1]) < 1e-9)
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    same: bool = expected == actual
    return same


def _lookup(doc: Mapping[str, Any], table: tuple[str, ...], name: str) -> tuple[bool, Any]:
    node: Any = doc
    for part in table:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    if not isinstance(node, Mapping) or name not in node:
        return False, None
    return True, node[name]


class Verifier:
    """Polls the node until the expectations hold or the timeout passes."""

    def __init__(
        self,
        services: ServiceManager,
        *,
        healthz_url: str = DEFAULT_HEALTHZ_URL,
        get: HttpGet = http_get,
        configz: ConfigzSource | None = None,
        runtime_config: RuntimeConfigSource | None = None,
        interval_seconds: float = 1.0,
        passes_required: int = 2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.services = services
        self.healthz_url = healthz_url
        self.get = get
        self.configz = configz
        self.runtime_config = runtime_config
        self.interval_seconds = interval_seconds
        self.passes_required = max(1, passes_required)
        self.clock = clock
        self.sleep = sleep

    def check_once(self, expect: Expectations) -> list[Check]:
        checks: list[Check] = []
        for unit in expect.units:
            active = self.services.is_active(unit)
            checks.append(Check(f"unit {unit} active", active, "" if active else "not active"))
        if expect.check_healthz:
            checks.append(self._healthz())
        if expect.kubelet_fields:
            checks.extend(self._configz(expect.kubelet_fields))
        if expect.runtime_values:
            checks.extend(self._runtime(expect.runtime_values))
        return checks

    def _healthz(self) -> Check:
        try:
            status, body = self.get(self.healthz_url, 3.0)
        except OSError as e:
            return Check("kubelet healthz", False, str(e))
        if status == 200 and body.strip() == "ok":
            return Check("kubelet healthz", True, self.healthz_url)
        return Check("kubelet healthz", False, f"{self.healthz_url}: HTTP {status} {body[:200]!r}")

    def _configz(self, fields: Mapping[str, Any]) -> list[Check]:
        if self.configz is None:
            return [
                Check(f"configz {name}", True, "not checked (no configz source)") for name in fields
            ]
        try:
            live = self.configz.fetch()
        except SourceUnavailable as e:
            return [Check(f"configz {name}", False, str(e)) for name in fields]
        out = []
        for name, want in fields.items():
            if name not in live:
                out.append(Check(f"configz {name}", False, f"absent (want {want!r})"))
            elif values_match(want, live[name]):
                out.append(Check(f"configz {name}", True, f"{live[name]!r}"))
            else:
                out.append(Check(f"configz {name}", False, f"{live[name]!r}, want {want!r}"))
        return out

    def _runtime(self, values: tuple[RuntimeExpectation, ...]) -> list[Check]:
        if self.runtime_config is None:
            return [Check(f"runtime {v.key}", True, "not checked (no source)") for v in values]
        try:
            doc = self.runtime_config.dump()
        except SourceUnavailable as e:
            return [Check(f"runtime {v.key}", False, str(e)) for v in values]
        out = []
        for v in values:
            found, actual = _lookup(doc, v.table, v.name)
            if not found:
                out.append(Check(f"runtime {v.key}", False, f"absent (want {v.value!r})"))
            elif values_match(v.value, actual):
                out.append(Check(f"runtime {v.key}", True, f"{actual!r}"))
            else:
                out.append(Check(f"runtime {v.key}", False, f"{actual!r}, want {v.value!r}"))
        return out

    def verify(self, expect: Expectations, timeout_seconds: float) -> VerificationReport:
        start = self.clock()
        deadline = start + timeout_seconds
        attempts = 0
        streak = 0
        while True:
            attempts += 1
            checks = self.check_once(expect)
            streak = streak + 1 if all(c.ok for c in checks) else 0
            now = self.clock()
            if streak >= self.passes_required or now >= deadline:
                return VerificationReport(tuple(checks), attempts, now - start, timeout_seconds)
            self.sleep(min(self.interval_seconds, max(0.0, deadline - now)))
