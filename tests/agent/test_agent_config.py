"""The agent's config file: every key read, every bad value one file:line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlnode.agent import load_config
from mlnode.errors import InputError

GiB = 1024**3

FULL = """\
node_name: gpu-7
node_labels: {nvidia.com/gpu.present: "true", pool: train}
runtime_endpoint: unix:///run/containerd/containerd.sock
image_fs: /var/lib/containerd
state_dir: state
listen: 0.0.0.0:9478
interval_seconds: 2
headroom:
  target_bytes: auto
  concurrent_pulls: 2
  reserve_bytes: 2GiB
  kubelet_high_threshold_percent: 80
gc:
  minimum_age_seconds: 30
  keep: ["registry.k8s.io/pause:*"]
warm:
  concurrency: 3
  backoff_seconds: 5
  backoff_max_seconds: 300
  pull_timeout_seconds: 1800
  pin: false
  images:
    - image: registry.example:5000/ml/train:v3
      node_selector: {nvidia.com/gpu.present: "true"}
    - busybox
  config_map: {namespace: mlnode-system, name: mlnode-warm}
mirror:
  enabled: true
  config: mirror.yaml
kubernetes:
  enabled: auto
  kubeconfig: kube/config
  events: true
  annotate_node: false
log_format: json
"""


def test_every_key_is_read(tmp_path: Path) -> None:
    p = tmp_path / "agent.yaml"
    p.write_text(FULL)
    cfg = load_config(p, env={})
    assert cfg.node_name == "gpu-7" and cfg.node_labels["pool"] == "train"
    assert cfg.state_dir == tmp_path / "state"  # relative to the file
    assert cfg.url == "http://127.0.0.1:9478"
    assert cfg.headroom.target_bytes is None and cfg.headroom.concurrent_pulls == 2
    assert cfg.headroom.reserve_bytes == 2 * GiB
    assert cfg.headroom.kubelet_high_threshold_percent == 80
    assert cfg.gc_minimum_age_seconds == 30 and cfg.gc_keep == ("registry.k8s.io/pause:*",)
    assert [w.image for w in cfg.warm_images] == [
        "registry.example:5000/ml/train:v3",
        "docker.io/library/busybox:latest",  # normalised as containerd names it
    ]
    assert cfg.warm_images[0].matches({"nvidia.com/gpu.present": "true"})
    assert not cfg.warm_images[0].matches({})
    assert cfg.warm_images[1].matches({})
    assert cfg.warm_config_map == ("mlnode-system", "mlnode-warm")
    assert cfg.mirror_enabled and cfg.mirror_config == tmp_path / "mirror.yaml"
    assert cfg.kubernetes.kubeconfig == tmp_path / "kube" / "config"
    assert cfg.log_format == "json"


def test_an_empty_file_is_every_default_and_the_node_name_from_the_environment(
    tmp_path: Path,
) -> None:
    p = tmp_path / "agent.yaml"
    p.write_text("")
    cfg = load_config(p, env={"NODE_NAME": "from-downward-api"})
    assert cfg.node_name == "from-downward-api"
    assert cfg.listen == "127.0.0.1:9478" and cfg.headroom.reserve_bytes == GiB


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("nodes: 1\n", 1, "unknown key 'nodes'"),
        ("listen: 9478\n", 1, "HOST:PORT"),
        ("listen: 127.0.0.1:70000\n", 1, "HOST:PORT"),
        ("interval_seconds: .nan\n", 1, "expected a number"),
        ("interval_seconds: 0\n", 1, "outside"),
        ("headroom:\n  target_bytes: lots\n", 2, "headroom.target_bytes"),
        ("headroom:\n  concurrent_pulls: 1.5\n", 2, "whole number"),
        ("headroom:\n  reserve: 1GiB\n", 2, "unknown key 'reserve'"),
        ("headroom:\n  kubelet_high_threshold_percent: 101\n", 2, "outside"),
        ("gc:\n  keep: pause\n", 2, "a list"),
        ("warm:\n  images:\n    - image: UPPER/case\n", 3, "lower case"),
        ("warm:\n  images:\n    - {img: x}\n", 3, "with an image"),
        ("warm:\n  images:\n    - image: a\n      node_selector: {gpu: true}\n", 3, "quote it"),
        ("warm:\n  images:\n    - image: a\n      nodeSelector: {}\n", 3, "nodeSelector"),
        ("warm:\n  backoff_seconds: 60\n  backoff_max_seconds: 10\n", 3, "less than"),
        ("warm:\n  config_map: {namespace: x}\n", 2, "warm.config_map.name"),
        ("mirror:\n  enabled: yes please\n", 2, "true or false"),
        ("kubernetes:\n  enabled: maybe\n", 2, "true or false"),
        ("log_format: xml\n", 1, "text, json"),
        ("- a list\n", 1, "mapping"),
        ("warm: [\n", 2, "not YAML"),
        ("node_name: \x00\n", 1, "NUL"),
    ],
)
def test_a_bad_value_is_one_error_naming_file_and_line(
    tmp_path: Path, text: str, line: int, what: str
) -> None:
    p = tmp_path / "agent.yaml"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        load_config(p, env={})
    message = str(e.value)
    assert message.startswith(f"{p}:{line}: "), message
    assert what in message and "\n" not in message
