"""containerd facts beyond the image settings: which config ``version`` each containerd
accepts and what it does with the others, and the keys of the plugin tables mlnode looks
into (the transfer plugin).

Every row was read from containerd's source at the tags named in ``source`` (git tags of
github.com/containerd/containerd; file:line at the first tag of the span unless said).
Read through :mod:`mlnode.knowledge.table`, which holds the lookups.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mlnode.knowledge.spans import Span, v

__all__ = [
    "CONTAINERD_CONFIG_VERSIONS",
    "CONTAINERD_IMPORT_VERSION_RULES",
    "CONTAINERD_PLUGIN_KEYS",
    "CONTAINERD_UNKNOWN_KEYS",
    "ConfigVersionOutcome",
    "ContainerdConfigVersion",
    "ContainerdPluginKeys",
    "UnknownKeyHandling",
]


class ConfigVersionOutcome(enum.StrEnum):
    """What a containerd does at start with a config of some ``version``."""

    READ = "read"  # the version this containerd is written for
    DEPRECATED = "deprecated"  # read as written, with a deprecation warning at every start
    CONVERTED = "converted"  # read after a conversion at every start
    READ_AS_V2 = "read as version 2"  # not checked: plugin tables read by their full names
    REFUSED = "refused"  # containerd exits at start
    CRASHES = "crashes"  # containerd panics at start


@dataclass(frozen=True)
class ContainerdConfigVersion:
    """What containerd versions ``span`` do with a config whose ``version`` is in
    ``low``..``high`` (inclusive; None = unbounded; 0 is a file without the key)."""

    span: Span
    low: int | None
    high: int | None
    outcome: ConfigVersionOutcome
    # containerd's own words at start ("" when it says nothing); {version} is the file's
    # version and {root} the root file's (see :meth:`says`)
    containerd_says: str
    effect: str  # what that means for the file
    source: str

    def says(self, version: int, root: int | None = None) -> str:
        return self.containerd_says.format(version=version, root=root)

    def covers(self, file_version: int) -> bool:
        return (self.low is None or file_version >= self.low) and (
            self.high is None or file_version <= self.high
        )

    @property
    def versions(self) -> str:
        """The file versions of the row, for messages: "3 or higher", "0 to 1"."""
        if self.low is None and self.high is not None:
            return f"{self.high} or lower"
        if self.high is None:
            return f"{self.low} or higher"
        return str(self.low) if self.low == self.high else f"{self.low} to {self.high}"


_V1_CHECK = v("1.6.32", "1.7.17")
_1X = Span(until=v("2.0.0"))
_1X_UNCHECKED = Span(until=_V1_CHECK)
_1X_CHECKED = Span(since=_V1_CHECK, until=v("2.0.0"))
_2X = Span(since=v("2.0.0"), until=v("2.3.0"))
_23 = Span(since=v("2.3.0"))

_V1_SRC = "services/server/config/config.go"
_V2_SRC = "cmd/containerd/server/config/config.go"

CONTAINERD_CONFIG_VERSIONS: tuple[ContainerdConfigVersion, ...] = (
    # containerd 1.6 and 1.7: GetVersion reads 0 as 1; Decode looks plugin tables up by
    # their short ID only when the merged version is exactly 1, by full URI otherwise.
    ContainerdConfigVersion(
        span=_1X,
        low=None,
        high=-1,
        outcome=ConfigVersionOutcome.READ_AS_V2,
        containerd_says="containerd config version `{version}` has been deprecated",
        effect="a negative version passes the check for old versions (< 2) with a"
        " deprecation warning, then plugin tables are looked up by their full names as in"
        " version 2",
        source=f"containerd v1.6.31/v1.7.16 {_V1_SRC}:91-104 GetVersion, ValidateV2;"
        " Decode (v1.7.16 :176) uses short IDs only for version 1",
    ),
    ContainerdConfigVersion(
        span=_1X,
        low=0,
        high=1,
        outcome=ConfigVersionOutcome.DEPRECATED,
        containerd_says="containerd config version `{version}` has been deprecated",
        effect="read as version 1: plugin tables by their short names ([plugins.cri]);"
        " a deprecation warning at every start",
        source=f"containerd v1.6.0-v1.7.x {_V1_SRC} GetVersion/ValidateV2:99-104",
    ),
    ContainerdConfigVersion(
        span=_1X,
        low=2,
        high=2,
        outcome=ConfigVersionOutcome.READ,
        containerd_says="",
        effect="read as written",
        source=f"containerd v1.6.0-v1.7.x {_V1_SRC} ValidateV2",
    ),
    ContainerdConfigVersion(
        span=_1X_UNCHECKED,
        low=3,
        high=None,
        outcome=ConfigVersionOutcome.READ_AS_V2,
        containerd_says="",
        effect="containerd starts without a word and reads the file as version 2: plugin"
        " tables by their full names, so the 2.x tables (io.containerd.cri.v1.images,"
        " io.containerd.cri.v1.runtime, ...) name plugins this containerd does not have"
        ' and are ignored; CRI runs on its defaults unless [plugins."io.containerd.grpc.v1.cri"]'
        " is also there",
        source=f"containerd v1.6.31/v1.7.16 {_V1_SRC}:99-122 ValidateV2 has no upper bound;"
        " the check arrived in v1.6.32 (38607b59c) and v1.7.17 (00347b7fa)",
    ),
    ContainerdConfigVersion(
        span=_1X_CHECKED,
        low=3,
        high=None,
        outcome=ConfigVersionOutcome.REFUSED,
        containerd_says="unsupported config version `{version}` (logged first: containerd"
        " config version `{version}` is not supported, the max version is `2`)",
        effect="containerd does not start",
        source=f"containerd v1.6.32/v1.7.17 {_V1_SRC}:106-110 ValidateV2 (commits 38607b59c,"
        " 00347b7fa), called from LoadConfig (v1.7.17 :238)",
    ),
    # containerd 2.0-2.2: config version 3; LoadConfig converts 0 and 1 files (v1Migrate),
    # server.New migrates 2 at start; ValidateVersion refuses anything above 3.
    ContainerdConfigVersion(
        span=_2X,
        low=None,
        high=-1,
        outcome=ConfigVersionOutcome.CRASHES,
        containerd_says="panic: runtime error: index out of range [{version}]",
        effect="containerd panics at start: the migration loop indexes its table with the version",
        source=f"containerd v2.0.0 {_V2_SRC}:140-142 MigrateConfigTo (migrations[c.Version]),"
        " called from cmd/containerd/server/server.go:127-130 (derived from the source)",
    ),
    ContainerdConfigVersion(
        span=_2X,
        low=0,
        high=1,
        outcome=ConfigVersionOutcome.CONVERTED,
        containerd_says="",
        effect="converted while it is loaded, at every start: plugin short names renamed to"
        " their full names (v1Migrate)",
        source=f"containerd v2.0.0 {_V2_SRC}:46-50 migrations, :315-318 LoadConfig",
    ),
    ContainerdConfigVersion(
        span=_2X,
        low=2,
        high=2,
        outcome=ConfigVersionOutcome.CONVERTED,
        containerd_says="Configuration migrated from version {version}, use `containerd config"
        " migrate` to avoid migration",
        effect="converted at every start: the CRI keys move to the 2.x CRI plugins"
        " (each plugin's ConfigMigration)",
        source="containerd v2.0.0 cmd/containerd/server/server.go:127-135,246-264",
    ),
    ContainerdConfigVersion(
        span=_2X,
        low=3,
        high=3,
        outcome=ConfigVersionOutcome.READ,
        containerd_says="",
        effect="read as written",
        source="containerd v2.0.0-v2.2.x version/version.go ConfigVersion = 3",
    ),
    ContainerdConfigVersion(
        span=_2X,
        low=4,
        high=None,
        outcome=ConfigVersionOutcome.REFUSED,
        containerd_says="expected containerd config version equal to or less than `3`,"
        " got `{version}`",
        effect="containerd does not start",
        source=f"containerd v2.0.0 {_V2_SRC}:115-118 ValidateVersion (v2.2.0 :111-113),"
        " called from LoadConfig :337",
    ),
    # containerd 2.3: config version 4 (server settings move into plugins); every file
    # below 4 is migrated one version at a time as it is loaded.
    ContainerdConfigVersion(
        span=_23,
        low=None,
        high=-1,
        outcome=ConfigVersionOutcome.CRASHES,
        containerd_says="panic: runtime error: index out of range [{version}]",
        effect="containerd panics at start: the migration loop indexes its table with the version",
        source=f"containerd v2.3.0 {_V2_SRC}:150-152 MigrateConfigTo, called from"
        " LoadConfigWithPlugins :483-489 (derived from the source)",
    ),
    ContainerdConfigVersion(
        span=_23,
        low=0,
        high=3,
        outcome=ConfigVersionOutcome.CONVERTED,
        containerd_says="Configuration migrated from version {version}, use `containerd config"
        " migrate` to avoid migration",
        effect="converted file by file at every start (3 to 4: server settings move into"
        " the io.containerd.server.v1.* plugins)",
        source=f"containerd v2.3.0 {_V2_SRC}:49-54 migrations, :483-505 LoadConfigWithPlugins",
    ),
    ContainerdConfigVersion(
        span=_23,
        low=4,
        high=4,
        outcome=ConfigVersionOutcome.READ,
        containerd_says="",
        effect="read as written",
        source="containerd v2.3.0 version/version.go:41 ConfigVersion = 4",
    ),
    ContainerdConfigVersion(
        span=_23,
        low=5,
        high=None,
        outcome=ConfigVersionOutcome.REFUSED,
        containerd_says="expected containerd config version equal to or less than `4`,"
        " got `{version}`",
        effect="containerd does not start",
        source=f"containerd v2.3.0 {_V2_SRC}:125-127 ValidateVersion, called from :521",
    ),
)

# containerd 2.3 also refuses an imported file whose version is above the root file's
# (the root's version is the first non-zero one in load order).
CONTAINERD_IMPORT_VERSION_RULES: tuple[ContainerdConfigVersion, ...] = (
    ContainerdConfigVersion(
        span=_23,
        low=None,
        high=None,
        outcome=ConfigVersionOutcome.REFUSED,
        containerd_says="drop-in config version {version} higher than root config version {root}",
        effect="containerd does not start",
        source=f"containerd v2.3.0 {_V2_SRC}:475-481 LoadConfigWithPlugins",
    ),
)


@dataclass(frozen=True)
class ContainerdPluginKeys:
    """The keys a plugin's table takes in containerd versions ``span``."""

    table: tuple[str, ...]
    span: Span
    keys: frozenset[str]  # top-level keys of the table
    read: bool  # False: declared but never decoded (the keys do nothing)
    what: dict[str, str]  # what a key does, for the keys mlnode's findings name
    source: str
    fix: str = ""  # for keys declared but not read: what to do


_TRANSFER = ("plugins", "io.containerd.transfer.v1.local")
_TRANSFER_17 = frozenset(
    {"max_concurrent_downloads", "max_concurrent_uploaded_layers", "unpack_config", "config_path"}
)
_TRANSFER_21 = _TRANSFER_17 | {"concurrent_layer_fetch_buffer", "check_platform_supported"}
_TRANSFER_22 = _TRANSFER_21 | {"max_concurrent_unpacks"}
_DOWNLOADS_17 = (
    "layers the transfer service downloads at once in one pull (ctr transfer and other"
    ' Transfer API clients; CRI pulls take [plugins."io.containerd.grpc.v1.cri"]'
    " max_concurrent_downloads)"
)
_DOWNLOADS_20 = (
    "layers the transfer service downloads at once in one pull (Transfer API clients; CRI"
    " pulls in 2.0 take [plugins.'io.containerd.cri.v1.images'] max_concurrent_downloads)"
)
_DOWNLOADS_21 = (
    "layers downloaded at once in one pull by the transfer service, which CRI pulls use"
    " since 2.1 (a CRI images max_concurrent_downloads other than 3 switches CRI back to"
    " local pulls, which use that one)"
)

CONTAINERD_PLUGIN_KEYS: tuple[ContainerdPluginKeys, ...] = (
    ContainerdPluginKeys(
        table=_TRANSFER,
        span=Span(since=v("1.7.0"), until=v("1.7.1")),
        keys=_TRANSFER_17,
        read=False,
        what={"max_concurrent_downloads": _DOWNLOADS_17},
        source="containerd v1.7.0 plugins/transfer/plugin.go:80-92 transferConfig: unexported"
        " fields, which go-toml does not decode; exported in v1.7.1 (f7233811f)",
        fix="upgrade to containerd 1.7.1 or later, which reads the transfer plugin's keys",
    ),
    ContainerdPluginKeys(
        table=_TRANSFER,
        span=Span(since=v("1.7.1"), until=v("2.0.0")),
        keys=_TRANSFER_17,
        read=True,
        what={"max_concurrent_downloads": _DOWNLOADS_17},
        source="containerd v1.7.1-v1.7.34 plugins/transfer/plugin.go:134-146 transferConfig",
    ),
    ContainerdPluginKeys(
        table=_TRANSFER,
        span=Span(since=v("2.0.0"), until=v("2.1.0")),
        keys=_TRANSFER_17,
        read=True,
        what={"max_concurrent_downloads": _DOWNLOADS_20},
        source="containerd v2.0.0-v2.0.x plugins/transfer/plugin.go:152-164 transferConfig",
    ),
    ContainerdPluginKeys(
        table=_TRANSFER,
        span=Span(since=v("2.1.0"), until=v("2.2.0")),
        keys=_TRANSFER_21,
        read=True,
        what={"max_concurrent_downloads": _DOWNLOADS_21},
        source="containerd v2.1.0-v2.1.x plugins/transfer/plugin.go:168-190 transferConfig;"
        " internal/cri/config/config.go:535-600 CheckLocalImagePullConfigs",
    ),
    ContainerdPluginKeys(
        table=_TRANSFER,
        span=Span(since=v("2.2.0")),
        keys=_TRANSFER_22,
        read=True,
        what={"max_concurrent_downloads": _DOWNLOADS_21},
        source="containerd v2.2.0 plugins/transfer/plugin.go:189-214 transferConfig"
        " (v2.3.0 :202-227, same keys)",
    ),
)


@dataclass(frozen=True)
class UnknownKeyHandling:
    """What containerd versions ``span`` do with a key no plugin reads."""

    span: Span
    consequence: str
    source: str


CONTAINERD_UNKNOWN_KEYS: tuple[UnknownKeyHandling, ...] = (
    UnknownKeyHandling(
        span=Span(until=v("2.0.0")),
        consequence="containerd ignores keys it does not read, silently",
        source="containerd v1.7.x services/server/config/config.go Decode (go-toml, not strict)",
    ),
    UnknownKeyHandling(
        span=Span(since=v("2.0.0")),
        consequence='containerd ignores keys it does not read (it logs "Ignoring unknown key'
        ' in TOML for plugin" at start)',
        source="containerd v2.0.0 cmd/containerd/server/config/config.go:260-278 Decode"
        " (DisallowUnknownFields, warning only)",
    ),
)
