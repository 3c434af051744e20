"""Top-level YAML scalar changes made in the text: every other byte of the file stays.

A ruamel round trip re-emits what it read (``True`` -> ``true``, ``key : v`` -> ``key: v``)
and can move a comment block onto another key; kubespray's genuine files showed both
(tests/upstream/test_corpus_merge.py). These pin the text edits down on small inputs.
"""

from __future__ import annotations

from ruamel.yaml.comments import CommentedMap

from mlnode.formats._yamlsplice import splice_top_level
from mlnode.formats.kubelet_config import _plain, _rt_yaml, merge_kubelet_config
from mlnode.knowledge.placement import Placement
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

HEAD = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"


def _placement(**fields: object) -> Placement:
    return Placement(
        Version(1, 31),
        RuntimeSpec(RuntimeKind.CONTAINERD, Version(1, 7, 20)),
        kubelet_fields=fields,
    )


def test_unrelated_spellings_are_kept() -> None:
    text = HEAD + "failSwapOn: True\ncontainerRuntimeEndpoint : unix:///x.sock\nmaxPods: 110\n"
    out = merge_kubelet_config(text, "c", _placement(imageGCHighThresholdPercent=80))
    assert out == text + "imageGCHighThresholdPercent: 80\n"


def test_changed_value_keeps_its_line_comment_and_the_comment_above() -> None:
    text = HEAD + "# GC\nimageGCHighThresholdPercent: 85   # was 85\nmaxPods: 1\n"
    out = merge_kubelet_config(text, "c", _placement(imageGCHighThresholdPercent=80))
    assert out == HEAD + "# GC\nimageGCHighThresholdPercent: 80   # was 85\nmaxPods: 1\n"


def test_new_key_goes_before_the_comments_of_what_follows() -> None:
    text = "---\na: 1\nb: []\n# about c\n\n# c is\nc: 3\n"
    y = _rt_yaml(text)
    doc = y.load(text)
    before = _plain(doc)
    doc.insert(2, "n", 5)  # where a merge puts it: after b
    assert (
        splice_top_level(text, before, doc, y)
        == "---\na: 1\nb: []\nn: 5\n# about c\n\n# c is\nc: 3\n"
    )


def test_no_trailing_newline_and_removal() -> None:
    text = "a: 1\nb: 2"
    y = _rt_yaml(text)
    doc = y.load(text)
    before = _plain(doc)
    del doc["a"]
    doc["z"] = "x"
    assert splice_top_level(text, before, doc, y) == "b: 2\nz: x\n"


def test_nested_or_multiline_changes_fall_back() -> None:
    y = _rt_yaml("")
    nested = "m:\n  k: 1\n"
    doc = y.load(nested)
    before = _plain(doc)
    doc["m"]["k"] = 2
    assert splice_top_level(nested, before, doc, y) is None
    folded = "a: >\n  long\n  text\nb: 1\n"
    doc = y.load(folded)
    before = _plain(doc)
    doc["a"] = "short"
    assert splice_top_level(folded, before, doc, y) is None
    two_docs = "a: 1\n---\nb: 2\n"
    assert splice_top_level(two_docs, {"a": 1}, CommentedMap([("a", 2)]), y) is None
