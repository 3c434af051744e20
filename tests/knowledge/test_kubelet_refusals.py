"""The kubelet's refusals as knowledge: feature gates per version, eviction thresholds,
pflag's value parsing, flags that accept only some values. Each on both sides of its
version boundary, with the kubelet's own wording."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from mlnode.errors import InvalidValue
from mlnode.knowledge.eviction import (
    eviction_signals,
    eviction_startup_message,
    threshold_error,
    threshold_errors,
)
from mlnode.knowledge.feature_gates import (
    GateVerdict,
    check_feature_gate,
    feature_gate_error,
    known_feature_gates,
)
from mlnode.knowledge.table import (
    KUBELET_SETTINGS,
    PflagType,
    flag_value_type,
    kubelet_setting_by_flag,
    restricted_flag_values,
)
from mlnode.knowledge.values import go_parse_int32, parse_flag_value
from mlnode.versions import Version

V = Version.parse
_FORMAT = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)


# --- feature gates ---------------------------------------------------------------------


def test_gate_data_has_a_source_and_lists_only_versions_read() -> None:
    text = resources.files("mlnode.knowledge").joinpath("data/feature_gates.json").read_text()
    data = json.loads(text)
    assert "kube_features.go" in data["_source"]
    assert "unrecognized feature gate" in data["_source"]
    assert sorted(data["versions"], key=lambda m: V(m).key()) == [
        "1.21", "1.22", "1.23", "1.24", "1.26", "1.27",
        "1.28", "1.29", "1.30", "1.31", "1.32",
    ]  # fmt: skip
    for minor, entry in data["versions"].items():
        assert entry["k8s_patch_read"].startswith(minor + ".")
        assert {"AllAlpha", "AllBeta"} <= set(entry["gates"])


@pytest.mark.parametrize("minor", ["1.20", "1.25", "1.33", "1.34", "1.35"])
def test_versions_not_read_have_no_list(minor: str) -> None:
    assert known_feature_gates(V(minor)) is None
    assert feature_gate_error("NoSuchGate", True, V(minor)) is None


def test_versions_not_read_use_the_website_pages_for_the_gates_they_have() -> None:
    # ImageMaximumGCAge.md: beta 1.30-1.34, stable and locked from 1.35.
    assert check_feature_gate("ImageMaximumGCAge", False, V("1.34")) == GateVerdict(True)
    assert check_feature_gate("ImageMaximumGCAge", False, V("1.35")) == GateVerdict(
        True, "cannot set feature gate ImageMaximumGCAge to false, feature is locked to true"
    )
    assert check_feature_gate("ImageMaximumGCAge", True, V("1.35")) == GateVerdict(True)
    # Before the first fromVersion the gate does not exist yet.
    for minor in ("1.20", "1.25"):
        assert check_feature_gate("ImageMaximumGCAge", True, V(minor)) == GateVerdict(
            True, "unrecognized feature gate: ImageMaximumGCAge"
        )
    assert check_feature_gate("KubeletEnsureSecretPulledImages", True, V("1.33")).error is None
    assert check_feature_gate("AllAlpha", False, V("1.35")) == GateVerdict(True)
    # After the last stage (removed, or the page is behind) and unlisted gates: not checked.
    assert check_feature_gate("KubeletCredentialProviders", True, V("1.33")) == GateVerdict(False)
    assert check_feature_gate("NoSuchGate", True, V("1.35")) == GateVerdict(False)
    # Where a list was read, the list decides (not the website).
    assert check_feature_gate("KubeletCredentialProviders", True, V("1.28")).error == (
        "unrecognized feature gate: KubeletCredentialProviders"
    )


@pytest.mark.parametrize(
    ("gate", "before", "after"),
    [
        ("ImageMaximumGCAge", "1.28", "1.29"),  # KEP-4210 alpha in 1.29
        ("KubeletSeparateDiskGC", "1.28", "1.29"),
        ("ImageVolume", "1.30", "1.31"),
    ],
)
def test_gate_unknown_before_it_arrives(gate: str, before: str, after: str) -> None:
    assert feature_gate_error(gate, True, V(before)) == f"unrecognized feature gate: {gate}"
    assert feature_gate_error(gate, True, V(after)) is None


@pytest.mark.parametrize(
    ("gate", "last", "gone"),
    [("DynamicKubeletConfig", "1.24", "1.26"), ("KubeletCredentialProviders", "1.27", "1.28")],
)
def test_gate_unknown_after_its_removal(gate: str, last: str, gone: str) -> None:
    assert feature_gate_error(gate, True, V(last)) is None
    assert feature_gate_error(gate, True, V(gone)) == f"unrecognized feature gate: {gate}"


@pytest.mark.parametrize(
    ("gate", "open_", "locked"),
    [
        ("KubeletCredentialProviders", "1.24", "1.26"),  # GA in 1.26
        ("DisableKubeletCloudCredentialProviders", "1.30", "1.31"),
        ("CPUManager", "1.24", "1.26"),
    ],
)
def test_locked_gate_refuses_the_other_value(gate: str, open_: str, locked: str) -> None:
    assert feature_gate_error(gate, False, V(open_)) is None
    assert feature_gate_error(gate, False, V(locked)) == (
        f"cannot set feature gate {gate} to false, feature is locked to true"
    )
    assert feature_gate_error(gate, True, V(locked)) is None  # the default is fine


def test_image_gate_stages_match_the_fact_table() -> None:
    gates_129, gates_130 = known_feature_gates(V("1.29")), known_feature_gates(V("1.30"))
    assert gates_129 is not None and gates_130 is not None
    spec_129, spec_130 = gates_129["ImageMaximumGCAge"], gates_130["ImageMaximumGCAge"]
    assert (spec_129.stage, spec_129.default) == ("Alpha", False)
    assert (spec_130.stage, spec_130.default) == ("Beta", True)


# --- eviction thresholds ---------------------------------------------------------------


def test_containerfs_signals_arrive_in_1_29() -> None:
    assert "containerfs.available" not in eviction_signals(V("1.28"))
    assert threshold_error("containerfs.available", "10%", V("1.28")) == (
        "unsupported eviction signal containerfs.available"
    )
    assert threshold_error("containerfs.available", "10%", V("1.29")) is None


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("15%", None),
        ("0%", None),  # exactly 0% and 100% drop the threshold
        ("100%", None),
        ("-1%", "eviction percentage threshold imagefs.available must be >= 0%: -1%"),
        ("101%", "eviction percentage threshold imagefs.available must be <= 100%: 101%"),
        ("100.5%", "eviction percentage threshold imagefs.available must be <= 100%: 100.5%"),
        ("abc%", 'strconv.ParseFloat: parsing "abc": invalid syntax'),
        ("1e39%", 'strconv.ParseFloat: parsing "1e39": value out of range'),
        ("10Gi", None),
        ("1.5e3", None),
        ("0", "eviction threshold imagefs.available must be positive: 0"),
        ("0Gi", "eviction threshold imagefs.available must be positive: 0"),
        ("-1024Mi", "eviction threshold imagefs.available must be positive: -1Gi"),
        ("<<", _FORMAT),
        ("1.5.5", _FORMAT),
        ("10 Gi", _FORMAT),
        ("10Mk", "unable to parse quantity's suffix"),
        (".", "eviction threshold imagefs.available must be positive: 0"),  # Go reads 0
        ("-", "eviction threshold imagefs.available must be positive: 0"),
        ("Mi", "eviction threshold imagefs.available must be positive: 0"),
        ("", _FORMAT),
    ],
)
def test_threshold_parser(value: str, error: str | None) -> None:
    for minor in ("1.21", "1.28", "1.29", "1.32"):
        assert threshold_error("imagefs.available", value, V(minor)) == error


def test_threshold_errors_lists_every_refused_statement() -> None:
    statements = {"imagefs.available": "15%", "nodefs.available": "-1%", "foo": "1Gi"}
    assert threshold_errors(statements, V("1.30")) == (
        "eviction percentage threshold nodefs.available must be >= 0%: -1%",
        "unsupported eviction signal foo",
    )


def test_unknown_signal_and_startup_wording() -> None:
    error = threshold_error("imagefs.availabel", "15%", V("1.30"))
    assert error == "unsupported eviction signal imagefs.availabel"
    assert eviction_startup_message(error) == (
        "failed to run Kubelet: unsupported eviction signal imagefs.availabel"
    )


# --- pflag value parsing ---------------------------------------------------------------


def test_every_setting_flag_has_a_pflag_type() -> None:
    kinds = {"percent": PflagType.INT32, "int": PflagType.INT32, "duration": PflagType.DURATION}
    kinds |= {"bool": PflagType.BOOL, "signal-map": PflagType.LANGLE_MAP}
    for row in KUBELET_SETTINGS:
        if row.flag is None:
            continue
        version = V("1.23") if row.flag == "image-pull-progress-deadline" else V("1.30")
        vt = flag_value_type(row.flag, version)
        assert vt is not None, row.flag
        assert vt.pflag_type is kinds[row.kind.value], row.flag
    assert flag_value_type("image-pull-progress-deadline", V("1.24")) is None
    assert flag_value_type("container-runtime", V("1.26")) is not None
    assert flag_value_type("container-runtime", V("1.27")) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("80", 80), ("0x50", 80), ("0120", 80), ("0o120", 80), ("0b1010000", 80), ("8_0", 80)],
)
def test_int32_uses_base_prefixes_like_parseint_base_0(text: str, value: int) -> None:
    assert go_parse_int32(text) == value


@pytest.mark.parametrize(
    ("flag", "text", "error"),
    [
        (
            "image-gc-high-threshold",
            "x",
            'invalid argument "x" for "--image-gc-high-threshold" flag:'
            ' strconv.ParseInt: parsing "x": invalid syntax',
        ),
        (
            "image-gc-low-threshold",
            "2147483648",
            'invalid argument "2147483648" for "--image-gc-low-threshold" flag:'
            ' strconv.ParseInt: parsing "2147483648": value out of range',
        ),
        (
            "registry-qps",
            "5.5",
            'invalid argument "5.5" for "--registry-qps" flag:'
            ' strconv.ParseInt: parsing "5.5": invalid syntax',
        ),
        (
            "node-status-max-images",
            "08",
            'invalid argument "08" for "--node-status-max-images" flag:'
            ' strconv.ParseInt: parsing "08": invalid syntax',
        ),
        (
            "serialize-image-pulls",
            "yes",
            'invalid argument "yes" for "--serialize-image-pulls" flag:'
            ' strconv.ParseBool: parsing "yes": invalid syntax',
        ),
        (
            "minimum-image-ttl-duration",
            "2 minutes",
            'invalid argument "2 minutes" for "--minimum-image-ttl-duration" flag:'
            ' time: invalid duration "2 minutes"',
        ),
        (
            "runtime-request-timeout",
            "10",
            'invalid argument "10" for "--runtime-request-timeout" flag:'
            ' time: missing unit in duration "10"',
        ),
    ],
)
def test_pflag_wording(flag: str, text: str, error: str) -> None:
    row = kubelet_setting_by_flag(flag)
    assert row is not None
    with pytest.raises(InvalidValue) as e:
        parse_flag_value(row, text)
    assert str(e.value) == error


# --- flags that accept only some values ------------------------------------------------


def test_container_runtime_values_per_version() -> None:
    before = restricted_flag_values("container-runtime", V("1.23"))
    assert before is not None and before.allowed == {"docker", "remote"}
    for minor in ("1.24", "1.26"):
        rule = restricted_flag_values("container-runtime", V(minor))
        assert rule is not None and rule.allowed == {"remote"}
        assert rule.error.format(value='"docker"') == (
            'unsupported CRI runtime: "docker", only "remote" is currently supported'
        )
        assert rule.startup.startswith("failed to validate kubelet flags: ")
    assert restricted_flag_values("container-runtime", V("1.27")) is None


def test_feature_gate_stage_table_agrees_with_the_gate_data() -> None:
    from mlnode.knowledge.table import FEATURE_GATES

    for row in FEATURE_GATES:
        later = [
            r.since for r in FEATURE_GATES if r.gate == row.gate and r.since.key() > row.since.key()
        ]
        end = min(later, key=Version.key) if later else None
        for minor in ("1.29", "1.30", "1.31", "1.32", "1.35"):
            version = V(minor)
            if not version.at_least(row.since) or (end is not None and version.at_least(end)):
                continue
            gates = known_feature_gates(version)
            if gates is None:
                continue
            spec = gates[row.gate]
            assert (spec.stage.lower(), spec.default, spec.locked) == (
                row.stage.lower(),
                row.default,
                row.locked,
            ), (row.gate, minor)
