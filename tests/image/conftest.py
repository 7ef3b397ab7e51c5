"""Fixtures of the image suite: runners for the Claude images (`claude_image` and
`claude_code_image`, the root conftest's fixtures, build them once from tests/image/build.py)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import TEST_LABEL, unique_name


@dataclass
class Ran:
    """A finished container: exit code, stdout and stderr (the entrypoint logs on stderr)."""

    code: int
    out: str
    err: str


def _runner(docker_client: Any, image: str) -> Iterator[Callable[..., Any]]:
    created: list[Any] = []

    def _run(command: list[str] | None = None, *, detach: bool = False, timeout: int = 60,
             **kwargs: Any) -> Any:
        kwargs.setdefault("environment", {})
        kwargs["environment"].setdefault("SIDECAR_FIREWALL_GITHUB", "0")
        container = docker_client.containers.create(
            image, command, name=unique_name("sidecar-img"),
            labels={TEST_LABEL: "1"}, **kwargs)
        created.append(container)
        if detach:
            container.start()
            return container
        container.start()
        code = container.wait(timeout=timeout)["StatusCode"]
        out = container.logs(stdout=True, stderr=False).decode()
        err = container.logs(stdout=False, stderr=True).decode()
        return Ran(code, out, err)

    yield _run
    for container in created:
        with contextlib.suppress(Exception):
            container.remove(force=True)


@pytest.fixture
def run_claude(docker_client: Any, claude_image: str) -> Iterator[Callable[..., Any]]:
    """Run the Claude image; `detach=True` returns the container, else waits and returns Ran.

    Every container gets a unique name and the test label, and is removed after the test.
    """
    yield from _runner(docker_client, claude_image)


@pytest.fixture
def run_claude_code(docker_client: Any, claude_code_image: str) -> Iterator[Callable[..., Any]]:
    """Like run_claude, with the image that holds the real Claude Code (CLAUDE_INSTALL=npm)."""
    yield from _runner(docker_client, claude_code_image)


def wait_for_log(container: Any, text: str, timeout: float = 30) -> str:
    """Poll the container's log until `text` appears; return the log."""
    deadline = time.monotonic() + timeout
    logs = ""
    while time.monotonic() < deadline:
        logs = container.logs().decode()
        if text in logs:
            return logs
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in logs:\n{logs}")
