"""Discovering a node's kubelet and runtime files in a temp tree."""

from __future__ import annotations

from pathlib import Path

from mlnode.formats.node_paths import NODE_PATHS, NodeFileRole
from mlnode.node import discover_node_files
from mlnode.node import read_path as node_path

KUBEADM_DROPIN = (Path(__file__).parent.parent / "data" / "formats" / "10-kubeadm.conf").read_text()
UNIT = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent
[Service]
ExecStart=/usr/bin/kubelet
Restart=always
[Install]
WantedBy=multi-user.target
"""


def write(root: Path, files: dict[str, str]) -> None:
    for p, text in files.items():
        real = node_path(root, p)
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_text(text)


def test_table_paths_are_absolute_and_cover_roles() -> None:
    assert all(np.path.startswith("/") for np in NODE_PATHS)
    assert {np.role for np in NODE_PATHS} >= set(NodeFileRole) - {NodeFileRole.KUBELET_DROPIN}
    paths = {np.path for np in NODE_PATHS}
    for p in (
        "/etc/default/kubelet",
        "/etc/sysconfig/kubelet",
        "/var/lib/kubelet/kubeadm-flags.env",
        "/etc/kubernetes/kubelet.env",
        "/var/lib/kubelet/config.yaml",
        "/etc/kubernetes/kubelet-config.yaml",
        "/etc/kubernetes/kubelet.conf.d",
        "/usr/lib/systemd/system/kubelet.service.d/*.conf",
        "/etc/systemd/system/kubelet.service.d/*.conf",
        "/lib/systemd/system/kubelet.service",
        "/etc/systemd/system/kubelet.service",
        "/etc/containerd/config.toml",
        "/etc/crio/crio.conf",
    ):
        assert p in paths


def test_empty_node(tmp_path: Path) -> None:
    files = discover_node_files(tmp_path)
    assert files.kubelet_unit is None
    assert files.kubelet_config is None
    assert files.kubelet_config_dir is None
    assert not any(files.by_role.values())


def test_kubeadm_node_config_and_config_dir_from_env(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "/usr/lib/systemd/system/kubelet.service": UNIT,
            "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": KUBEADM_DROPIN,
            "/var/lib/kubelet/kubeadm-flags.env": (
                'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/'
                'containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9"\n'
            ),
            "/etc/default/kubelet": (
                'KUBELET_EXTRA_ARGS="--config-dir=/etc/kubernetes/kubelet.conf.d"\n'
            ),
            "/var/lib/kubelet/config.yaml": "kind: KubeletConfiguration\n",
            "/etc/kubernetes/kubelet.conf.d/50-images.conf": "kind: KubeletConfiguration\n",
            "/etc/kubernetes/kubelet.conf.d/README": "not read by the kubelet\n",
            "/etc/containerd/config.toml": "version = 2\n",
        },
    )
    files = discover_node_files(tmp_path)
    assert files.kubelet_unit == node_path(tmp_path, "/usr/lib/systemd/system/kubelet.service")
    assert files.kubelet_unit_dropins == (
        node_path(tmp_path, "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"),
    )
    assert files.kubelet_config == node_path(tmp_path, "/var/lib/kubelet/config.yaml")
    assert files.kubelet_config_from_flag
    assert files.kubelet_config_dir == node_path(tmp_path, "/etc/kubernetes/kubelet.conf.d")
    assert files.files(NodeFileRole.KUBELET_DROPIN) == (
        node_path(tmp_path, "/etc/kubernetes/kubelet.conf.d/50-images.conf"),
    )
    assert files.kubelet_env_files == (
        node_path(tmp_path, "/var/lib/kubelet/kubeadm-flags.env"),
        node_path(tmp_path, "/etc/default/kubelet"),
    )
    assert "--pod-infra-container-image=registry.k8s.io/pause:3.9" in files.kubelet_argv
    assert files.files(NodeFileRole.CONTAINERD_CONFIG) == (
        node_path(tmp_path, "/etc/containerd/config.toml"),
    )
    assert set(files.files(NodeFileRole.KUBELET_ENV)) == set(files.kubelet_env_files)


def test_etc_unit_and_dropin_mask_usr_lib(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "/usr/lib/systemd/system/kubelet.service": UNIT,
            "/etc/systemd/system/kubelet.service": UNIT.replace(
                "ExecStart=/usr/bin/kubelet", "ExecStart=/usr/local/bin/kubelet --config=/a.yaml"
            ),
            "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": KUBEADM_DROPIN,
            # same name in /etc masks the packaged drop-in
            "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf": (
                "[Service]\nEnvironment=KUBELET_CONFIG_ARGS=--config=/etc/kubelet/b.yaml\n"
            ),
            "/etc/systemd/system/kubelet.service.d/20-extra.conf": (
                '[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--v=2"\nExecStart=\n'
                "ExecStart=/usr/local/bin/kubelet $KUBELET_CONFIG_ARGS $KUBELET_EXTRA_ARGS\n"
            ),
        },
    )
    files = discover_node_files(tmp_path)
    assert files.kubelet_unit == node_path(tmp_path, "/etc/systemd/system/kubelet.service")
    assert files.kubelet_unit_dropins == (
        node_path(tmp_path, "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"),
        node_path(tmp_path, "/etc/systemd/system/kubelet.service.d/20-extra.conf"),
    )
    assert any("masked" in n for n in files.notes)
    assert files.kubelet_config == node_path(tmp_path, "/etc/kubelet/b.yaml")
    assert any("does not exist" in n for n in files.notes)
    assert files.kubelet_argv == ("--config=/etc/kubelet/b.yaml", "--v=2")


def test_kubespray_node(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "/etc/systemd/system/kubelet.service": (
                "[Service]\nEnvironmentFile=-/etc/kubernetes/kubelet.env\n"
                "ExecStart=/usr/local/bin/kubelet $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL"
                " $KUBELET_API_SERVER $KUBELET_ADDRESS $KUBELET_PORT $KUBELET_HOSTNAME"
                " $KUBELET_ARGS $DOCKER_SOCKET $KUBELET_NETWORK_PLUGIN $KUBELET_VOLUME_PLUGIN"
                " $KUBELET_CLOUDPROVIDER\n"
            ),
            "/etc/kubernetes/kubelet.env": (
                'KUBE_LOGTOSTDERR="--logtostderr=true"\nKUBE_LOG_LEVEL="--v=2"\n'
                'KUBELET_ARGS="--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \\\n'
                "--config=/etc/kubernetes/kubelet-config.yaml \\\n"
                '--kubeconfig=/etc/kubernetes/kubelet.conf"\n'
            ),
            "/etc/kubernetes/kubelet-config.yaml": "kind: KubeletConfiguration\n",
        },
    )
    files = discover_node_files(tmp_path)
    assert files.kubelet_config == node_path(tmp_path, "/etc/kubernetes/kubelet-config.yaml")
    assert files.kubelet_config_from_flag
    assert files.kubelet_env_files == (node_path(tmp_path, "/etc/kubernetes/kubelet.env"),)


def test_config_falls_back_to_standard_file(tmp_path: Path) -> None:
    write(tmp_path, {"/etc/kubernetes/kubelet-config.yaml": "kind: KubeletConfiguration\n"})
    files = discover_node_files(tmp_path)
    assert files.kubelet_config == node_path(tmp_path, "/etc/kubernetes/kubelet-config.yaml")
    assert not files.kubelet_config_from_flag


def test_missing_required_env_file_is_noted(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "/etc/systemd/system/kubelet.service": (
                "[Service]\nEnvironmentFile=/etc/default/kubelet\n"
                "ExecStart=/usr/bin/kubelet $KUBELET_EXTRA_ARGS\n"
            )
        },
    )
    files = discover_node_files(tmp_path)
    assert any("systemd will not start" in n for n in files.notes)


def test_runtime_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "/etc/containerd/config.toml": "version = 3\n",
            "/etc/containerd/conf.d/10-a.toml": "version = 3\n",
            "/etc/crio/crio.conf": "[crio]\n",
            "/etc/crio/crio.conf.d/10-a.conf": "[crio.image]\n",
            "/etc/crio/crio.conf.d/sub/20-b.conf": "[crio.image]\n",
        },
    )
    files = discover_node_files(tmp_path)
    # config.toml does not import conf.d: containerd does not read 10-a.toml
    assert files.files(NodeFileRole.CONTAINERD_DROPIN) == ()
    assert files.files(NodeFileRole.CRIO_CONFIG) == (node_path(tmp_path, "/etc/crio/crio.conf"),)
    assert files.files(NodeFileRole.CRIO_DROPIN) == (
        node_path(tmp_path, "/etc/crio/crio.conf.d/10-a.conf"),
        node_path(tmp_path, "/etc/crio/crio.conf.d/sub/20-b.conf"),
    )


def test_containerd_imports_and_all_paths(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "/etc/containerd/config.toml": (
                "version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n"
            ),
            "/etc/containerd/conf.d/10-a.toml": "version = 3\n",
            "/etc/systemd/system/kubelet.service": (
                "[Service]\nEnvironmentFile=-/etc/default/kubelet\n"
                "ExecStart=/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml"
                " $KUBELET_EXTRA_ARGS\n"
            ),
            "/etc/default/kubelet": "KUBELET_EXTRA_ARGS=--v=2\n",
            "/etc/sysconfig/kubelet": "KUBELET_EXTRA_ARGS=\n",
            "/var/lib/kubelet/config.yaml": "kind: KubeletConfiguration\n",
        },
    )
    files = discover_node_files(tmp_path)
    assert files.files(NodeFileRole.CONTAINERD_DROPIN) == (
        node_path(tmp_path, "/etc/containerd/conf.d/10-a.toml"),
    )
    assert files.all_paths() == tuple(
        node_path(tmp_path, p)
        for p in (
            "/etc/systemd/system/kubelet.service",
            "/etc/default/kubelet",
            "/etc/sysconfig/kubelet",
            "/var/lib/kubelet/config.yaml",
            "/etc/containerd/config.toml",
            "/etc/containerd/conf.d/10-a.toml",
        )
    )


def test_broken_containerd_import_is_a_note(tmp_path: Path) -> None:
    write(tmp_path, {"/etc/containerd/config.toml": "version = 3\nimports = ['gone.toml']\n"})
    files = discover_node_files(tmp_path)
    assert any("gone.toml" in n for n in files.notes)
