"""ServiceManager implementations and the Verifier, with injected runners, clocks and HTTP."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mlnode.errors import ApplyError
from mlnode.node import CommandResult, run_command
from mlnode.ops.services import (
    ActionKind,
    RecordingServiceManager,
    ServiceAction,
    ServiceManager,
    SystemdServiceManager,
    perform,
)
from mlnode.ops.verify import (
    CommandRuntimeConfig,
    Expectations,
    RuntimeExpectation,
    UrlConfigzSource,
    Verifier,
    kubectl_configz,
    values_match,
)


class FakeRunner:
    def __init__(self, answers: dict[tuple[str, ...], CommandResult] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.answers = answers or {}

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        t = tuple(argv)
        self.calls.append(t)
        return self.answers.get(t, CommandResult(t, 0))


def test_systemd_manager_runs_systemctl() -> None:
    r = FakeRunner({("systemctl", "is-active", "--quiet", "crio"): CommandResult((), 3)})
    m = SystemdServiceManager(r)
    assert isinstance(m, ServiceManager)
    done = perform(
        m,
        [ServiceAction(ActionKind.DAEMON_RELOAD), ServiceAction(ActionKind.RESTART, "kubelet")],
    )
    assert done == ["systemctl daemon-reload", "systemctl restart kubelet"]
    assert r.calls == [("systemctl", "daemon-reload"), ("systemctl", "restart", "kubelet")]
    assert m.is_active("kubelet") and not m.is_active("crio")


def test_systemd_manager_failure_is_apply_error() -> None:
    argv = ("systemctl", "restart", "kubelet")
    r = FakeRunner({argv: CommandResult(argv, 1, "", "Job for kubelet.service failed.\n")})
    with pytest.raises(ApplyError, match=r"exited 1: Job for kubelet\.service failed\."):
        SystemdServiceManager(r).restart("kubelet")


def test_run_command_missing_program() -> None:
    res = run_command(["/nonexistent/systemctl", "daemon-reload"])
    assert res.returncode == 127


def test_recording_manager() -> None:
    m = RecordingServiceManager(active={"kubelet": False})
    m.daemon_reload()
    m.restart("kubelet")
    assert m.calls == ["daemon-reload", "restart kubelet"]
    assert not m.is_active("kubelet") and m.is_active("containerd")


@pytest.mark.parametrize(
    ("want", "got", "same"),
    [
        ("30m0s", "30m", True),
        ("30m0s", "1800s", True),
        ("5m0s", "30m0s", False),
        (75, 75, True),
        (75, 75.0, True),
        (False, False, True),
        (False, 0, False),
        ({"imagefs.available": "15%"}, {"imagefs.available": "15%"}, True),
        ({"imagefs.available": "15%"}, {"imagefs.available": "10%"}, False),
    ],
)
def test_values_match(want: object, got: object, same: bool) -> None:
    assert values_match(want, got) is same


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_verifier_polls_until_healthy_and_values_show() -> None:
    clock = Clock()
    state = {"n": 0}

    def get(url: str, timeout: float) -> tuple[int, str]:
        state["n"] += 1
        if url.endswith("/healthz"):
            if clock.t < 3:
                raise OSError("connection refused")
            return 200, "ok"
        gc = 85 if clock.t < 5 else 75
        return 200, f'{{"kubeletconfig": {{"imageGCHighThresholdPercent": {gc}}}}}'

    runtime = CommandRuntimeConfig(
        ("containerd", "config", "dump"),
        FakeRunner(
            {
                ("containerd", "config", "dump"): CommandResult(
                    (),
                    0,
                    'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n'
                    'image_pull_progress_timeout = "30m0s"\n',
                )
            }
        ),
    )
    v = Verifier(
        RecordingServiceManager(),
        get=get,
        configz=UrlConfigzSource("http://x/configz", get),
        runtime_config=runtime,
        clock=clock.now,
        sleep=clock.sleep,
    )
    expect = Expectations(
        units=("kubelet", "containerd"),
        kubelet_fields={"imageGCHighThresholdPercent": 75},
        runtime_values=(
            RuntimeExpectation(
                ("plugins", "io.containerd.grpc.v1.cri"), "image_pull_progress_timeout", "30m"
            ),
        ),
    )
    report = v.verify(expect, timeout_seconds=60)
    assert report.ok, report.summary()
    assert report.elapsed_seconds == 6  # passed at t=5 and again at t=6
    assert report.attempts == 7


def test_verifier_times_out_with_reasons() -> None:
    clock = Clock()

    def get(url: str, timeout: float) -> tuple[int, str]:
        return 500, "internal error"

    v = Verifier(
        RecordingServiceManager(active={"kubelet": False}),
        get=get,
        clock=clock.now,
        sleep=clock.sleep,
    )
    report = v.verify(Expectations(units=("kubelet",)), timeout_seconds=5)
    assert not report.ok
    assert report.summary().startswith("not verified within 5s: unit kubelet active: not active")
    assert "HTTP 500" in report.summary()
    assert clock.t == 5


def test_kubectl_configz_source() -> None:
    argv = ("kubectl", "get", "--raw", "/api/v1/nodes/gpu-1/proxy/configz")
    r = FakeRunner({argv: CommandResult(argv, 0, '{"kubeletconfig": {"maxPods": 110}}')})
    assert kubectl_configz("gpu-1", runner=r).fetch() == {"maxPods": 110}
