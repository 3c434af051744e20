"""Lint findings: a stable code, a severity, where, what happens on the node, and the fix."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from mlnode.knowledge.model import Origin

__all__ = ["CODES", "Finding", "Severity"]


class Severity(enum.StrEnum):
    ERROR = "error"  # the kubelet or runtime refuses to start or rejects its config
    WARNING = "warning"  # it starts, but not as the operator meant
    INFO = "info"


# Every code mlnode emits, with its one-line meaning. Codes are never reused.
CODES: dict[str, tuple[Severity, str]] = {
    "E101": (Severity.ERROR, "removed kubelet flag"),
    "E102": (Severity.ERROR, "unknown kubelet flag"),
    "E103": (Severity.ERROR, "value the kubelet or runtime cannot decode"),
    "E104": (Severity.ERROR, "fails the kubelet's validation"),
    "E105": (Severity.ERROR, "needs a feature gate that is off"),
    "E106": (Severity.ERROR, "--config-dir unusable in this kubelet version"),
    "E107": (Severity.ERROR, "drop-in without apiVersion/kind"),
    "E108": (Severity.ERROR, "containerd refuses to start on this config version"),
    "E109": (Severity.ERROR, "feature gate unknown to this kubelet version"),
    "E110": (Severity.ERROR, "feature gate locked to its default set to the other value"),
    "E111": (Severity.ERROR, "eviction threshold the kubelet's parser rejects"),
    "E112": (Severity.ERROR, "flag value this kubelet version does not accept"),
    "E113": (Severity.ERROR, "hosts.toml containerd cannot decode (it bypasses it silently)"),
    "E114": (Severity.ERROR, "hosts.toml outside containerd's config_path (never read)"),
    "W201": (Severity.WARNING, "runtime ignores this image setting (pull deadline, downloads)"),
    "W202": (Severity.WARNING, "kubelet pull-deadline flag has no effect with this runtime"),
    "W203": (Severity.WARNING, "deprecated flag that is going away"),
    "W204": (Severity.WARNING, "image garbage collection disabled"),
    "W205": (Severity.WARNING, "setting given as a flag belongs in the config file"),
    "W206": (Severity.WARNING, "GC headroom cannot hold the largest image"),
    "W207": (Severity.WARNING, "evictionHard partial override zeroes the other signals"),
    "W208": (Severity.WARNING, "a flag overrides the config file's value"),
    "W209": (Severity.WARNING, "kubeadm upgrade overwrites this file"),
    "W210": (Severity.WARNING, "eviction fires before image GC"),
    "W211": (Severity.WARNING, "config field unknown to this kubelet version (ignored)"),
    "W212": (Severity.WARNING, "kubespray extra arg duplicates a key its template writes"),
    "W213": (Severity.WARNING, "containerd reads this config version as another one"),
    "W214": (Severity.WARNING, "KubeletConfiguration document kubeadm join ignores"),
    "W215": (Severity.WARNING, "registry mirror that is not the first host in hosts.toml"),
    "I301": (Severity.INFO, "pull progress deadline in effect"),
    "I302": (Severity.INFO, "flag not checked: no flag list for this kubelet version"),
    "I303": (Severity.INFO, "feature gates not checked: no gate list for this kubelet version"),
}


@dataclass(frozen=True)
class Finding:
    code: str
    message: str  # what is wrong
    consequence: str  # what will happen on the node
    fix: str  # what to do instead
    origin: Origin | None = None

    @property
    def severity(self) -> Severity:
        return CODES[self.code][0]

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "file": self.origin.path if self.origin else None,
            "line": self.origin.line if self.origin else None,
            "message": self.message,
            "consequence": self.consequence,
            "fix": self.fix,
        }
