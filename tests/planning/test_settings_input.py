"""The settings precedence below the CLI: plan file < --from-kubelet-args < explicit options."""

from __future__ import annotations

import pytest

from mlnode.errors import UsageError
from mlnode.formats.kubelet_argv import parse_kubelet_args
from mlnode.planning.settings_input import SettingsSources, resolve_settings
from mlnode.versions import Version, parse_runtime


def test_kubelet_args_give_settings_and_name_the_rest() -> None:
    settings, ignored = parse_kubelet_args("--image-gc-high-threshold 80 --v=2")
    assert settings.image_gc_high_threshold_percent == 80
    assert ignored == ("--v=2",)
    with pytest.raises(UsageError, match="is not a flag"):
        parse_kubelet_args("stray --v=2")


def test_explicit_options_join_the_flags_and_a_conflict_is_refused() -> None:
    sources = SettingsSources(
        from_kubelet_args="--image-gc-high-threshold=80",
        explicit={"image_gc_low_threshold_percent": 70, "image_minimum_gc_age_seconds": "5m"},
        kubernetes_version="1.30",
        runtime="containerd@1.7.13",
    )
    si = resolve_settings(sources)
    assert si.settings.image_gc_high_threshold_percent == 80
    assert si.settings.image_gc_low_threshold_percent == 70
    assert si.settings.image_minimum_gc_age_seconds == 300.0
    clash = SettingsSources(
        from_kubelet_args="--image-gc-high-threshold=80",
        explicit={"image_gc_high_threshold_percent": 85},
        kubernetes_version="1.30",
        runtime="containerd",
    )
    with pytest.raises(UsageError, match="give it once"):
        resolve_settings(clash)


def test_versions_default_only_when_not_given() -> None:
    given = SettingsSources(explicit={"image_gc_high_threshold_percent": 80})
    with pytest.raises(UsageError, match="Kubernetes version is needed"):
        resolve_settings(given)
    si = resolve_settings(
        given,
        default_kubernetes_version=Version(1, 29, 4),
        default_runtime=parse_runtime("containerd@1.7.13"),
    )
    assert si.kubernetes_version == Version(1, 29, 4) and str(si.runtime) == "containerd@1.7.13"
    explicit = resolve_settings(
        SettingsSources(
            explicit={"image_gc_high_threshold_percent": 80},
            kubernetes_version="1.31",
            runtime="crio@1.31.0",
        ),
        default_kubernetes_version=Version(1, 29, 4),
        default_runtime=parse_runtime("containerd@1.7.13"),
    )
    assert explicit.kubernetes_version.minor_line == Version(1, 31).minor_line
