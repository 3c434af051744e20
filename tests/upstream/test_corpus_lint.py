"""`mlnode lint` over genuine upstream files (tests/data/upstream, provenance in its
PROVENANCE.md), each for a Kubernetes and runtime version it belongs to.

Every file must lint without a traceback, with the exit code and the warning/error
codes that are right for it. Where lint is wrong on a genuine file the case is marked
``xfail(strict=True)`` with what is wrong (issue 8); the expectation stays the right one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app

CORPUS = Path(__file__).parent.parent / "data" / "upstream"
runner = CliRunner()


@dataclass(frozen=True)
class Case:
    files: tuple[str, ...]
    kubernetes: str
    runtime: str
    exit_code: int = 0
    #: warning and error codes lint must report (info findings are not checked)
    codes: frozenset[str] = field(default_factory=frozenset)
    #: for exit 1: lint must report at least one error-level finding
    require_error: bool = False
    #: for exit 2: a fragment of the one-line error
    error: str | None = None
    xfail: str | None = None

    @property
    def id(self) -> str:
        files = "+".join(Path(f).name for f in self.files)
        return f"{files}@{self.kubernetes}-{self.runtime}"


CASES = [
    Case(("containerd/config-default-1.6.20.toml",), "1.28", "containerd@1.6.20"),
    Case(("containerd/default-1.6.toml",), "1.28", "containerd@1.6.28"),
    # `max_concurrent_downloads` under [plugins."io.containerd.transfer.v1.local"] is a real
    # key of the transfer plugin from 1.7.1 on (plugins/transfer/plugin.go transferConfig).
    Case(("containerd/default-1.7.toml",), "1.29", "containerd@1.7.13"),
    Case(("containerd/default-1.7.toml",), "1.32", "containerd@2.0.5"),
    # containerd 1.7.0 declares the transfer plugin's keys but never decodes them
    # (unexported fields, v1.7.0 plugins/transfer/plugin.go:80-92).
    Case(
        ("containerd/default-1.7.toml",),
        "1.29",
        "containerd@1.7.0",
        codes=frozenset({"W201"}),
    ),
    Case(("containerd/docs-cri-config-2.0.11-v3.toml",), "1.32", "containerd@2.0.11"),
    # The 2.x file on a node still running 1.7.20: containerd refuses to start on it
    # (services/server/config/config.go:106-110 ValidateV2, since v1.7.17): E108. The two
    # W201 say the 2.x tables are not 1.7's.
    Case(
        ("containerd/docs-cri-config-2.0.11-v3.toml",),
        "1.30",
        "containerd@1.7.20",
        exit_code=1,
        codes=frozenset({"E108", "W201"}),
    ),
    # On 1.7.16, before that check, containerd starts and reads it as version 2: W213.
    Case(
        ("containerd/docs-cri-config-2.0.11-v3.toml",),
        "1.30",
        "containerd@1.7.16",
        codes=frozenset({"W213", "W201"}),
    ),
    # CRI-O 1.17.0's generated crio.conf; mlnode knows CRI-O from 1.20 and Kubernetes from
    # 1.20, so it is linted as the file an upgraded 1.20 node still carries.
    Case(("crio/config-v1.17.0.toml",), "1.20", "crio@1.20.0"),
    Case(("kubeadm-packaging/10-kubeadm.conf",), "1.33", "containerd@2.0.5"),
    Case(("kubeadm-packaging/kubelet.service",), "1.33", "containerd@2.0.5"),
    Case(
        ("kubeadm-packaging/kubelet.service", "kubeadm-packaging/10-kubeadm.conf"),
        "1.33",
        "containerd@2.0.5",
    ),
    Case(("kubespray/k8s-cluster.yml",), "1.35", "containerd@2.2.3"),
    Case(("kubespray/kubelet-config.yaml",), "1.35", "containerd@2.2.3"),
    Case(("kubespray/kubelet.env",), "1.35", "containerd@2.2.3"),
    Case(("kubespray/kubelet.env",), "1.30", "containerd@1.7.20"),
    Case(("kubespray/kubelet.env", "kubespray/kubelet-config.yaml"), "1.35", "containerd@2.2.3"),
    # kubeadm's own v1beta3 doc example writes `kubeletExtraArgs: {v: 4}`; kubeadm decodes
    # YAML through JSON into map[string]string and refuses the number (the website fixed
    # its copy to "4" in kubernetes/website#46756). Refusing it, exit 2, is right.
    Case(
        ("kubeadm-config/v1beta3-init-full-example.yaml",),
        "1.30",
        "containerd@1.7.20",
        exit_code=2,
        error="kubeletExtraArgs.v: value must be a string",
    ),
    Case(("kubeadm-config/v1beta3-join-kubeadm-testdata.yaml",), "1.30", "containerd@1.7.20"),
    Case(("kubeadm-config/v1beta4-init-full-example.yaml",), "1.32", "containerd@1.7.20"),
    Case(("kubeadm-config/v1beta4-join-example.yaml",), "1.32", "containerd@1.7.20"),
    Case(("kubeadm-config/v1beta4-dual-stack-init-website.yaml",), "1.32", "containerd@1.7.20"),
    Case(("kubeadm-config/v1beta4-dual-stack-join-website.yaml",), "1.32", "containerd@1.7.20"),
    # Derived files (PROVENANCE.md): the classic kubelet line as kubeletExtraArgs. The removed
    # --image-pull-progress-deadline stops a 1.24+ kubelet: E101. `render --merge` fixes them
    # (tests/formats/test_kubeadm_merge.py).
    Case(
        ("kubeadm-config/v1beta3-join-classic-gc-args.yaml",),
        "1.30",
        "containerd@1.7.20",
        exit_code=1,
        require_error=True,
    ),
    Case(
        ("kubeadm-config/v1beta4-init-classic-gc-args.yaml",),
        "1.32",
        "containerd@1.7.20",
        exit_code=1,
        require_error=True,
    ),
]


def _params() -> list[object]:
    out: list[object] = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def _lint(case: Case, *extra: str) -> tuple[int, str, str, BaseException | None]:
    paths = [str(CORPUS / f) for f in case.files]
    args = ["lint", *paths, "--kubernetes-version", case.kubernetes, "--runtime", case.runtime]
    result = runner.invoke(app, [*args, *extra])
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.stdout, result.stderr, exc


@pytest.mark.parametrize("case", _params())
def test_lint_genuine_file(case: Case) -> None:
    code, out, err, exc = _lint(case, "-o", "json")
    assert exc is None, repr(exc)
    assert "Traceback" not in out + err
    assert code == case.exit_code, out + err
    if case.exit_code == 2:
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("mlnode: error: "), err
        assert case.error is not None and case.error in lines[0]
        return
    report = json.loads(out)
    if case.require_error:
        assert any(f["severity"] == "error" for f in report["findings"]), report["findings"]
        return
    serious = {f["code"] for f in report["findings"] if f["severity"] in ("warning", "error")}
    assert serious == case.codes, report["findings"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_lint_genuine_file_human_output(case: Case) -> None:
    code, out, err, exc = _lint(case)
    assert exc is None, repr(exc)
    assert "Traceback" not in out + err
    # The human view exits the same way as JSON does today (right or wrong).
    json_code, _, _, _ = _lint(case, "-o", "json")
    assert code == json_code


def test_every_corpus_file_has_provenance() -> None:
    provenance = (CORPUS / "PROVENANCE.md").read_text()
    named = set(re.findall(r"`([\w./-]+\.[\w.]+)`", provenance))
    files = {
        str(p.relative_to(CORPUS))
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name != "PROVENANCE.md"
    }
    missing = sorted(f for f in files if f not in named)
    assert not missing, f"not described in PROVENANCE.md: {missing}"


def test_every_linted_file_is_in_the_corpus() -> None:
    linted = {f for c in CASES for f in c.files}
    lintable = {
        str(p.relative_to(CORPUS))
        for p in CORPUS.rglob("*")
        if p.is_file() and p.suffix not in (".md", ".py", ".j2")
    }
    assert linted == lintable


def test_kubespray_render_reproduces_the_checked_in_files() -> None:
    pytest.importorskip("jinja2")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "render_kubespray", CORPUS / "kubespray" / "render_kubespray.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for template, output in (
        ("kubelet.env.v1beta1.j2", "kubelet.env"),
        ("kubelet-config.v1beta1.yaml.j2", "kubelet-config.yaml"),
    ):
        assert module.render(template) == (CORPUS / "kubespray" / output).read_text()
