"""The knowledge base: every image-related setting of the kubelet and the runtimes, as data.

Each row cites where the fact was read (see ``../shared/reference/kubelet-facts.md`` for
the full citations; [main] = kubernetes/kubernetes main, [1.28] / [1.20] = release trees,
[api] = kubernetes/kubelet ``config/v1beta1/types.go`` across tags). A reviewer audits
these tables, not code paths: the linter, the planner and the renderers only look up rows.

The rows live in four data modules: ``_kubelet_settings`` (every kubelet setting),
``_runtime_settings`` (where each runtime keeps one), ``_kubelet_facts`` (feature gate
stages, ``--config-dir`` support, default ``evictionHard``, removed flags),
``_containerd_facts`` (which config ``version`` each containerd accepts, plugin keys),
``_mirror_facts`` (hosts.toml: ``_default``, ``dial_timeout``, where ``config_path`` lives).
This module is the lookup API; import the tables and row types from here.
"""

from __future__ import annotations

from mlnode.knowledge._containerd_facts import (
    CONTAINERD_CONFIG_VERSIONS,
    CONTAINERD_IMPORT_VERSION_RULES,
    CONTAINERD_PLUGIN_KEYS,
    CONTAINERD_UNKNOWN_KEYS,
    ConfigVersionOutcome,
    ContainerdConfigVersion,
    ContainerdPluginKeys,
    UnknownKeyHandling,
)
from mlnode.knowledge._flag_values import (
    FLAG_VALUE_TYPES,
    RESTRICTED_FLAG_VALUES,
    FlagValueType,
    PflagType,
    RestrictedFlagValues,
)
from mlnode.knowledge._kubelet_facts import (
    CONFIG_DIR_SUPPORT,
    EVICTION_HARD_DEFAULTS,
    FEATURE_GATES,
    REMOVED_FLAGS,
    ConfigDirSupport,
    EvictionDefaults,
    FeatureGateStage,
    RemovedFlag,
)
from mlnode.knowledge._kubelet_settings import KUBELET_SETTINGS, KubeletSetting, ValueKind
from mlnode.knowledge._mirror_facts import (
    CRIO_REGISTRIES_DROPIN_DIR,
    HOSTS_CONFIG_PATHS,
    HOSTS_DEFAULT_DIRS,
    HOSTS_DIAL_TIMEOUT,
    ConfigPathRow,
    HostsFeature,
)
from mlnode.knowledge._runtime_settings import RUNTIME_SETTINGS, RuntimeSetting
from mlnode.versions import RuntimeKind, Version

__all__ = [
    "CONFIG_DIR_SUPPORT",
    "CONTAINERD_CONFIG_VERSIONS",
    "CONTAINERD_IMPORT_VERSION_RULES",
    "CONTAINERD_PLUGIN_KEYS",
    "CONTAINERD_UNKNOWN_KEYS",
    "CRIO_REGISTRIES_DROPIN_DIR",
    "EVICTION_HARD_DEFAULTS",
    "FEATURE_GATES",
    "FLAG_VALUE_TYPES",
    "HOSTS_CONFIG_PATHS",
    "HOSTS_DEFAULT_DIRS",
    "HOSTS_DIAL_TIMEOUT",
    "KUBELET_SETTINGS",
    "REMOVED_FLAGS",
    "RESTRICTED_FLAG_VALUES",
    "RUNTIME_SETTINGS",
    "ConfigDirSupport",
    "ConfigPathRow",
    "ConfigVersionOutcome",
    "ContainerdConfigVersion",
    "ContainerdPluginKeys",
    "EvictionDefaults",
    "FeatureGateStage",
    "FlagValueType",
    "HostsFeature",
    "KubeletSetting",
    "PflagType",
    "RemovedFlag",
    "RestrictedFlagValues",
    "RuntimeSetting",
    "UnknownKeyHandling",
    "ValueKind",
    "config_dir_support",
    "containerd_config_version",
    "containerd_import_version_rule",
    "containerd_knows_plugin_table",
    "containerd_native_config_version",
    "containerd_plugin_keys",
    "containerd_unknown_keys",
    "eviction_hard_defaults",
    "flag_value_type",
    "hosts_config_path",
    "hosts_default_dir",
    "hosts_dial_timeout",
    "kubelet_setting",
    "kubelet_setting_by_field",
    "kubelet_setting_by_flag",
    "removed_flag",
    "restricted_flag_values",
    "runtime_settings_for",
]


def config_dir_support(version: Version) -> ConfigDirSupport:
    return next(row for row in CONFIG_DIR_SUPPORT if row.span.contains(version))


def eviction_hard_defaults(version: Version) -> dict[str, str]:
    return dict(next(r for r in EVICTION_HARD_DEFAULTS if r.span.contains(version)).signals)


def removed_flag(flag: str, version: Version) -> RemovedFlag | None:
    name = flag.lstrip("-")
    return next(
        (r for r in REMOVED_FLAGS if r.flag == name and version.at_least(r.removed_in)), None
    )


def flag_value_type(flag: str, version: Version) -> FlagValueType | None:
    """How pflag parses ``--flag`` in kubelet ``version``; None when mlnode has no row."""
    name = flag.lstrip("-")
    return next((r for r in FLAG_VALUE_TYPES if r.flag == name and r.span.contains(version)), None)


def restricted_flag_values(flag: str, version: Version) -> RestrictedFlagValues | None:
    """The values kubelet ``version`` accepts for ``--flag``, where it accepts only some."""
    name = flag.lstrip("-")
    return next(
        (r for r in RESTRICTED_FLAG_VALUES if r.flag == name and r.span.contains(version)), None
    )


def kubelet_setting(key: str) -> KubeletSetting:
    for row in KUBELET_SETTINGS:
        if row.key == key:
            return row
    raise KeyError(key)


def kubelet_setting_by_flag(flag: str) -> KubeletSetting | None:
    name = flag.lstrip("-")
    return next((r for r in KUBELET_SETTINGS if r.flag == name), None)


def kubelet_setting_by_field(field: str) -> KubeletSetting | None:
    return next((r for r in KUBELET_SETTINGS if r.field == field), None)


def runtime_settings_for(kind: RuntimeKind, version: Version | None) -> tuple[RuntimeSetting, ...]:
    """The runtime's rows that exist in this version (dockershim has none: it is the kubelet)."""
    if version is None:
        return ()
    return tuple(r for r in RUNTIME_SETTINGS if r.runtime is kind and r.span.contains(version))


def containerd_config_version(
    runtime_version: Version, file_version: int
) -> ContainerdConfigVersion:
    """What this containerd does with a config of ``file_version`` (0 = no ``version`` key)."""
    return next(
        r
        for r in CONTAINERD_CONFIG_VERSIONS
        if r.span.contains(runtime_version) and r.covers(file_version)
    )


def containerd_native_config_version(runtime_version: Version) -> int:
    """The config version this containerd is written for (its row that reads as written)."""
    row = next(
        r
        for r in CONTAINERD_CONFIG_VERSIONS
        if r.span.contains(runtime_version) and r.outcome is ConfigVersionOutcome.READ
    )
    assert row.low is not None
    return row.low


def containerd_import_version_rule(runtime_version: Version) -> ContainerdConfigVersion | None:
    """The rule on an imported file's version above the root file's, where there is one."""
    return next(
        (r for r in CONTAINERD_IMPORT_VERSION_RULES if r.span.contains(runtime_version)), None
    )


def containerd_plugin_keys(
    table: tuple[str, ...], runtime_version: Version
) -> ContainerdPluginKeys | None:
    """The keys of the plugin table ``table`` in this containerd; None when mlnode has no
    list for it (or the plugin does not exist in this version)."""
    return next(
        (
            r
            for r in CONTAINERD_PLUGIN_KEYS
            if r.table == table and r.span.contains(runtime_version)
        ),
        None,
    )


def containerd_knows_plugin_table(table: tuple[str, ...]) -> bool:
    """True when mlnode lists this plugin table's keys for some containerd version."""
    return any(r.table == table for r in CONTAINERD_PLUGIN_KEYS)


def containerd_unknown_keys(runtime_version: Version) -> UnknownKeyHandling:
    return next(r for r in CONTAINERD_UNKNOWN_KEYS if r.span.contains(runtime_version))


def hosts_default_dir(runtime_version: Version) -> HostsFeature:
    """Whether this containerd reads ``<config_path>/_default/hosts.toml``."""
    return next(r for r in HOSTS_DEFAULT_DIRS if r.span.contains(runtime_version))


def hosts_dial_timeout(runtime_version: Version) -> HostsFeature:
    """Whether this containerd reads ``dial_timeout`` in a hosts.toml host table."""
    return next(r for r in HOSTS_DIAL_TIMEOUT if r.span.contains(runtime_version))


def hosts_config_path(runtime_version: Version) -> ConfigPathRow:
    """Where this containerd reads ``config_path`` and what it uses when it is unset."""
    return next(r for r in HOSTS_CONFIG_PATHS if r.span.contains(runtime_version))
