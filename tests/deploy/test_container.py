"""deploy/container/Containerfile, parsed (no docker/podman daemon runs here): a wheel stage
and a runtime stage on python:3.11-slim, nothing compiled in the final image, root with its
reason, and the same command line as the DaemonSet."""

from __future__ import annotations

import re

from .manifests import REPO, agent_container, containerfile

COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|python3-dev|libc6-dev)\b")


def test_two_stages_on_python_slim() -> None:
    global_args, stages = containerfile()
    assert global_args == {"PYTHON_IMAGE": "python:3.11-slim"}
    assert [(s.name, s.base) for s in stages] == [
        ("build", "python:3.11-slim"),
        ("runtime", "python:3.11-slim"),
    ]
    build, runtime = stages
    (wheel,) = build.args("RUN")
    assert wheel.startswith("pip wheel ") and "--no-deps" in wheel and "--wheel-dir /dist" in wheel
    assert build.args("COPY") == ["pyproject.toml README.md ./", "src ./src"]
    assert runtime.args("COPY") == ["--from=build /dist/ /tmp/dist/"]
    (install,) = runtime.args("RUN")
    # Binary wheels only: pip never builds an sdist (with a compiler) in the final image.
    assert install.startswith("pip install --only-binary=:all: /tmp/dist/mlnode-*.whl")


def test_no_compiler_or_package_manager_in_the_final_image() -> None:
    _, stages = containerfile()
    for run in stages[-1].args("RUN"):
        assert not COMPILERS.search(run), run
        assert "apt-get" not in run and "apk " not in run, run


def test_root_with_its_reason_and_the_daemonsets_command() -> None:
    _, stages = containerfile()
    runtime = stages[-1]
    assert runtime.args("USER") == ["root"]
    text = (REPO / "deploy/container/Containerfile").read_text()
    before_user = text.split("\nUSER root", 1)[0].rsplit("\n\n", 1)[-1]
    assert "socket" in before_user and "0660" in before_user  # the reason, right above it
    (entrypoint,) = runtime.args("ENTRYPOINT")
    (cmd,) = runtime.args("CMD")
    import json

    c = agent_container()
    assert json.loads(entrypoint) == c["command"] == ["mlnode"]
    assert json.loads(cmd) == c["args"]
    assert c["args"][:1] == ["agent"] and c["args"][-2:] == ["--log-format", "json"]


def test_build_context_ignores_everything_but_the_package() -> None:
    lines = [
        x.strip()
        for x in (REPO / ".dockerignore").read_text().splitlines()
        if x.strip() and not x.startswith("#")
    ]
    assert lines[0] == "**"  # everything out, then the few inputs back in
    _, stages = containerfile()
    copied = {p for a in stages[0].args("COPY") for p in a.split()[:-1]}
    for p in copied:
        assert f"!{p}" in lines or f"!{p}/" in lines, p
