"""`mlnode render --merge` into genuine upstream files (tests/data/upstream, PROVENANCE.md).

The classic settings (``--image-gc-low-threshold 70 --image-gc-high-threshold 80
--image-pull-progress-deadline 30m``) are merged into every genuine file of a format render
can merge. Each result must lint with no error for the same versions, and the diff must be
exactly the intended lines: every other line kept byte for byte and in order, and every
comment still directly above the line it described. kubeadm documents are covered by the
kubeadm merge tests (tests/formats, helper "kubeadm"); systemd units are not a format render
merges into, so those are refused with one line and no byte changed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app

CORPUS = Path(__file__).parent.parent / "data" / "upstream"
LINE = "--image-gc-low-threshold 70 --image-gc-high-threshold 80 --image-pull-progress-deadline 30m"
runner = CliRunner()


def _with_classic_line(text: str) -> str:
    """kubespray's rendered kubelet.env with the classic line added to KUBELET_ARGS."""
    anchor = "--runtime-cgroups=/system.slice/containerd.service \\\n"
    assert anchor in text
    return text.replace(anchor, anchor + LINE + " \\\n")


@dataclass(frozen=True)
class MergeCase:
    file: str
    kubernetes: str
    runtime: str
    #: lines the merge adds and removes (a changed line is one of each)
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    #: the line directly above the first added line
    above: str | None = None
    exit_code: int = 0
    variant: Callable[[str], str] | None = None
    name: str = ""

    @property
    def id(self) -> str:
        return f"{self.name or Path(self.file).name}@{self.kubernetes}-{self.runtime}"


GC_FIELDS = ("imageGCHighThresholdPercent: 80\n", "imageGCLowThresholdPercent: 70\n")
KUBESPRAY_VARS = (
    "kubelet_image_gc_high_threshold: 80\n",
    "kubelet_image_gc_low_threshold: 70\n",
    "containerd_image_pull_progress_timeout: 30m0s\n",
)
CTRD_NEW = ('    image_pull_progress_timeout = "30m0s"\n',)
CTRD_ABOVE = '    unset_seccomp_profile = ""\n'

CASES = [
    MergeCase(
        "kubespray/kubelet-config.yaml",
        "1.35",
        "containerd@2.2.3",
        added=GC_FIELDS,
        above="maxParallelImagePulls: 1\n",
    ),
    MergeCase(
        "kubespray/k8s-cluster.yml",
        "1.35",
        "containerd@2.2.3",
        added=KUBESPRAY_VARS,
        above="remove_anonymous_access: false\n",
    ),
    MergeCase(
        "kubespray/k8s-cluster.yml",
        "1.30",
        "containerd@1.7.20",
        added=KUBESPRAY_VARS,
        above="remove_anonymous_access: false\n",
    ),
    # The rendered kubelet.env carries no image flag: nothing to merge (the fields go to
    # the kubelet config and containerd's config), not one byte changed.
    MergeCase("kubespray/kubelet.env", "1.35", "containerd@2.2.3"),
    MergeCase("kubespray/kubelet.env", "1.30", "containerd@1.7.20"),
    # ... and with the classic line in KUBELET_ARGS the continuation line holding it goes.
    MergeCase(
        "kubespray/kubelet.env",
        "1.30",
        "containerd@1.7.20",
        removed=(LINE + " \\\n",),
        variant=_with_classic_line,
        name="kubelet.env+classic-line",
    ),
    MergeCase(
        "kubespray/kubelet.env",
        "1.35",
        "containerd@2.2.3",
        removed=(LINE + " \\\n",),
        variant=_with_classic_line,
        name="kubelet.env+classic-line",
    ),
    # containerd 1.6 has no image_pull_progress_timeout: refused (exit 1), file untouched.
    MergeCase("containerd/config-default-1.6.20.toml", "1.28", "containerd@1.6.20", exit_code=1),
    MergeCase("containerd/default-1.6.toml", "1.28", "containerd@1.6.28", exit_code=1),
    # A 1.6 default config left on a node upgraded to containerd 1.7 / 2.0: the key is added
    # to the CRI table, after its last key and before the blank line and the next table.
    MergeCase(
        "containerd/config-default-1.6.20.toml",
        "1.30",
        "containerd@1.7.20",
        added=CTRD_NEW,
        above=CTRD_ABOVE,
    ),
    MergeCase(
        "containerd/default-1.6.toml",
        "1.32",
        "containerd@2.0.5",
        added=CTRD_NEW,
        above=CTRD_ABOVE,
    ),
    MergeCase(
        "containerd/default-1.7.toml",
        "1.29",
        "containerd@1.7.13",
        added=CTRD_NEW,
        removed=('    image_pull_progress_timeout = "5m0s"\n',),
        above="    ignore_image_defined_volumes = false\n",
    ),
    MergeCase(
        "containerd/default-1.7.toml",
        "1.32",
        "containerd@2.0.5",
        added=CTRD_NEW,
        removed=('    image_pull_progress_timeout = "5m0s"\n',),
        above="    ignore_image_defined_volumes = false\n",
    ),
    MergeCase(
        "containerd/docs-cri-config-2.0.11-v3.toml",
        "1.32",
        "containerd@2.0.11",
        added=CTRD_NEW,
        removed=("    image_pull_progress_timeout = '5m0s'\n",),
        above="    max_concurrent_downloads = 3\n",
    ),
    # CRI-O 1.20 has no pull_progress_timeout: refused; 1.32 reads it in [crio.image].
    MergeCase("crio/config-v1.17.0.toml", "1.20", "crio@1.20.0", exit_code=1),
    MergeCase(
        "crio/config-v1.17.0.toml",
        "1.32",
        "crio@1.32.0",
        added=('pull_progress_timeout = "30m0s"\n',),
        above='big_files_temporary_dir = ""\n',
    ),
]


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _prepare(tmp_path: Path, case: MergeCase) -> tuple[Path, str]:
    target = tmp_path / Path(case.file).name
    text = (CORPUS / case.file).read_text()
    if case.variant is not None:
        text = case.variant(text)
    target.write_text(text)
    return target, text


def _merge(target: Path, case: MergeCase) -> tuple[int, str, str]:
    res = runner.invoke(
        app,
        [
            "render",
            "--merge",
            str(target),
            "--from-kubelet-args",
            LINE,
            "--kubernetes-version",
            case.kubernetes,
            "--runtime",
            case.runtime,
        ],
    )
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), repr(
        res.exception
    )
    assert "Traceback" not in res.stdout + res.stderr
    return res.exit_code, res.stdout, res.stderr


def _changes(old: list[str], new: list[str]) -> tuple[list[str], list[str]]:
    removed: list[str] = []
    added: list[str] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed.extend(old[i1:i2])
            added.extend(new[j1:j2])
    return removed, added


def assert_only_intended(
    old_text: str, new_text: str, added: tuple[str, ...], removed: tuple[str, ...]
) -> None:
    """The diff is exactly ``added``/``removed``; all else byte for byte, in order, and each
    comment directly above the line it described (or that line's replacement)."""
    old = old_text.splitlines(keepends=True)
    new = new_text.splitlines(keepends=True)
    got_removed, got_added = _changes(old, new)
    assert sorted(got_removed) == sorted(removed), "".join(difflib.unified_diff(old, new))
    assert sorted(got_added) == sorted(added), "".join(difflib.unified_diff(old, new))
    kept_old = [i for i, line in enumerate(old) if line not in removed]
    kept_new = [j for j, line in enumerate(new) if line not in added]
    assert [old[i] for i in kept_old] == [new[j] for j in kept_new]
    for i, j in zip(kept_old, kept_new, strict=True):
        if not old[i].lstrip().startswith("#") or i + 1 >= len(old):
            continue
        below_old, below_new = old[i + 1], new[j + 1] if j + 1 < len(new) else ""
        if below_old in removed:  # the described line was replaced: its new form follows
            assert below_new in added, (old[i], below_new)
        else:
            assert below_new == below_old, (old[i], below_old, below_new)


def _lint_errors(target: Path, case: MergeCase) -> list[dict[str, object]]:
    res = runner.invoke(
        app,
        [
            "lint",
            str(target),
            "--kubernetes-version",
            case.kubernetes,
            "--runtime",
            case.runtime,
            "-o",
            "json",
        ],
    )
    assert res.exit_code in (0, 1), res.output
    findings: list[dict[str, object]] = json.loads(res.stdout)["findings"]
    return [f for f in findings if f["severity"] == "error"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_merge_genuine_file(tmp_path: Path, case: MergeCase) -> None:
    target, before = _prepare(tmp_path, case)
    code, out, err = _merge(target, case)
    assert code == case.exit_code, out + err
    after = target.read_text()
    assert_only_intended(before, after, case.added, case.removed)
    if case.above is not None:
        lines = after.splitlines(keepends=True)
        first = lines.index(case.added[0])
        assert lines[first - 1] == case.above, lines[first - 2 : first + 2]
        # the added lines stand together, in the order given
        assert lines[first : first + len(case.added)] == list(case.added)
    assert _lint_errors(target, case) == []
    if case.exit_code == 1:
        assert err.startswith("mlnode: not written: "), err
    if not case.added and not case.removed:
        assert out.endswith("already up to date")
        assert list(tmp_path.iterdir()) == [target]  # no backup either
    # Merging again changes nothing.
    digest = _digest(target)
    again, out2, _ = _merge(target, case)
    assert again == case.exit_code
    assert _digest(target) == digest, out2


@pytest.mark.parametrize(
    "name", ["kubeadm-packaging/10-kubeadm.conf", "kubeadm-packaging/kubelet.service"]
)
def test_units_are_not_a_merge_format(tmp_path: Path, name: str) -> None:
    """kubeadm's unit and drop-in: render does not merge into systemd units (`apply` edits
    the files they name); refused with one line naming the file, nothing written."""
    target = tmp_path / Path(name).name
    shutil.copy(CORPUS / name, target)
    digest = _digest(target)
    code, out, err = _merge(target, MergeCase(name, "1.33", "containerd@2.0.5"))
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line == (
        f"mlnode: error: {target}: mlnode cannot merge settings into a systemd-unit file"
    )
    assert _digest(target) == digest
    assert list(tmp_path.iterdir()) == [target]
