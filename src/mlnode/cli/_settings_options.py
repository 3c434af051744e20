"""The settings options shared by ``render`` and ``apply``: one definition.

Settings come from, lowest to highest precedence: ``--plan FILE`` (plan's JSON), the
kubelet flags operators copy (``--from-kubelet-args "<line>"``), then explicit options.
That precedence, and the refusal of one setting given two values, is
:func:`mlnode.planning.settings_input.resolve_settings`; this module only defines the
options and hands what was given to it.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from mlnode.cli._options import KUBERNETES_VERSION_HELP, RUNTIME_HELP
from mlnode.planning.settings_input import SettingsInput, SettingsSources, resolve_settings
from mlnode.versions import RuntimeSpec, Version

__all__ = ["SettingsRequest", "with_settings_options"]

F = TypeVar("F", bound=Callable[..., Any])


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
    def sources(self) -> SettingsSources:
        """What was given, for :func:`~mlnode.planning.settings_input.resolve_settings`."""
        given = self._given
        return SettingsSources(
            plan_file=given["plan_file"],
            from_kubelet_args=given["from_kubelet_args"],
            explicit={k: given[k] for k in _SETTING_PARAM_NAMES},
            kubernetes_version=given["kubernetes_version"],
            runtime=given["runtime"],
        )

    def resolve(
        self,
        *,
        default_kubernetes_version: Version | None = None,
        default_runtime: RuntimeSpec | None = None,
    ) -> SettingsInput:
        return resolve_settings(
            self.sources,
            default_kubernetes_version=default_kubernetes_version,
            default_runtime=default_runtime,
        )

    def __call__(self) -> SettingsInput:
        return self.resolve()


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
