"""`render --merge` into kubeadm files: each setting where `kubeadm init` / `kubeadm join`
reads it, every other byte as written (issue 8, deliverable 2 and its acceptance item).

The files are the genuine kubeadm documents of tests/data/upstream/kubeadm-config/ and the two
derived from them carrying the classic kubelet line (PROVENANCE.md).
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.errors import InputError
from mlnode.formats._kubeadm_edit import PLAIN_OR_SINGLE, scalar_text
from mlnode.formats.kubeadm import merge_kubeadm, read_kubeadm
from mlnode.knowledge.model import ImageSettings, Layer
from mlnode.knowledge.placement import Placement, place
from mlnode.knowledge.table import kubelet_setting_by_field
from mlnode.lint.engine import LintContext, lint_documents
from mlnode.versions import Version, parse_runtime

CORPUS = Path(__file__).parent.parent / "data" / "upstream" / "kubeadm-config"
LINE = "--image-gc-low-threshold 70 --image-gc-high-threshold 80 --image-pull-progress-deadline 30m"
CONTAINERD = "containerd@1.7.20"
runner = CliRunner()


def _render_merge(path: Path, k8s: str, *extra: str) -> tuple[int, str, str]:
    args = ["render", "--merge", str(path), "--kubernetes-version", k8s, "--runtime", CONTAINERD]
    result = runner.invoke(app, [*args, *extra])
    return result.exit_code, result.stdout, result.stderr


def _lint(path: Path, k8s: str) -> tuple[int, str]:
    args = ["lint", str(path), "--kubernetes-version", k8s, "--runtime", CONTAINERD]
    result = runner.invoke(app, args)
    return result.exit_code, result.stdout + result.stderr


def _changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """(removed, added) lines of the unified diff, in order."""
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0))
    removed = [d[1:] for d in diff if d.startswith("-") and not d.startswith("---")]
    added = [d[1:] for d in diff if d.startswith("+") and not d.startswith("+++")]
    return removed, added


def _placement(k8s: Version, **settings: object) -> Placement:
    return place(ImageSettings(**settings), k8s, parse_runtime(CONTAINERD))  # type: ignore[arg-type]


CLASSIC = {
    "image_gc_high_threshold_percent": 80,
    "image_gc_low_threshold_percent": 70,
    "image_pull_progress_deadline_seconds": 1800.0,
}


# --------------------------------------------------------------------------- provenance


@pytest.mark.parametrize(
    ("derived", "genuine"),
    [
        ("v1beta3-join-classic-gc-args.yaml", "v1beta3-join-kubeadm-testdata.yaml"),
        ("v1beta4-init-classic-gc-args.yaml", "v1beta4-init-full-example.yaml"),
    ],
)
def test_derived_files_only_add_the_classic_flags(derived: str, genuine: str) -> None:
    removed, added = _changed_lines((CORPUS / genuine).read_text(), (CORPUS / derived).read_text())
    assert removed == []
    assert [a.strip().strip('-"').split(":")[0].strip().strip('"') for a in added] == (
        ["kubeletExtraArgs", "image-gc-high-threshold", "image-gc-low-threshold",
         "image-pull-progress-deadline"]
        if "join" in derived
        else ["name", "value", "name", "value", "name", "value"]
    )  # fmt: skip


# --------------------------------------------------------------------------- acceptance


def test_join_v1beta3_flags_stay_in_join_configuration(tmp_path: Path) -> None:
    """kubeadm join reads only the JoinConfiguration: the thresholds stay its kubeletExtraArgs
    (no KubeletConfiguration document, which join would ignore); the removed flag goes."""
    target = tmp_path / "join.yaml"
    original = (CORPUS / "v1beta3-join-classic-gc-args.yaml").read_text()
    target.write_text(original)
    assert _lint(target, "1.30")[0] == 1  # E101: --image-pull-progress-deadline on 1.30

    code, out, err = _render_merge(target, "1.30", "--from-kubelet-args", LINE)
    assert code == 0, err
    merged = target.read_text()
    assert _changed_lines(original, merged) == (["    image-pull-progress-deadline: 30m"], [])
    assert "-    image-pull-progress-deadline: 30m" in out  # the diff is shown

    lint_code, lint_out = _lint(target, "1.30")
    assert lint_code == 0, lint_out
    docs = read_kubeadm(str(target), merged)
    assert [d.facts.kind for d in docs] == ["JoinConfiguration"]
    assert {f.name: f.value for f in docs[0].flags} == {
        "image-gc-high-threshold": "80",
        "image-gc-low-threshold": "70",
    }
    eff = lint_documents(docs, LintContext(Version(1, 30), parse_runtime(CONTAINERD))).effective
    high = eff.kubelet["image_gc_high_threshold_percent"]
    assert (high.value, high.layer) == (80, Layer.FLAG)
    assert high.origin is not None
    assert high.origin.detail == "JoinConfiguration.nodeRegistration.kubeletExtraArgs"


def test_init_v1beta4_thresholds_move_to_the_kubelet_document(tmp_path: Path) -> None:
    """kubeadm init reads the KubeletConfiguration document: the thresholds become its fields
    (below the example's "# kubelet specific options here"), the list-form flags leave, the
    removed --image-pull-progress-deadline too."""
    target = tmp_path / "init.yaml"
    original = (CORPUS / "v1beta4-init-classic-gc-args.yaml").read_text()
    target.write_text(original)
    assert _lint(target, "1.32")[0] == 1

    code, _, err = _render_merge(target, "1.32", "--from-kubelet-args", LINE)
    assert code == 0, err
    merged = target.read_text()
    assert _changed_lines(original, merged) == (
        [
            '  - name: "image-gc-low-threshold"',
            '    value: "70"',
            '  - name: "image-gc-high-threshold"',
            '    value: "80"',
            '  - name: "image-pull-progress-deadline"',
            '    value: "30m"',
        ],
        ["imageGCHighThresholdPercent: 80", "imageGCLowThresholdPercent: 70"],
    )
    lines = merged.splitlines()
    at = lines.index("imageGCHighThresholdPercent: 80")
    assert lines[at - 1] == "# kubelet specific options here"
    assert lines[at - 2] == "kind: KubeletConfiguration"
    # The merged file is the genuine example plus the two fields.
    assert _changed_lines((CORPUS / "v1beta4-init-full-example.yaml").read_text(), merged) == (
        [],
        ["imageGCHighThresholdPercent: 80", "imageGCLowThresholdPercent: 70"],
    )

    lint_code, lint_out = _lint(target, "1.32")
    assert lint_code == 0, lint_out
    docs = read_kubeadm(str(target), merged)
    init = docs[0]
    assert [(f.name, f.value) for f in init.flags] == [("v", "5")]
    eff = lint_documents(docs, LintContext(Version(1, 32), parse_runtime(CONTAINERD))).effective
    for key, value in (
        ("image_gc_high_threshold_percent", 80),
        ("image_gc_low_threshold_percent", 70),
    ):
        sv = eff.kubelet[key]
        assert (sv.value, sv.layer) == (value, Layer.CONFIG_FILE)
        assert sv.origin is not None and sv.origin.detail == "KubeletConfiguration"


def test_merge_is_idempotent_and_keeps_one_backup(tmp_path: Path) -> None:
    target = tmp_path / "join.yaml"
    target.write_text((CORPUS / "v1beta3-join-classic-gc-args.yaml").read_text())
    assert _render_merge(target, "1.30", "--from-kubelet-args", LINE)[0] == 0
    once = target.read_bytes()
    assert _render_merge(target, "1.30", "--from-kubelet-args", LINE)[0] == 0
    assert target.read_bytes() == once
    assert len(list(tmp_path.glob("join.yaml.mlnode-*.bak"))) == 1


# --------------------------------------------------------------------------- byte for byte


def _taints_null(text: str) -> str:
    """kubeadm config print init-defaults / join-defaults write a nil taint list this way."""
    start = text.index("  taints:\n")
    rest = text[start + len("  taints:\n") :]
    kept = rest.lstrip("\n")
    while kept.startswith(("  - ", "    ")):
        kept = kept.split("\n", 1)[1]
    return text[:start] + "  taints: null\n" + kept


@pytest.mark.parametrize(
    ("name", "k8s"),
    [("v1beta3-join-classic-gc-args.yaml", "1.30"), ("v1beta4-init-classic-gc-args.yaml", "1.32")],
)
def test_taints_null_stays_null(tmp_path: Path, name: str, k8s: str) -> None:
    target = tmp_path / name
    original = _taints_null((CORPUS / name).read_text())
    assert "  taints: null\n" in original
    target.write_text(original)
    assert _render_merge(target, k8s, "--from-kubelet-args", LINE)[0] == 0
    merged = target.read_text()
    assert "  taints: null\n" in merged
    removed, _ = _changed_lines(original, merged)
    assert all("taints" not in line for line in removed)


@pytest.mark.parametrize(
    ("name", "k8s"),
    [
        ("v1beta3-join-kubeadm-testdata.yaml", "1.30"),
        ("v1beta4-init-full-example.yaml", "1.32"),
        ("v1beta4-join-example.yaml", "1.32"),
        ("v1beta4-dual-stack-init-website.yaml", "1.32"),
        ("v1beta4-dual-stack-join-website.yaml", "1.32"),
    ],
)
def test_genuine_files_gain_only_the_settings(name: str, k8s: str) -> None:
    """No line of a genuine file is removed or rewritten; the added lines are the two
    thresholds, as flags (join) or KubeletConfiguration fields (init)."""
    original = (CORPUS / name).read_text()
    p = _placement(Version.parse(k8s), **CLASSIC)
    merged = merge_kubeadm(original, name, p)
    removed, added = _changed_lines(original, merged)
    assert removed == []
    text = "\n".join(added)
    if "join" in name:
        assert "KubeletConfiguration" not in text
        assert "image-gc-high-threshold" in text and "image-gc-low-threshold" in text
    else:
        assert "imageGCHighThresholdPercent: 80" in text
        assert "imageGCLowThresholdPercent: 70" in text
        assert "image-gc" not in text
    assert merge_kubeadm(merged, name, p) == merged


def test_unusual_line_of_the_v1beta3_example_is_kept() -> None:
    """The v1beta3 example writes `-  "ec2-..."` (two spaces); a ruamel round trip made it
    `- "ec2-..."`. Its `v: 4` is quoted here, as kubeadm needs (PROVENANCE.md)."""
    original = (CORPUS / "v1beta3-init-full-example.yaml").read_text().replace("v: 4", 'v: "4"')
    merged = merge_kubeadm(original, "k", _placement(Version(1, 30), **CLASSIC))
    assert '    -  "ec2-10-100-0-1.compute-1.amazonaws.com"\n' in merged
    assert _changed_lines(original, merged) == (
        [],
        ["imageGCHighThresholdPercent: 80", "imageGCLowThresholdPercent: 70"],
    )


# --------------------------------------------------------------------------- both forms


V1BETA3_JOIN = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
nodeRegistration:
  kubeletExtraArgs:
    # GC late: the images are huge
    image-gc-high-threshold: '90'   # was 85
    # dockershim's deadline
    image-pull-progress-deadline: 30m
    --container-runtime: remote
    node-labels: gpu=true
  taints: null
"""

V1BETA4_JOIN = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration:
  kubeletExtraArgs:
    # GC late: the images are huge
    - name: image-gc-high-threshold
      value: '90'  # was 85
    # dockershim's deadline
    - name: image-pull-progress-deadline
      value: 30m
    - name: container-runtime
      value: remote
    - name: node-labels
      value: gpu=true
  taints: null
"""


def test_map_form_update_remove_add() -> None:
    p = _placement(Version(1, 30), **CLASSIC)
    out = merge_kubeadm(V1BETA3_JOIN, "k", p)
    assert out == (
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\nnodeRegistration:\n"
        "  kubeletExtraArgs:\n    # GC late: the images are huge\n"
        "    image-gc-high-threshold: '80'   # was 85\n"
        "    node-labels: gpu=true\n"
        "    image-gc-low-threshold: '70'\n"
        "  taints: null\n"
    )


def test_list_form_update_remove_add() -> None:
    p = _placement(Version(1, 32), **CLASSIC)
    out = merge_kubeadm(V1BETA4_JOIN, "k", p)
    assert out == (
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n"
        "  kubeletExtraArgs:\n    # GC late: the images are huge\n"
        "    - name: image-gc-high-threshold\n      value: '80'  # was 85\n"
        "    - name: node-labels\n      value: gpu=true\n"
        "    - name: image-gc-low-threshold\n      value: '70'\n"
        "  taints: null\n"
    )


@pytest.mark.parametrize("text", [V1BETA3_JOIN, V1BETA4_JOIN])
def test_removed_flags_go_from_init_configuration_too(text: str) -> None:
    """Init: the thresholds go to a KubeletConfiguration document, the flags that would
    override them and the flags 1.32 removed leave kubeletExtraArgs, in both forms."""
    init = text.replace("JoinConfiguration", "InitConfiguration")
    out = merge_kubeadm(init, "k", _placement(Version(1, 32), **CLASSIC))
    docs = read_kubeadm("k", out)
    assert [(f.name, f.value) for f in docs[0].flags] == [("node-labels", "gpu=true")]
    assert [(f.field, f.value) for f in docs[1].fields] == [
        ("imageGCHighThresholdPercent", 80),
        ("imageGCLowThresholdPercent", 70),
    ]
    assert "# GC late" not in out and "# dockershim" not in out  # went with their lines
    assert "  taints: null\n" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("  kubeletExtraArgs: {}  # none yet\n", "  kubeletExtraArgs:  # none yet\n"),
        ("  kubeletExtraArgs:\n", "  kubeletExtraArgs:\n"),
        ("  kubeletExtraArgs: null\n", "  kubeletExtraArgs:\n"),
    ],
)
def test_empty_extra_args_get_a_block(args: str, expected: str) -> None:
    text = (
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\nnodeRegistration:\n"
        f"{args}  taints: null\n"
    )
    out = merge_kubeadm(text, "k", _placement(Version(1, 30), **CLASSIC))
    assert out == (
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\nnodeRegistration:\n"
        f'{expected}    image-gc-high-threshold: "80"\n    image-gc-low-threshold: "70"\n'
        "  taints: null\n"
    )


def test_missing_extra_args_go_last() -> None:
    text = (
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\nnodeRegistration:\n"
        "  taints: null\n# end\n"
    )
    out = merge_kubeadm(text, "k", _placement(Version(1, 30), **CLASSIC))
    assert out == text.replace(
        "  taints: null\n",
        '  taints: null\n  kubeletExtraArgs:\n    image-gc-high-threshold: "80"\n'
        '    image-gc-low-threshold: "70"\n',
    )


def test_flow_list_is_rewritten_as_a_block() -> None:
    text = (
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n"
        "  kubeletExtraArgs: [{name: image-pull-progress-deadline, value: 30m},"
        " {name: v, value: '2'}]\n"
    )
    out = merge_kubeadm(text, "k", _placement(Version(1, 32), **CLASSIC))
    assert out.endswith(
        '  kubeletExtraArgs:\n  - name: v\n    value: "2"\n'
        '  - name: image-gc-high-threshold\n    value: "80"\n'
        '  - name: image-gc-low-threshold\n    value: "70"\n'
    )


def test_go_marshalled_join_gets_keys_in_order() -> None:
    """kubeadm's own (Go-marshalled) files sort their keys: a new key goes in its place."""
    out = merge_kubeadm(
        (CORPUS / "v1beta3-join-kubeadm-testdata.yaml").read_text(),
        "k",
        _placement(Version(1, 30), **CLASSIC),
    )
    assert (
        "  criSocket: /var/run/dockershim.sock\n  kubeletExtraArgs:\n"
        '    image-gc-high-threshold: "80"\n    image-gc-low-threshold: "70"\n'
        "  name: control-plane-1\n"
    ) in out


# --------------------------------------------------------------------------- join refusals


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"max_parallel_image_pulls": 3}, "maxParallelImagePulls"),
        ({"image_maximum_gc_age_seconds": 86400.0}, "imageMaximumGCAge"),
    ],
)
def test_join_refuses_a_field_without_a_flag(settings: dict[str, object], field: str) -> None:
    text = (CORPUS / "v1beta3-join-classic-gc-args.yaml").read_text()
    with pytest.raises(InputError) as e:
        merge_kubeadm(text, "join.yaml", _placement(Version(1, 30), **settings))
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"join.yaml: {field} has no kubelet flag")
    assert "kube-system/kubelet-config ConfigMap" in message and "kubeadm init" in message


def test_join_refusal_on_the_cli_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "join.yaml"
    target.write_text((CORPUS / "v1beta3-join-classic-gc-args.yaml").read_text())
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    code, out, err = _render_merge(target, "1.30", "--max-parallel-image-pulls", "3")
    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"mlnode: error: {target}: maxParallelImagePulls has no kubelet flag")
    assert "Traceback" not in err
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    assert list(tmp_path.iterdir()) == [target]


def test_join_with_a_flagged_duration_and_eviction() -> None:
    p = _placement(
        Version(1, 30),
        image_minimum_gc_age_seconds=3600.0,
        eviction_hard={"imagefs.available": "20%"},
    )
    out = merge_kubeadm("apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\n", "k", p)
    flags = {f.name: f.value for f in read_kubeadm("k", out)[0].flags}
    assert flags == {
        "minimum-image-ttl-duration": "1h0m0s",
        "eviction-hard": "imagefs.available<20%",
    }


# --------------------------------------------------------------------------- lint's view


JOIN_WITH_KUBELET_DOC = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
nodeRegistration:
  kubeletExtraArgs:
    image-gc-high-threshold: "80"
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
imageGCHighThresholdPercent: 90
imageGCLowThresholdPercent: 70
"""


def test_lint_does_not_credit_a_kubelet_document_in_a_join_file() -> None:
    docs = read_kubeadm("join.yaml", JOIN_WITH_KUBELET_DOC)
    report = lint_documents(docs, LintContext(Version(1, 30), parse_runtime(CONTAINERD)))
    low = report.effective.kubelet["image_gc_low_threshold_percent"]
    assert (low.value, low.layer) == (80, Layer.DEFAULT)  # not the ignored document's 70
    high = report.effective.kubelet["image_gc_high_threshold_percent"]
    assert (high.value, high.layer) == (80, Layer.FLAG)
    [w] = [f for f in report.findings if f.code == "W214"]
    assert w.origin is not None and (w.origin.path, w.origin.line) == ("join.yaml", 7)
    assert "ignored by `kubeadm join`" in w.message
    assert "imageGCHighThresholdPercent, imageGCLowThresholdPercent" in w.message
    assert "joinconfiguration.go" in w.consequence
    # A flag is the per-node home in a join file: no W205 ("belongs in the config file").
    assert not [f for f in report.findings if f.code in ("W205", "W208")]


def test_lint_credits_the_kubelet_document_of_an_init_file() -> None:
    text = JOIN_WITH_KUBELET_DOC.replace("JoinConfiguration", "InitConfiguration")
    docs = read_kubeadm("init.yaml", text)
    report = lint_documents(docs, LintContext(Version(1, 30), parse_runtime(CONTAINERD)))
    low = report.effective.kubelet["image_gc_low_threshold_percent"]
    assert (low.value, low.layer) == (70, Layer.CONFIG_FILE)
    assert not [f for f in report.findings if f.code == "W214"]
    assert {f.code for f in report.findings} >= {"W205", "W208"}


def test_join_file_kubelet_document_is_left_alone() -> None:
    """The merge does not edit a document kubeadm join ignores; lint says it is ignored."""
    p = _placement(Version(1, 30), **CLASSIC)
    out = merge_kubeadm(JOIN_WITH_KUBELET_DOC, "k", p)
    assert out == JOIN_WITH_KUBELET_DOC.replace(
        '    image-gc-high-threshold: "80"\n',
        '    image-gc-high-threshold: "80"\n    image-gc-low-threshold: "70"\n',
    )


# --------------------------------------------------------------------------- scalars


def _load(text: str, version: tuple[int, int]) -> object:
    from ruamel.yaml import YAML

    y = YAML(typ="safe", pure=True)
    y.version = version
    return y.load(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from([None, '"', "'", PLAIN_OR_SINGLE]))
@example("true", None)
@example("on", None)
@example("80", None)
@example("1:30", None)
@example("0x1F", PLAIN_OR_SINGLE)
@example("0b101", None)
@example(".NaN", None)
@example("1_000", None)
@example("imagefs.available<15%", None)
@example("it's", "'")
def test_a_written_string_reads_back_as_that_string(s: str, style: str | None) -> None:
    """kubeadm decodes kubeletExtraArgs into map[string]string: a value written plain must
    not turn into a number or a boolean, in YAML 1.1 (sigs.k8s.io/yaml) or 1.2."""
    text = f"k: {scalar_text(s, style)}\n"
    for version in ((1, 1), (1, 2)):
        assert _load(text, version) == {"k": s}, (text, version)


def test_plain_where_it_can_be() -> None:
    assert scalar_text("30m0s") == "30m0s"
    assert scalar_text("gpu=true") == "gpu=true"
    assert scalar_text("80") == '"80"'
    assert scalar_text("on", PLAIN_OR_SINGLE) == "'on'"
    assert scalar_text(80) == "80" and scalar_text(False) == "false"


# --------------------------------------------------------------------------- any placement

_FILES = [
    ("v1beta3-join-classic-gc-args.yaml", Version(1, 30)),
    ("v1beta3-join-kubeadm-testdata.yaml", Version(1, 23)),
    ("v1beta4-init-classic-gc-args.yaml", Version(1, 32)),
    ("v1beta4-init-full-example.yaml", Version(1, 31)),
    ("v1beta4-join-example.yaml", Version(1, 33)),
    ("v1beta4-dual-stack-init-website.yaml", Version(1, 32)),
    ("v1beta4-dual-stack-join-website.yaml", Version(1, 32)),
]


def _opt(s: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | s


_settings = st.builds(
    ImageSettings,
    image_gc_high_threshold_percent=_opt(st.integers(1, 100)),
    image_gc_low_threshold_percent=_opt(st.integers(0, 99)),
    image_minimum_gc_age_seconds=_opt(st.integers(1, 10**6).map(float)),
    image_pull_progress_deadline_seconds=_opt(st.integers(1, 7200).map(float)),
    serialize_image_pulls=_opt(st.booleans()),
    max_parallel_image_pulls=_opt(st.integers(2, 10)),
)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(_FILES), _settings)
def test_any_placement_lands_where_the_command_reads_it(
    sample: tuple[str, Version], wanted: ImageSettings
) -> None:
    name, k8s = sample
    text = (CORPUS / name).read_text()
    p = place(wanted, k8s, parse_runtime(CONTAINERD))
    join = "join" in name
    if join and "maxParallelImagePulls" in p.kubelet_fields:
        with pytest.raises(InputError, match="maxParallelImagePulls has no kubelet flag"):
            merge_kubeadm(text, name, p)
        return
    merged = merge_kubeadm(text, name, p)
    assert merge_kubeadm(merged, name, p) == merged
    docs = read_kubeadm(name, merged)
    flags = {f.name: f.value for d in docs for f in d.flags}
    fields = {f.field: f.value for d in docs for f in d.fields}
    assert "image-pull-progress-deadline" not in flags  # removed in 1.24, no effect before
    for field, value in p.kubelet_fields.items():
        row = kubelet_setting_by_field(field)
        assert row is not None
        if join:  # the field as its flag; a KubeletConfiguration would be ignored
            assert field not in fields
            assert row.flag is not None and row.flag in flags
        else:  # the field in the KubeletConfiguration, no flag overriding it
            assert fields[field] == value
            assert row.flag not in flags
    removed, _ = _changed_lines(text, merged)
    assert all("image" in line or "value:" in line or "serialize" in line for line in removed)
