"""The image settings an operator asked for, and the versions they are for: one precedence.

Settings come from, lowest to highest precedence: a plan file (``mlnode plan -o json``),
the kubelet flags operators copy (``--from-kubelet-args "<line>"``), then explicit options.
Giving one setting two different values is refused rather than silently resolved; a
version the command knows (apply reads the node's binaries) is only a default. Shared by
``mlnode render`` and ``mlnode apply``, whose options (in the CLI) fill a
:class:`SettingsSources`. Errors are :class:`~mlnode.errors.UsageError` naming the option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnode.errors import UsageError
from mlnode.formats.kubelet_argv import parse_kubelet_args
from mlnode.knowledge.eviction import threshold_errors
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.values import parse_signal_map
from mlnode.units import parse_go_duration
from mlnode.versions import (
    RuntimeSpec,
    Version,
    parse_kubernetes_version,
    parse_runtime,
)

__all__ = ["SettingsInput", "SettingsSources", "resolve_settings"]


@dataclass(frozen=True)
class SettingsInput:
    settings: ImageSettings
    kubernetes_version: Version
    runtime: RuntimeSpec
    # Flags given in --from-kubelet-args that are not image settings mlnode knows:
    # they are not rendered, and the commands say so.
    ignored_flags: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class SettingsSources:
    """The settings inputs as given (None: not given).

    ``explicit`` maps :class:`~mlnode.knowledge.model.ImageSettings` keys to the raw
    option values (durations and eviction signals still as text).
    """

    plan_file: Path | None = None
    from_kubelet_args: str | None = None
    explicit: Mapping[str, Any] = field(default_factory=dict)
    kubernetes_version: str | None = None
    runtime: str | None = None


def resolve_settings(
    sources: SettingsSources,
    *,
    default_kubernetes_version: Version | None = None,
    default_runtime: RuntimeSpec | None = None,
) -> SettingsInput:
    """Check and combine ``sources``; the defaults apply when no version is given."""
    k8s = sources.kubernetes_version
    if k8s is None and default_kubernetes_version is not None:
        k8s = str(default_kubernetes_version)
    runtime = sources.runtime
    if runtime is None and default_runtime is not None:
        runtime = str(default_runtime)
    return _resolve(dataclasses.replace(sources, kubernetes_version=k8s, runtime=runtime))


def _explicit(**given: Any) -> ImageSettings:
    values: dict[str, Any] = {}
    for key, raw in given.items():
        if raw is None:
            continue
        if key.endswith("_seconds"):
            try:
                values[key] = parse_go_duration(raw)
            except ValueError as e:
                raise UsageError(str(e), option="--" + _OPTION_NAMES[key]) from None
        elif key == "eviction_hard":
            try:
                values[key] = parse_signal_map(raw)
            except ValueError as e:
                raise UsageError(
                    f"{e}, e.g. imagefs.available<15%", option="--eviction-hard"
                ) from None
        else:
            values[key] = raw
    return ImageSettings(**values)


_OPTION_NAMES = {
    "image_gc_high_threshold_percent": "image-gc-high-threshold",
    "image_gc_low_threshold_percent": "image-gc-low-threshold",
    "image_minimum_gc_age_seconds": "image-minimum-gc-age",
    "image_maximum_gc_age_seconds": "image-maximum-gc-age",
    "image_pull_progress_deadline_seconds": "image-pull-progress-deadline",
    "runtime_request_timeout_seconds": "runtime-request-timeout",
}


def _merge_no_conflict(
    base: ImageSettings, override: ImageSettings, base_name: str, override_name: str
) -> ImageSettings:
    for key, value in override.set_fields().items():
        previous = getattr(base, key)
        if previous is not None and previous != value:
            raise UsageError(
                f"{key} is {previous!r} from {base_name} but {value!r} from {override_name}; "
                "give it once"
            )
    return base.merged(override)


def _resolve(given: SettingsSources) -> SettingsInput:
    settings = ImageSettings()
    k8s: Version | None = None
    runtime: RuntimeSpec | None = None
    if given.plan_file is not None:
        from mlnode.planning.plan import load_plan_settings

        settings, k8s, runtime = load_plan_settings(given.plan_file)
    ignored: tuple[str, ...] = ()
    from_args = ImageSettings()
    if given.from_kubelet_args is not None:
        from_args, ignored = parse_kubelet_args(given.from_kubelet_args)
        settings = _merge_no_conflict(settings, from_args, "--plan", "--from-kubelet-args")
    explicit = _explicit(**given.explicit)
    settings = _merge_no_conflict(
        settings, explicit, "--plan/--from-kubelet-args", "the explicit options"
    )
    if given.kubernetes_version is not None:
        cli_k8s = parse_kubernetes_version(given.kubernetes_version)
        if k8s is not None and k8s.minor_line != cli_k8s.minor_line:
            raise UsageError(
                f"--plan was made for Kubernetes {k8s}, not {cli_k8s}",
                option="--kubernetes-version",
            )
        k8s = cli_k8s
    if given.runtime is not None:
        cli_runtime = parse_runtime(given.runtime)
        if runtime is not None and runtime.kind is not cli_runtime.kind:
            raise UsageError(
                f"--plan was made for {runtime}, not {cli_runtime}", option="--runtime"
            )
        runtime = cli_runtime
    if k8s is None:
        raise UsageError("the Kubernetes version is needed", option="--kubernetes-version")
    if runtime is None:
        raise UsageError("the container runtime is needed", option="--runtime")
    if settings.is_empty():
        raise UsageError(
            "no settings given: use --plan, --from-kubelet-args or options such as "
            "--image-gc-high-threshold"
        )
    for part, option, prefix in (
        (from_args, "--from-kubelet-args", "--eviction-hard: "),
        (explicit, "--eviction-hard", ""),
    ):
        _check_eviction_hard(part, k8s, option=option, prefix=prefix)
    return SettingsInput(settings, k8s, runtime, ignored)


def _check_eviction_hard(
    settings: ImageSettings, k8s: Version, *, option: str, prefix: str
) -> None:
    """Refuse thresholds this kubelet's eviction manager refuses at start (it exits), once
    the version is known and before anything is written (knowledge.eviction)."""
    if not settings.eviction_hard:
        return
    errors = threshold_errors(settings.eviction_hard, k8s)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UsageError(
            f"{prefix}{errors[0]}{more} (kubelet {k8s} would not start)", option=option
        )
