"""The settings inputs shared by ``render`` and ``apply``: one definition, one precedence.

Settings come from, lowest to highest precedence: ``--plan FILE`` (plan's JSON), the
kubelet flags operators copy (``--from-kubelet-args "<line>"``), then explicit options.
Giving one setting two different values is refused rather than silently resolved.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from mlnode.cli._inputs import reading
from mlnode.cli._options import KUBERNETES_VERSION_HELP, RUNTIME_HELP
from mlnode.errors import UsageError
from mlnode.formats.kubelet_argv import parse_flags, split_words
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.table import kubelet_setting_by_flag
from mlnode.knowledge.values import parse_flag_value, parse_signal_map
from mlnode.units import parse_go_duration
from mlnode.versions import (
    RuntimeSpec,
    Version,
    parse_kubernetes_version,
    parse_runtime,
)

__all__ = [
    "SettingsInput",
    "SettingsRequest",
    "parse_kubelet_args",
    "with_settings_options",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class SettingsInput:
    settings: ImageSettings
    kubernetes_version: Version
    runtime: RuntimeSpec
    # Flags given in --from-kubelet-args that are not image settings mlnode knows:
    # they are not rendered, and the commands say so.
    ignored_flags: tuple[str, ...] = field(default=())


def parse_kubelet_args(
    line: str, *, option: str = "--from-kubelet-args"
) -> tuple[ImageSettings, tuple[str, ...]]:
    """Read the image settings out of a kubelet flag line, split and parsed as the kubelet
    gets it from ``$KUBELET_EXTRA_ARGS`` (the env-file reader's own flag parser)."""
    quote = _open_quote(line)
    if quote is not None:
        raise UsageError(f"unbalanced {quote} quote: the line ends inside it", option=option)
    flags, positional = parse_flags(split_words(line), source=line, path=option, line=1)
    if positional:
        raise UsageError(
            f"{positional[0]!r} is not a flag (the kubelet exits on it)", option=option
        )
    values: dict[str, Any] = {}
    ignored: list[str] = []
    for flag in flags:
        row = kubelet_setting_by_flag(flag.name)
        if row is None:
            ignored.append(flag.text)
            continue
        try:
            parsed = parse_flag_value(row, flag.value)
        except ValueError as e:
            raise UsageError(str(e), option=option) from None
        if row.key in values and values[row.key] != parsed:
            raise UsageError(f"--{flag.name} is given twice with different values", option=option)
        values[row.key] = parsed
    return ImageSettings(**values), tuple(ignored)


def _open_quote(line: str) -> str | None:
    """The quote left open at the end of ``line`` (systemd would close it silently, which
    hides a pasting mistake), with the backslash and quote rules of :func:`split_words`."""
    quote: str | None = None
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if quote is not None:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        i += 1
    return quote


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


# The parameters every settings-taking command gets, appended to its own.
_PARAMS: list[inspect.Parameter] = [
    inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=annotation,
    )
    for name, annotation in [
        (
            "kubernetes_version",
            Annotated[
                str | None,
                typer.Option(
                    "--kubernetes-version",
                    help=KUBERNETES_VERSION_HELP,
                    rich_help_panel="Target",
                ),
            ],
        ),
        (
            "runtime",
            Annotated[
                str | None,
                typer.Option(
                    "--runtime",
                    help=RUNTIME_HELP,
                    rich_help_panel="Target",
                ),
            ],
        ),
        (
            "plan_file",
            Annotated[
                Path | None,
                typer.Option(
                    "--plan",
                    help="Settings from `mlnode plan -o json`.",
                    rich_help_panel="Settings",
                ),
            ],
        ),
        (
            "from_kubelet_args",
            Annotated[
                str | None,
                typer.Option(
                    "--from-kubelet-args",
                    help='Kubelet flags as operators write them, e.g. "--image-gc-high-threshold'
                    ' 80 --image-pull-progress-deadline 30m".',
                    rich_help_panel="Settings",
                ),
            ],
        ),
        (
            "image_gc_high_threshold_percent",
            Annotated[
                int | None, typer.Option("--image-gc-high-threshold", rich_help_panel="Settings")
            ],
        ),
        (
            "image_gc_low_threshold_percent",
            Annotated[
                int | None, typer.Option("--image-gc-low-threshold", rich_help_panel="Settings")
            ],
        ),
        (
            "image_minimum_gc_age_seconds",
            Annotated[
                str | None,
                typer.Option(
                    "--image-minimum-gc-age", metavar="DURATION", rich_help_panel="Settings"
                ),
            ],
        ),
        (
            "image_maximum_gc_age_seconds",
            Annotated[
                str | None,
                typer.Option(
                    "--image-maximum-gc-age", metavar="DURATION", rich_help_panel="Settings"
                ),
            ],
        ),
        (
            "image_pull_progress_deadline_seconds",
            Annotated[
                str | None,
                typer.Option(
                    "--image-pull-progress-deadline",
                    metavar="DURATION",
                    help="Goes to the runtime's config for CRI runtimes.",
                    rich_help_panel="Settings",
                ),
            ],
        ),
        (
            "serialize_image_pulls",
            Annotated[
                bool | None,
                typer.Option(
                    "--serialize-image-pulls/--no-serialize-image-pulls", rich_help_panel="Settings"
                ),
            ],
        ),
        (
            "max_parallel_image_pulls",
            Annotated[
                int | None, typer.Option("--max-parallel-image-pulls", rich_help_panel="Settings")
            ],
        ),
        (
            "registry_pull_qps",
            Annotated[int | None, typer.Option("--registry-qps", rich_help_panel="Settings")],
        ),
        (
            "registry_burst",
            Annotated[int | None, typer.Option("--registry-burst", rich_help_panel="Settings")],
        ),
        (
            "eviction_hard",
            Annotated[
                str | None,
                typer.Option(
                    "--eviction-hard", metavar="SIGNAL<QTY,...", rich_help_panel="Settings"
                ),
            ],
        ),
        (
            "merge_default_eviction_settings",
            Annotated[
                bool | None,
                typer.Option(
                    "--merge-default-eviction-settings/--no-merge-default-eviction-settings",
                    rich_help_panel="Settings",
                ),
            ],
        ),
        (
            "runtime_request_timeout_seconds",
            Annotated[
                str | None,
                typer.Option(
                    "--runtime-request-timeout", metavar="DURATION", rich_help_panel="Settings"
                ),
            ],
        ),
        (
            "node_status_max_images",
            Annotated[
                int | None, typer.Option("--node-status-max-images", rich_help_panel="Settings")
            ],
        ),
        (
            "max_concurrent_downloads",
            Annotated[
                int | None,
                typer.Option(
                    "--max-concurrent-downloads",
                    help="containerd: layers fetched at once per pull.",
                    rich_help_panel="Settings",
                ),
            ],
        ),
    ]
]
_PARAM_NAMES = [p.name for p in _PARAMS]
_SETTING_PARAM_NAMES = _PARAM_NAMES[4:]


class SettingsRequest:
    """The settings options as given; :meth:`resolve` checks and combines them.

    Resolving is left to the command so that its errors go through the command's own error
    mapping, and so that a command that knows the node's versions (apply) can supply them
    as defaults.
    """

    def __init__(self, given: dict[str, Any]) -> None:
        self._given = given

    @property
    def kubernetes_version_option(self) -> str | None:
        value = self._given.get("kubernetes_version")
        return str(value) if value is not None else None

    @property
    def runtime_option(self) -> str | None:
        value = self._given.get("runtime")
        return str(value) if value is not None else None

    def resolve(
        self,
        *,
        default_kubernetes_version: Version | None = None,
        default_runtime: RuntimeSpec | None = None,
    ) -> SettingsInput:
        given = dict(self._given)
        if given.get("kubernetes_version") is None and default_kubernetes_version is not None:
            given["kubernetes_version"] = str(default_kubernetes_version)
        if given.get("runtime") is None and default_runtime is not None:
            given["runtime"] = str(default_runtime)
        return _resolve(given)

    def __call__(self) -> SettingsInput:
        return self.resolve()


def _resolve(given: dict[str, Any]) -> SettingsInput:
    settings = ImageSettings()
    k8s: Version | None = None
    runtime: RuntimeSpec | None = None
    if given["plan_file"] is not None:
        from mlnode.planning.plan import load_plan_settings

        with reading(given["plan_file"]):
            settings, k8s, runtime = load_plan_settings(given["plan_file"])
    ignored: tuple[str, ...] = ()
    if given["from_kubelet_args"] is not None:
        from_args, ignored = parse_kubelet_args(given["from_kubelet_args"])
        settings = _merge_no_conflict(settings, from_args, "--plan", "--from-kubelet-args")
    explicit = _explicit(**{k: given[k] for k in _SETTING_PARAM_NAMES})
    settings = _merge_no_conflict(
        settings, explicit, "--plan/--from-kubelet-args", "the explicit options"
    )
    if given["kubernetes_version"] is not None:
        cli_k8s = parse_kubernetes_version(given["kubernetes_version"])
        if k8s is not None and k8s.minor_line != cli_k8s.minor_line:
            raise UsageError(
                f"--plan was made for Kubernetes {k8s}, not {cli_k8s}",
                option="--kubernetes-version",
            )
        k8s = cli_k8s
    if given["runtime"] is not None:
        cli_runtime = parse_runtime(given["runtime"])
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
    return SettingsInput(settings, k8s, runtime, ignored)


def with_settings_options(func: F) -> F:
    """Add the shared settings options to a Typer command; it receives ``settings_input``,
    a :class:`SettingsRequest` (calling it resolves with no defaults)."""
    sig = inspect.signature(func)
    # The command's module uses postponed annotations; evaluate them in its own namespace,
    # since Typer would otherwise evaluate them in this module's.
    hints = typing.get_type_hints(func, include_extras=True)
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in sig.parameters.values()
        if p.name != "settings_input"
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name, None) for name in _PARAM_NAMES}
        return func(*args, settings_input=SettingsRequest(given), **kwargs)

    wrapper.__signature__ = sig.replace(parameters=own + _PARAMS)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{k: v for k, v in hints.items() if k != "settings_input"},
        **{p.name: p.annotation for p in _PARAMS},
    }
    return wrapper  # type: ignore[return-value]
