"""The agent's configuration (``mlnode.agent.config/v1``): one YAML file, validated whole
before anything starts (a bad value is one ``file:line`` error, exit 2).

```yaml
node_name: gpu-node-1          # default: $NODE_NAME, else the hostname
node_labels: {}                # used when the Kubernetes API is not reachable
runtime_endpoint: unix:///run/containerd/containerd.sock   # default: discovered
image_fs: /var/lib/containerd  # default: the runtime's image filesystem
state_dir: /var/lib/mlnode/agent
listen: 127.0.0.1:9478         # /metrics /healthz /readyz /mlnode/v1/agent/status
interval_seconds: 5            # the control loop's period
headroom:
  target_bytes: auto           # free bytes to keep; auto = the largest image (warm set or
  concurrent_pulls: 1          #   seen) x (1 + unpack_factor) x concurrent_pulls
  reserve_bytes: 1GiB          #   + reserve_bytes
  unpack_factor: 2.0           # unpacked size / compressed size (CRI reports compressed)
  kubelet_high_threshold_percent: 85   # the kubelet's; usage is kept a point below it
gc:
  minimum_age_seconds: 120     # never remove an image first seen less than this ago
  keep: []                     # glob patterns of image names never removed
warm:
  concurrency: 2               # warm pulls at once
  backoff_seconds: 10          # first retry after a failed warm pull (doubles, jittered)
  backoff_max_seconds: 600
  pull_timeout_seconds: 3600   # one warm pull, at most
  pin: false                   # label warm images pinned where the runtime supports it
  images:
    - image: registry.example:5000/ml/train:v3
      node_selector: {nvidia.com/gpu.present: "true"}   # matchLabels; absent: every node
  config_map: {namespace: mlnode-system, name: mlnode-warm}   # data key "images"
mirror:
  enabled: false               # host `mlnode mirror` inside the agent
  config: /etc/mlnode/mirror.yaml
kubernetes:
  enabled: auto                # auto | true | false
  kubeconfig: ""               # default: the in-cluster service account
  events: true
  annotate_node: false         # needs nodes/patch (not in deploy/kubernetes' RBAC)
log_format: text               # text | json
```
Relative paths are relative to the file.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlnode.errors import InputError, InvalidValue, UsageError
from mlnode.formats.yamlfile import read_yaml_file, yaml_line
from mlnode.registry.reference import parse_reference
from mlnode.units import parse_bytes

__all__ = [
    "DEFAULT_AGENT_LISTEN",
    "DEFAULT_STATE_DIR",
    "AgentConfig",
    "HeadroomConfig",
    "KubeConfig",
    "LineError",
    "WarmImage",
    "load_config",
    "parse_warm_images",
]

DEFAULT_AGENT_LISTEN = "127.0.0.1:9478"
DEFAULT_STATE_DIR = Path("/var/lib/mlnode/agent")
DEFAULT_MIRROR_CONFIG = Path("/etc/mlnode/mirror.yaml")
_GiB = 1024**3


@dataclass(frozen=True)
class WarmImage:
    """An image to keep present on nodes whose labels match ``node_selector``."""

    image: str
    node_selector: Mapping[str, str] = field(default_factory=dict)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.node_selector.items())


@dataclass(frozen=True)
class HeadroomConfig:
    #: free bytes to keep; None = auto (largest x (1 + unpack) x concurrent + reserve)
    target_bytes: int | None = None
    concurrent_pulls: int = 1
    reserve_bytes: int = _GiB
    #: a layer's unpacked size / its compressed size: CRI reports an image's compressed
    #: size, while a pull lands the compressed content and the unpacked snapshot
    unpack_factor: float = 2.0
    #: the node kubelet's imageGCHighThresholdPercent: the agent keeps usage a point below
    kubelet_high_threshold_percent: int = 85


@dataclass(frozen=True)
class KubeConfig:
    #: "auto", "true" or "false"
    enabled: str = "auto"
    kubeconfig: Path | None = None
    events: bool = True
    annotate_node: bool = False


@dataclass(frozen=True)
class AgentConfig:
    node_name: str = ""
    node_labels: Mapping[str, str] = field(default_factory=dict)
    runtime_endpoint: str | None = None
    image_fs: Path | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    listen: str = DEFAULT_AGENT_LISTEN
    interval_seconds: float = 5.0
    headroom: HeadroomConfig = HeadroomConfig()
    gc_minimum_age_seconds: float = 120.0
    gc_keep: tuple[str, ...] = ()
    warm_concurrency: int = 2
    warm_backoff_seconds: float = 10.0
    warm_backoff_max_seconds: float = 600.0
    warm_pull_timeout_seconds: float = 3600.0
    warm_pin: bool = False
    warm_images: tuple[WarmImage, ...] = ()
    #: (namespace, name) of a ConfigMap with more warm images
    warm_config_map: tuple[str, str] | None = None
    mirror_enabled: bool = False
    mirror_config: Path = DEFAULT_MIRROR_CONFIG
    kubernetes: KubeConfig = KubeConfig()
    log_format: str = "text"
    #: the file it was read from (for reloads and messages)
    source: Path | None = None

    @property
    def listen_host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        host = self.listen_host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.listen_port}"

    def state_file(self) -> Path:
        """The ml GC's first-seen / last-used times (survive restarts)."""
        return self.state_dir / "image-state.json"

    def warm_state_file(self) -> Path:
        return self.state_dir / "warm.json"


# --- value parsers: each raises InvalidValue with the key's dotted name ----------------------


_line = yaml_line


class LineError(InvalidValue):
    """An InvalidValue with the line of the innermost key it belongs to."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _string(value: object, where: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise InvalidValue(f"{where}: expected a {'non-empty ' if not empty else ''}string")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(f"{where}: expected true or false, not {value!r}")
    return value


def _number(value: object, where: str, *, low: float, high: float, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidValue(f"{where}: expected a number, not {value!r}")
    if integer and not isinstance(value, int):
        raise InvalidValue(f"{where}: expected a whole number, not {value!r}")
    if not low <= float(value) <= high:
        raise InvalidValue(f"{where}: {value!r} is outside {low:g}..{high:g}")
    return float(value)


def _size(value: object, where: str, *, zero: bool = False) -> int:
    if isinstance(value, bool) or value is None:
        raise InvalidValue(f"{where}: expected a size such as 20GiB, not {value!r}")
    try:
        n = value if isinstance(value, int) else parse_bytes(str(value))
    except InvalidValue as e:
        raise InvalidValue(f"{where}: {e}") from None
    if n < 0 or (n == 0 and not zero):
        raise InvalidValue(f"{where}: must be more than 0 bytes")
    return n


def _labels(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"{where}: expected a mapping of label: value")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k or isinstance(v, bool) or not isinstance(v, str | int):
            raise InvalidValue(f"{where}: label {k!r}: {v!r} must be text (quote it)")
        out[k] = str(v)
    return out


def _path(value: object, where: str, base: Path) -> Path:
    text = _string(value, where, empty=False)
    if "\0" in text:
        raise InvalidValue(f"{where}: a path cannot hold a NUL byte")
    p = Path(text)
    return p if p.is_absolute() else base / p


def _listen(value: object, where: str) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    text = _string(text, where, empty=False)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidValue(f"{where}: expected HOST:PORT with a port 1..65535, not {text!r}")
    return text


def _image_ref(value: object, where: str) -> str:
    text = _string(value, where, empty=False)
    try:
        return str(parse_reference(text))
    except (InvalidValue, UsageError) as e:
        raise InvalidValue(f"{where}: {e}") from None


def parse_warm_images(node: object, where: str = "warm.images") -> tuple[WarmImage, ...]:
    """``warm.images`` (the file's, or a ConfigMap's ``images``): a list of ``{image,
    node_selector}``. Raises :class:`LineError` with the item's line."""
    if not isinstance(node, list):
        raise LineError(f"{where}: expected a list of {{image, node_selector}}", _line(node))
    out = []
    for i, item in enumerate(node):
        at = f"{where}[{i}]"
        line = _line(node, i)
        if isinstance(item, str):
            item = {"image": item}
        if not isinstance(item, Mapping) or "image" not in item:
            raise LineError(f"{at}: expected a mapping with an image", line)
        unknown = set(item) - {"image", "node_selector"}
        if unknown:
            raise LineError(f"{at}: unknown key {sorted(unknown)[0]!r}", line)
        try:
            image = _image_ref(item["image"], f"{at}.image")
            selector = _labels(item.get("node_selector") or {}, f"{at}.node_selector")
        except InvalidValue as e:
            raise LineError(str(e), line) from None
        out.append(WarmImage(image, selector))
    return tuple(out)


# --- the sections ----------------------------------------------------------------------------

_Setter = Callable[[AgentConfig, object, Path], AgentConfig]


def _headroom(cfg: AgentConfig, node: object, _: Path) -> AgentConfig:
    m = _mapping(
        node,
        "headroom",
        {
            "target_bytes",
            "concurrent_pulls",
            "reserve_bytes",
            "unpack_factor",
            "kubelet_high_threshold_percent",
        },
    )
    h = cfg.headroom
    if "target_bytes" in m:
        v = m["target_bytes"]
        target = None if v == "auto" else _size(v, "headroom.target_bytes")
        h = replace(h, target_bytes=target)
    if "concurrent_pulls" in m:
        n = _number(
            m["concurrent_pulls"], "headroom.concurrent_pulls", low=1, high=64, integer=True
        )
        h = replace(h, concurrent_pulls=int(n))
    if "reserve_bytes" in m:
        h = replace(h, reserve_bytes=_size(m["reserve_bytes"], "headroom.reserve_bytes", zero=True))
    if "unpack_factor" in m:
        factor = _number(m["unpack_factor"], "headroom.unpack_factor", low=0, high=20)
        h = replace(h, unpack_factor=factor)
    if "kubelet_high_threshold_percent" in m:
        key = "headroom.kubelet_high_threshold_percent"
        pct = _number(m["kubelet_high_threshold_percent"], key, low=2, high=100, integer=True)
        h = replace(h, kubelet_high_threshold_percent=int(pct))
    return replace(cfg, headroom=h)


def _gc(cfg: AgentConfig, node: object, _: Path) -> AgentConfig:
    m = _mapping(node, "gc", {"minimum_age_seconds", "keep"})
    if "minimum_age_seconds" in m:
        age = _number(m["minimum_age_seconds"], "gc.minimum_age_seconds", low=0, high=1e9)
        cfg = replace(cfg, gc_minimum_age_seconds=age)
    if "keep" in m:
        keep = m["keep"]
        if not isinstance(keep, list):
            raise InvalidValue("gc.keep: expected a list of glob patterns")
        cfg = replace(cfg, gc_keep=tuple(_string(k, "gc.keep[]", empty=False) for k in keep))
    return cfg


_WARM_KEYS = {
    "concurrency",
    "backoff_seconds",
    "backoff_max_seconds",
    "pull_timeout_seconds",
    "pin",
    "images",
    "config_map",
}


def _warm(cfg: AgentConfig, node: object, _: Path) -> AgentConfig:
    m = _mapping(node, "warm", _WARM_KEYS)

    def n(k: str, lo: float, hi: float, i: bool = False) -> float:
        return _number(m[k], f"warm.{k}", low=lo, high=hi, integer=i)

    if "concurrency" in m:
        cfg = replace(cfg, warm_concurrency=int(n("concurrency", 1, 64, True)))
    if "backoff_seconds" in m:
        cfg = replace(cfg, warm_backoff_seconds=n("backoff_seconds", 0.01, 86400))
    if "backoff_max_seconds" in m:
        cfg = replace(cfg, warm_backoff_max_seconds=n("backoff_max_seconds", 0.01, 86400))
    if "pull_timeout_seconds" in m:
        cfg = replace(cfg, warm_pull_timeout_seconds=n("pull_timeout_seconds", 1, 7 * 86400))
    if "pin" in m:
        cfg = replace(cfg, warm_pin=_bool(m["pin"], "warm.pin"))
    if "images" in m:
        cfg = replace(cfg, warm_images=parse_warm_images(m["images"]))
    if "config_map" in m:
        cm = _mapping(m["config_map"], "warm.config_map", {"namespace", "name"})
        ns = _string(cm.get("namespace", "mlnode-system"), "warm.config_map.namespace", empty=False)
        name = _string(cm.get("name"), "warm.config_map.name", empty=False)
        cfg = replace(cfg, warm_config_map=(ns, name))
    if cfg.warm_backoff_max_seconds < cfg.warm_backoff_seconds:
        raise InvalidValue("warm.backoff_max_seconds: less than warm.backoff_seconds")
    return cfg


def _mirror(cfg: AgentConfig, node: object, base: Path) -> AgentConfig:
    m = _mapping(node, "mirror", {"enabled", "config"})
    if "enabled" in m:
        cfg = replace(cfg, mirror_enabled=_bool(m["enabled"], "mirror.enabled"))
    if "config" in m:
        cfg = replace(cfg, mirror_config=_path(m["config"], "mirror.config", base))
    return cfg


def _kubernetes(cfg: AgentConfig, node: object, base: Path) -> AgentConfig:
    m = _mapping(node, "kubernetes", {"enabled", "kubeconfig", "events", "annotate_node"})
    k = cfg.kubernetes
    if "enabled" in m:
        v = m["enabled"]
        text = v if v == "auto" else str(_bool(v, "kubernetes.enabled")).lower()
        k = replace(k, enabled=str(text))
    if m.get("kubeconfig"):
        k = replace(k, kubeconfig=_path(m["kubeconfig"], "kubernetes.kubeconfig", base))
    if "events" in m:
        k = replace(k, events=_bool(m["events"], "kubernetes.events"))
    if "annotate_node" in m:
        k = replace(k, annotate_node=_bool(m["annotate_node"], "kubernetes.annotate_node"))
    return replace(cfg, kubernetes=k)


def _mapping(node: object, where: str, keys: set[str]) -> Mapping[str, Any]:
    if node is None:
        return {}
    if not isinstance(node, Mapping):
        raise InvalidValue(f"{where}: expected a mapping")
    for key in node:
        if key not in keys:
            raise LineError(f"{where}: unknown key {key!r}", _line(node, str(key)))
    return node


def _top(name: str, parse: Callable[[object, str], object]) -> _Setter:
    def setter(cfg: AgentConfig, value: object, _: Path) -> AgentConfig:
        changes: dict[str, Any] = {name: parse(value, name)}
        return replace(cfg, **changes)

    return setter


_SECTIONS: dict[str, _Setter] = {
    "node_name": _top("node_name", lambda v, w: _string(v, w)),
    "node_labels": _top("node_labels", _labels),
    "runtime_endpoint": _top("runtime_endpoint", lambda v, w: _string(v, w) or None),
    "image_fs": lambda cfg, v, base: replace(cfg, image_fs=_path(v, "image_fs", base)),
    "state_dir": lambda cfg, v, base: replace(cfg, state_dir=_path(v, "state_dir", base)),
    "listen": _top("listen", _listen),
    "interval_seconds": _top("interval_seconds", lambda v, w: _number(v, w, low=0.05, high=3600)),
    "headroom": _headroom,
    "gc": _gc,
    "warm": _warm,
    "mirror": _mirror,
    "kubernetes": _kubernetes,
    "log_format": _top("log_format", lambda v, w: _choice(v, w, ("text", "json"))),
}


def _choice(value: object, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidValue(f"{where}: expected one of {', '.join(choices)}, not {value!r}")
    return str(value)


def _defaults(cfg: AgentConfig, env: Mapping[str, str]) -> AgentConfig:
    if not cfg.node_name:
        cfg = replace(cfg, node_name=env.get("NODE_NAME") or socket.gethostname())
    return cfg


def load_config(path: Path, *, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Read and validate an agent config file (every key optional)."""
    env = os.environ if env is None else env
    doc = read_yaml_file(path)
    cfg = AgentConfig(source=path)
    if doc is None:
        return _defaults(cfg, env)
    if not isinstance(doc, Mapping):
        raise InputError("the agent config is a mapping of keys", path=path, line=1)
    for key in doc:
        setter = _SECTIONS.get(str(key))
        if setter is None:
            raise InputError(f"unknown key {key!r}", path=path, line=_line(doc, str(key)))
        try:
            cfg = setter(cfg, doc[key], path.parent)
        except LineError as e:
            raise InputError(str(e), path=path, line=e.line) from None
        except InvalidValue as e:
            raise InputError(str(e), path=path, line=_line_of(doc, str(e))) from None
    return _defaults(cfg, env)


def _line_of(doc: Any, message: str) -> int | None:
    """The line of the innermost key a message names (``warm.concurrency: ...``)."""
    dotted = message.split(":", 1)[0]
    node, line = doc, None
    for part in re.split(r"\.|\[", dotted):
        key: str | int = part.rstrip("]")
        if isinstance(node, list) and str(key).isdigit():
            key = int(key)
        elif not isinstance(node, Mapping) or key not in node:
            break
        line = _line(node, key)
        node = node[key]
    return line
