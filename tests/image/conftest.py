"""Fixtures of the image suite: a runner for the Claude image (`claude_image`, the root
conftest's fixture, builds it once from tests/image/build.py)."""

from __future__ import annotations

import contextlib
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


@pytest.fixture
def run_claude(docker_client: Any, claude_image: str) -> Iterator[Callable[..., Any]]:
    """Run the Claude image; `detach=True` returns the container, else waits and returns Ran.

    Every container gets a unique name and the test label, and is removed after the test.
    """
    created: list[Any] = []

    def _run(command: list[str] | None = None, *, detach: bool = False, timeout: int = 60,
             **kwargs: Any) -> Any:
        kwargs.setdefault("environment", {})
        kwargs["environment"].setdefault("SIDECAR_FIREWALL_GITHUB", "0")
        container = docker_client.containers.create(
            claude_image, command, name=unique_name("sidecar-img"),
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
