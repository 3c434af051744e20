"""containerd's ``config.toml`` (and the files it imports): read, render, merge.

Where the CRI image settings live depends on the file's ``version`` (containerd
``RELEASES.md``, "Daemon Configuration"; ``cmd/containerd/server/config/config.go``):

    version 1 (or no version key)  [plugins.cri]                          containerd ≥ 1.0
    version 2                      [plugins."io.containerd.grpc.v1.cri"]  containerd ≥ 1.3
    version 3                      [plugins."io.containerd.cri.v1.images"] containerd ≥ 2.0
    version 4                      same CRI tables as 3 (server settings  containerd ≥ 2.3
                                   move to plugins)

Which ``version`` each containerd accepts, and what it does with the others, is the table
``CONTAINERD_CONFIG_VERSIONS`` in :mod:`mlnode.knowledge.table`: 1.6.32+/1.7.17+ refuse
above 2 ("unsupported config version"), earlier 1.x read anything above 2 as 2, 2.0-2.2
refuse above 3, 2.3 above 4. :func:`checked_config_versions` says which version(s) a
containerd checks when files import each other.

A missing ``version`` means 1 in every release (1.x ``GetVersion``; 2.x migrates from 0
through 1). containerd 2.x migrates older files at start-up: ``v1Migrate`` renames
``plugins.cri`` to ``plugins."io.containerd.grpc.v1.cri"``, then the CRI images plugin's
``configMigration`` copies ``image_pull_progress_timeout``, ``max_concurrent_downloads``,
``registry``, ``sandbox_image`` (→ ``pinned_images.sandbox``) and ``containerd.snapshotter``
/ ``discard_unpacked_layers`` into ``io.containerd.cri.v1.images``, overwriting a value
already there (``plugins/cri/images/plugin.go``). So in a version 1 or 2 file the grpc
table is the one that counts, also on 2.x — and on 2.3 the migration also runs for
version 3 files, so a stale grpc-table key overrides the images table there.

Imports: ``imports = [...]`` are loaded breadth-first after the file that names them,
each later file overriding earlier ones; a path with ``*`` is a glob (sorted matches),
a relative path is relative to the importing file's directory (in 1.x only for non-glob
paths: a relative glob is relative to containerd's working directory). In 1.x an imported
``[plugins."<id>"]`` table *replaces* the whole table of that plugin (``mergeConfig``:
``to.Plugins[k] = v``; checked with containerd 1.6.20); 2.x merges plugin tables key by
key. containerd reads no drop-in directory on its own: ``/etc/containerd/conf.d/*.toml``
is only read when ``config.toml`` imports it, as ``containerd config default`` writes
since v2.2.0 (commit 9ca659a, ``defaults.DefaultConfigIncludePattern``). A missing
non-glob import stops containerd from starting.

Registry hosts files (``<config_path>/<registry>/hosts.toml``) and ``config_path`` are
``_hosts`` (read, render, merge; what containerd does with them is its docstring).
"""

from __future__ import annotations

from mlnode.formats.containerd._hosts import (
    DEFAULT_HOSTS_DIR,
    DEFAULT_NAMESPACE,
    MirrorUrl,
    config_path_roots,
    default_server,
    hosts_dir_namespace,
    is_loopback_host,
    legacy_registry_keys,
    merge_hosts_toml,
    parse_mirror_url,
    parse_registry_name,
    read_hosts_toml,
    render_hosts_toml,
    set_config_path,
)
from mlnode.formats.containerd._read import (
    checked_config_versions,
    declared_config_versions,
    effective_containerd_values,
    read_containerd,
    read_containerd_with_imports,
)
from mlnode.formats.containerd._tables import (
    CRI_V1,
    CRI_V2,
    CRI_V3_IMAGES,
    CRI_V3_RUNTIME,
    DEFAULT_CONFIG_PATH,
    DROPIN_SUGGESTED_PATH,
    config_version_for,
    max_config_version_for,
    table_for,
)
from mlnode.formats.containerd._write import merge_containerd, render_containerd

__all__ = [
    "CRI_V1",
    "CRI_V2",
    "CRI_V3_IMAGES",
    "CRI_V3_RUNTIME",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_HOSTS_DIR",
    "DEFAULT_NAMESPACE",
    "DROPIN_SUGGESTED_PATH",
    "MirrorUrl",
    "checked_config_versions",
    "config_path_roots",
    "config_version_for",
    "declared_config_versions",
    "default_server",
    "effective_containerd_values",
    "hosts_dir_namespace",
    "is_loopback_host",
    "legacy_registry_keys",
    "max_config_version_for",
    "merge_containerd",
    "merge_hosts_toml",
    "parse_mirror_url",
    "parse_registry_name",
    "read_containerd",
    "read_containerd_with_imports",
    "read_hosts_toml",
    "render_containerd",
    "render_hosts_toml",
    "set_config_path",
    "table_for",
]
