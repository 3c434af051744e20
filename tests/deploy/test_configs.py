"""The configs shipped (the DaemonSet's ConfigMap, examples/) load through the readers the
agent and the mirror use: a key that the agent does not know, or a bad value, fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .manifests import REPO, configmap_file

EXAMPLES = REPO / "examples"


def _written(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("where", ["configmap", "examples"])
def test_agent_config_loads(tmp_path: Path, where: str) -> None:
    # mlnode.agent.load_config is written in parallel with this test (SPEC10); imported here.
    from mlnode.agent import load_config

    if where == "configmap":
        path = _written(tmp_path, "agent.yaml", configmap_file("agent.yaml"))
    else:
        path = EXAMPLES / "agent.yaml"
    cfg = load_config(path)
    assert type(cfg).__name__ == "AgentConfig"


@pytest.mark.parametrize("where", ["configmap", "examples"])
def test_mirror_config_loads_on_loopback(tmp_path: Path, where: str) -> None:
    from mlnode.mirror import load_config

    if where == "configmap":
        path = _written(tmp_path, "mirror.yaml", configmap_file("mirror.yaml"))
    else:
        path = EXAMPLES / "mirror.yaml"
    cfg = load_config(path)
    assert cfg.listen == "127.0.0.1:6055"
    assert str(cfg.cache_dir) == "/var/lib/mlnode/mirror"
    assert "docker.io" in cfg.upstreams


def test_mirror_reader_refuses_an_unknown_key(tmp_path: Path) -> None:
    from mlnode.errors import InputError
    from mlnode.mirror import load_config

    path = _written(tmp_path, "mirror.yaml", configmap_file("mirror.yaml") + "listne: x\n")
    with pytest.raises(InputError):
        load_config(path)


def test_examples_agent_yaml_is_spec10s_document() -> None:
    """examples/agent.yaml carries every SPEC10 key with SPEC10's value."""
    doc = yaml.safe_load((EXAMPLES / "agent.yaml").read_text())
    assert set(doc) == {
        "node_labels",
        "runtime_endpoint",
        "image_fs",
        "state_dir",
        "listen",
        "interval_seconds",
        "headroom",
        "gc",
        "warm",
        "mirror",
        "kubernetes",
        "log_format",
    }  # node_name is left to $NODE_NAME / the hostname
    assert doc["listen"] == "127.0.0.1:9478"
    assert doc["mirror"] == {"enabled": False, "config": "/etc/mlnode/mirror.yaml"}
    assert doc["kubernetes"] == {
        "enabled": "auto", "kubeconfig": "", "events": True, "annotate_node": False,
    }  # fmt: skip
    assert doc["warm"]["config_map"] == {"namespace": "mlnode-system", "name": "mlnode-warm"}


def test_configmap_agent_yaml_differs_from_the_example_only_where_a_pod_needs_it() -> None:
    example = yaml.safe_load((EXAMPLES / "agent.yaml").read_text())
    deployed = yaml.safe_load(configmap_file("agent.yaml"))
    differ = {k for k in set(example) | set(deployed) if example.get(k) != deployed.get(k)}
    # listen: the node's IP for Prometheus and the probes; mirror: hosted; kubernetes: the
    # in-cluster account; log_format: json for the log collector; warm.images: from the
    # ConfigMap; node_labels: from the Node object.
    assert differ == {"listen", "mirror", "kubernetes", "log_format", "warm", "node_labels"}
    assert {k for k in example["warm"] if example["warm"][k] != deployed["warm"].get(k)} == {
        "images"
    }
