"""How the kubelet's flag parser reads each image-related flag, and flags that exist but
accept only some values.

pflag (``github.com/spf13/pflag``) turns a bad value into ``invalid argument %q for %q
flag: %v`` (flag.go ``set``), and the kubelet exits with "failed to parse kubelet flag:
..." (cmd/kubelet/app/server.go). The value's own error comes from its type: ``Int32Var``
is ``strconv.ParseInt(s, 0, 32)`` (base prefixes 0x/0o/0b/0 and ``_`` separators allowed),
``DurationVar`` is ``time.ParseDuration``, ``BoolVar`` is ``strconv.ParseBool``,
``LangleSeparatedMapStringString`` splits ``k<v`` pairs. Read through
:mod:`mlnode.knowledge.table`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mlnode.knowledge.spans import Span, v

__all__ = [
    "FLAG_VALUE_TYPES",
    "RESTRICTED_FLAG_VALUES",
    "FlagValueType",
    "PflagType",
    "RestrictedFlagValues",
]


class PflagType(enum.StrEnum):
    INT32 = "int32"
    DURATION = "duration"
    BOOL = "bool"
    STRING = "string"
    LANGLE_MAP = "langleSeparatedMapStringString"


@dataclass(frozen=True)
class FlagValueType:
    flag: str  # without dashes
    pflag_type: PflagType
    span: Span  # versions where the flag is registered with this type
    source: str


_OPTS = (
    "cmd/kubelet/app/options/options.go AddKubeletConfigFlags, read at 1.21.4 and 1.32.10 "
    "(KubeEdge vendor), same registration"
)
_FLAGS = "cmd/kubelet/app/options/options.go / pkg/kubelet/config/flags.go, read at 1.21.4"

FLAG_VALUE_TYPES: tuple[FlagValueType, ...] = (
    FlagValueType("image-gc-high-threshold", PflagType.INT32, Span(), _OPTS + " (Int32Var)"),
    FlagValueType("image-gc-low-threshold", PflagType.INT32, Span(), _OPTS + " (Int32Var)"),
    FlagValueType("minimum-image-ttl-duration", PflagType.DURATION, Span(), _OPTS),
    FlagValueType(
        "image-pull-progress-deadline",
        PflagType.DURATION,
        Span(until=v("1.24")),
        _FLAGS + " (DurationVar; removed 1.24 with dockershim)",
    ),
    FlagValueType("serialize-image-pulls", PflagType.BOOL, Span(), _OPTS + " (BoolVar)"),
    FlagValueType("registry-qps", PflagType.INT32, Span(), _OPTS + " (Int32Var)"),
    FlagValueType("registry-burst", PflagType.INT32, Span(), _OPTS + " (Int32Var)"),
    FlagValueType("eviction-hard", PflagType.LANGLE_MAP, Span(), _OPTS),
    FlagValueType("runtime-request-timeout", PflagType.DURATION, Span(), _OPTS),
    FlagValueType("node-status-max-images", PflagType.INT32, Span(), _OPTS + " (Int32Var)"),
    FlagValueType(
        "container-runtime",
        PflagType.STRING,
        Span(until=v("1.27")),
        _FLAGS + " (StringVar; removed 1.27, kubernetes#114017)",
    ),
    FlagValueType("pod-infra-container-image", PflagType.STRING, Span(), _FLAGS),
    FlagValueType("container-runtime-endpoint", PflagType.STRING, Span(), _OPTS),
    FlagValueType("image-service-endpoint", PflagType.STRING, Span(), _OPTS),
    FlagValueType("image-credential-provider-config", PflagType.STRING, Span(), _FLAGS),
    FlagValueType("image-credential-provider-bin-dir", PflagType.STRING, Span(), _FLAGS),
)


@dataclass(frozen=True)
class RestrictedFlagValues:
    """A flag that parses any string but whose value the kubelet then checks."""

    flag: str
    span: Span
    allowed: frozenset[str]
    # %s-style: "{value}" is the value as written, Go-quoted by the caller.
    error: str
    startup: str  # the wrapper the kubelet exits with around ``error``
    source: str


RESTRICTED_FLAG_VALUES: tuple[RestrictedFlagValues, ...] = (
    RestrictedFlagValues(
        "container-runtime",
        Span(until=v("1.24")),
        frozenset({"docker", "remote"}),
        "unsupported CRI runtime: {value}",
        "failed to run Kubelet: {error}",
        "pkg/kubelet/kubelet.go PreInitRuntimeService switch (docker | remote | default), called "
        "from server.go run(); read at 1.21.4, 1.22.6, 1.23.15; 1.20 taken as same",
    ),
    RestrictedFlagValues(
        "container-runtime",
        Span(since=v("1.24"), until=v("1.27")),
        frozenset({"remote"}),
        'unsupported CRI runtime: {value}, only "remote" is currently supported',
        "failed to validate kubelet flags: {error}",
        "cmd/kubelet/app/options/options.go ValidateKubeletFlags, called from server.go, read "
        "at 1.24.14 and 1.26.7 (1.25 unread, taken as same); the flag is gone in 1.27",
    ),
)
